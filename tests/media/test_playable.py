"""The playable copy: H.264/AAC MP4, faststart, constant rate, upright, square pixels, no tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipr.media import IngestCancelled, ingest
from tests.media.conftest import SHORT_CLIPS, ffprobe_json

# The sample entry's "encoder" (compressor name, e.g. "Lavc libx264") names our software only.
PRIVATE_TAGS = ("creation_time", "location", "com.apple", "make", "model", "title", "date")


def _video(path: Path) -> dict:
    info = ffprobe_json(path, "-show_streams", "-show_format")
    return next(s for s in info["streams"] if s["codec_type"] == "video")


def _assert_no_private_tags(path: Path) -> None:
    info = ffprobe_json(path, "-show_streams", "-show_format")
    tag_sets = [info["format"].get("tags", {})] + [s.get("tags", {}) for s in info["streams"]]
    for tags in tag_sets:
        for key, value in tags.items():
            assert not any(p in key.lower() for p in PRIVATE_TAGS), (key, value)
            assert "iphone" not in str(value).lower()


def _assert_faststart(path: Path) -> None:
    head = path.read_bytes()[:65536]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("rel", "size"),
    [
        ("scene_cuts/pyscenedetect/issue-134-rotate.mp4", (544, 1280)),
        ("containers_codecs/mediabunny/rotate-buck-bunny.mp4", (1080, 1920)),
        ("containers_codecs/mediabunny/sar_2x1.mp4", (1280, 360)),
    ],
)
def test_rotation_and_pixel_aspect_are_baked_in(corpus: Path, ingested, rel, size) -> None:
    result, out = ingested(corpus / rel)
    v = _video(out / "playable.mp4")
    assert (v["width"], v["height"]) == size
    assert (result.width, result.height) == size
    assert v.get("sample_aspect_ratio", "1:1") == "1:1"
    assert not any("rotation" in sd for sd in v.get("side_data_list", []))
    assert v["codec_name"] == "h264" and v["pix_fmt"] == "yuv420p"
    assert result.remuxed is False


@pytest.mark.corpus
def test_phone_hevc_vfr_mov_becomes_cfr_h264(corpus: Path, ingested) -> None:
    result, out = ingested(corpus / "people/pyfeat/face_noface.mov")
    v = _video(out / "playable.mp4")
    assert v["codec_name"] == "h264" and v["pix_fmt"] == "yuv420p"
    assert v["r_frame_rate"] == v["avg_frame_rate"] == "30/1"  # the source's nominal rate
    assert (result.fps_num, result.fps_den) == (30, 1)
    assert abs(result.duration_ms - 6402) <= 70
    _assert_faststart(out / "playable.mp4")


def test_qualifying_source_is_remuxed_and_stripped(tone_with_pauses: Path, ingested) -> None:
    result, out = ingested(tone_with_pauses)
    assert result.remuxed is True
    playable = out / "playable.mp4"
    info = ffprobe_json(playable, "-show_streams")
    kinds = [(s["codec_type"], s["codec_name"]) for s in info["streams"]]
    assert kinds == [("video", "h264"), ("audio", "aac")]
    _assert_faststart(playable)
    _assert_no_private_tags(playable)
    for clip in result.clips:
        _assert_no_private_tags(out / clip.path)


def test_transcoded_copy_is_stripped(corpus: Path, ingested) -> None:
    _, out = ingested(corpus / "people/pyfeat/face_noface.mov")
    _assert_no_private_tags(out / "playable.mp4")


def test_cancel_leaves_nothing(tone_with_pauses: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    stages: list[str] = []
    with pytest.raises(IngestCancelled):
        ingest(
            tone_with_pauses,
            out,
            SHORT_CLIPS,
            progress=lambda stage, _: stages.append(stage),
            cancelled=lambda: "analysing" in stages,
        )
    assert list(out.iterdir()) == []
