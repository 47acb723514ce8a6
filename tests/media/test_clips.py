"""Segmentation (pure) and clip files: exact boundaries, durations checked with ffprobe."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipr.media import cut_clip, extract_thumbnail, keyframes_ms, segment
from tests.media.conftest import ffprobe_json


def test_fixed_segments_cover_the_recording() -> None:
    assert segment(1_000_000, "fixed", fixed_ms=300_000, min_ms=60_000, max_ms=600_000) == [
        (0, 300_000),
        (300_000, 600_000),
        (600_000, 900_000),
        (900_000, 1_000_000),
    ]
    # a last piece shorter than min_ms joins the previous clip
    assert segment(920_000, "fixed", fixed_ms=300_000, min_ms=60_000, max_ms=600_000) == [
        (0, 300_000),
        (300_000, 600_000),
        (600_000, 920_000),
    ]


def test_scene_segments_respect_min_and_max() -> None:
    cuts = [10_000, 12_000, 100_000, 400_000]
    got = segment(500_000, "scenes", min_ms=30_000, max_ms=150_000, scene_cuts_ms=cuts)
    assert got == [(0, 100_000), (100_000, 250_000), (250_000, 400_000), (400_000, 500_000)]


def test_silence_segments_cut_mid_pause() -> None:
    got = segment(
        200_000,
        "silences",
        min_ms=30_000,
        max_ms=120_000,
        silences_ms=[(5_000, 6_000), (59_000, 61_000), (119_500, 120_500)],
    )
    assert got == [(0, 60_000), (60_000, 120_000), (120_000, 200_000)]


def test_segment_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        segment(1000, "speakers", min_ms=1, max_ms=2)
    assert segment(0, "fixed") == []


def _duration_ms(path: Path) -> int:
    info = ffprobe_json(path, "-show_streams", "-select_streams", "v:0")
    return round(float(info["streams"][0]["duration"]) * 1000)


def test_ingest_clips_match_their_times(tone_with_pauses: Path, ingested) -> None:
    result, out = ingested(tone_with_pauses)
    assert [(c.start_ms, c.end_ms) for c in result.clips] == [(0, 3000), (3000, 6000)]
    for c in result.clips:
        assert abs(_duration_ms(out / c.path) - (c.end_ms - c.start_ms)) <= 40
        assert (out / c.thumbnail_path).stat().st_size > 0


def test_cut_clip_copy_and_reencode_are_frame_exact(
    tone_with_pauses: Path, ingested, tmp_path: Path
) -> None:
    _, out = ingested(tone_with_pauses)
    playable = out / "playable.mp4"
    keys = keyframes_ms(playable)
    assert keys == [0, 1000, 2000, 3000, 4000, 5000]
    on_key = cut_clip(playable, tmp_path / "a.mp4", 2000, 4000)
    off_key = cut_clip(playable, tmp_path / "b.mp4", 1240, 3480)
    assert abs(_duration_ms(on_key) - 2000) <= 40
    assert abs(_duration_ms(off_key) - 2240) <= 40
    thumb = extract_thumbnail(playable, tmp_path / "t.jpg", 2500, width=160)
    info = ffprobe_json(thumb, "-show_streams")
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (160, 120)
