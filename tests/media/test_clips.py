"""Segmentation (pure) and clip files: exact boundaries, durations checked with ffprobe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ipr.media import IngestSettings, cut_clip, extract_thumbnail, ingest, keyframes_ms, segment
from tests.media.conftest import SHORT_CLIPS, ffprobe_json, lavfi


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


def _frames_and_first_key(path: Path) -> tuple[int, bool]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return len(out), out[0].startswith("K")


@pytest.mark.parametrize(("gop", "bounds"), [
    (25, [(0, 3000), (3000, 6000)]),  # a keyframe every second: cut exactly at 3 s
    (35, [(0, 4200), (4200, 6000)]),  # keyframes at 0, 1.4, 2.8, 4.2 s: the first one after 3 s
])  # fmt: skip
def test_fixed_clips_are_cut_by_the_copy_at_the_next_keyframe(
    tmp_path: Path, gop: int, bounds: list[tuple[int, int]]
) -> None:
    src = lavfi(
        tmp_path / "src.mp4",
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=6",
        "-f", "lavfi", "-i", "sine=f=440:d=6:sample_rate=48000",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-c:a", "aac", "-shortest",
    )  # fmt: skip
    result = ingest(src, tmp_path / "out", SHORT_CLIPS)
    assert result.remuxed
    assert [(c.start_ms, c.end_ms) for c in result.clips] == bounds
    for clip in result.clips:
        frames, starts_on_key = _frames_and_first_key(tmp_path / "out" / clip.path)
        assert starts_on_key
        assert frames == (clip.end_ms - clip.start_ms) * 25 // 1000
        assert (tmp_path / "out" / clip.thumbnail_path).stat().st_size > 0
    assert not list((tmp_path / "out" / "clips").glob("*.csv"))


def test_clips_the_copy_cut_wrongly_are_thrown_away(tmp_path: Path) -> None:
    from ipr.media.ingest import _clips_from_split, _Split

    split = _Split(tmp_path / "clips", [3000])
    split.folder.mkdir()
    for name in ("001.mp4", "002.mp4"):
        (split.folder / name).write_bytes(b"x")
    split.listing.write_text("001.mp4,0.000,3.600\n002.mp4,3.600,6.000\n")
    # The keyframes say the cut belongs at 3000 ms, the copy says 3600 ms: cut again.
    assert _clips_from_split(split, [0, 1000, 2000, 3000, 4000], 6000) is None
    assert not split.folder.exists()


def _video_packets(path: Path) -> list[tuple[int, int, bool]]:
    """(pts_ms, size in bytes, is_keyframe) of every video packet, in presentation order."""
    out = ffprobe_json(
        path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,size,flags"
    )
    packets = [
        (round(float(p["pts_time"]) * 1000), int(p["size"]), p["flags"].startswith("K"))
        for p in out["packets"]
    ]
    return sorted(packets)


@pytest.mark.parametrize(("strategy", "bounds", "frames"), [
    ("fixed", [(0, 6038)], [150]),  # one 5-minute clip: the whole file
    ("silences", [(0, 3022), (3022, 5022), (5022, 6038)], [75, 50, 25]),  # pauses at keyframes
])  # fmt: skip
def test_clips_of_a_file_whose_first_keyframe_is_after_0_are_copied(
    tmp_path: Path, strategy: str, bounds: list[tuple[int, int]], frames: list[int]
) -> None:
    # Video starts at 66 ms, audio (AAC priming) at 44 ms: in the playable copy the first
    # keyframe is at 22 ms. The first clip starts where the file starts and is copied too.
    src = lavfi(
        tmp_path / "late.mp4",
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=6",
        "-f", "lavfi", "-i", "sine=f=440:d=6:sample_rate=48000",
        "-af", "volume=enable='between(t,2,3)+between(t,4.5,5)':volume=0",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25",
        "-c:a", "aac", "-shortest", "-output_ts_offset", "0.066",
    )  # fmt: skip
    settings = IngestSettings(strategy=strategy, fixed_ms=300_000, min_clip_ms=1_000)
    result = ingest(src, tmp_path / "out", settings)
    assert result.remuxed
    playable = _video_packets(tmp_path / "out" / "playable.mp4")
    assert len(playable) == 150
    assert playable[0][0] == 22 and playable[0][2]
    assert [(c.start_ms, c.end_ms) for c in result.clips] == bounds
    counts = []
    for clip in result.clips:
        got = _video_packets(tmp_path / "out" / clip.path)
        wanted = [p for p in playable if clip.start_ms - 1 <= p[0] < clip.end_ms - 1]
        # Copied, not re-encoded: the very same compressed frames, byte for byte in size.
        assert [size for _, size, _ in got] == [size for _, size, _ in wanted]
        assert got[0][2]
        counts.append(len(got))
        thumb = ffprobe_json(tmp_path / "out" / clip.thumbnail_path, "-show_streams")
        assert (thumb["streams"][0]["width"], thumb["streams"][0]["height"]) == (320, 240)
    assert counts == frames


def test_the_decode_child_writes_the_first_thumbnail_or_leaves_it_to_ffmpeg(
    left_moves: Path, tmp_path: Path
) -> None:
    from fractions import Fraction

    from ipr.media import DEFAULT_REGIONS
    from ipr.media.decode import decode

    args = (left_moves, "mov", Fraction(25), (160, 60), list(DEFAULT_REGIONS), 25, (160, 60))
    thumb = tmp_path / "first.jpg"
    assert decode(*args, thumbnail=(thumb, 320, 120)).frames == 100
    info = ffprobe_json(thumb, "-show_streams")
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (320, 120)
    # A thumbnail that cannot be written is no reason to fail the analysis.
    missing = tmp_path / "no-such-folder" / "first.jpg"
    assert decode(*args, thumbnail=(missing, 320, 120)).frames == 100
    assert not missing.exists()
