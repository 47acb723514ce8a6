"""Probe and validation: every corpus file is either accepted or refused with a specific code."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipr.media import MediaError, ProbeError, UnsupportedMedia, ingest, probe
from tests.media.conftest import CORPUS, SHORT_CLIPS

MEDIA_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".ts", ".3gp", ".mp3", ".wav",
                  ".flac", ".aiff", ".aac", ".ogg"}  # fmt: skip


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    files = []
    for folder in ("malformed", "containers_codecs"):
        files += sorted(p for p in (CORPUS / folder).rglob("*") if p.suffix in MEDIA_SUFFIXES)
    return files


def _id(p: Path) -> str:
    return str(p.relative_to(CORPUS))


# What each refused corpus file must be refused for (our reading of the file, see MEASUREMENTS).
EXPECTED_REFUSALS = {
    "malformed/mp4parse-rust/bipbop_cbcs_video_init.mp4": "encrypted",
    "malformed/mp4parse-rust/short-cenc.mp4": "encrypted",
    "malformed/mp4parse-rust/chunk_out_of_range.mp4": "unreadable",
    "malformed/mp4parse-rust/invalid_userdata.mp4": "truncated",
    "containers_codecs/mediabunny/annex-b.mp4": "truncated",
    "malformed/mp4parse-rust/minimal.mp4": "absurd_duration",
    "containers_codecs/moviepy/-video-with-dash-.mp4": "absurd_dimensions",
    "containers_codecs/mediabunny/multiple-aac-tracks.mp4": "no_video",
    "containers_codecs/mediabunny/malformed-join.mp3": "no_video",
    "containers_codecs/mediabunny/dts.mkv": "no_video",
    "containers_codecs/mediabunny/avi/aac-only.avi": "no_video",
    "containers_codecs/mediabunny/oversized-id3.wav": "no_video",
}
EXPECTED_READY = [
    "containers_codecs/mediabunny/sar_2x1.mp4",
    "containers_codecs/mediabunny/rotate-buck-bunny.mp4",
    "containers_codecs/mediabunny/avi/vp9-vorbis.avi",
    "containers_codecs/mediabunny/mov/avc-ac3.mov",
    "containers_codecs/moviepy/no_duration.webm",
    "containers_codecs/mediabunny/cursed-vfr.mp4",
    "malformed/mp4parse-rust/no_timescale.mp4",
]
SPECIFIC_CODES = {
    "encrypted", "unreadable", "truncated", "absurd_duration", "absurd_dimensions", "no_video",
    "unsupported_codec", "unsupported_container", "playlist", "still_image", "decode_failed",
    "no_decodable_video", "empty",
}  # fmt: skip


@pytest.mark.corpus
@pytest.mark.parametrize("path", _corpus_files(), ids=_id)
def test_probe_accepts_or_refuses_with_a_specific_code(corpus: Path, path: Path) -> None:
    rel = _id(path)
    try:
        result = probe(path)
    except MediaError as exc:
        assert exc.code in SPECIFIC_CODES, exc
        assert len(exc.message) > 30
        if rel in EXPECTED_REFUSALS:
            assert exc.code == EXPECTED_REFUSALS[rel]
        assert rel not in EXPECTED_READY, exc
        return
    assert rel not in EXPECTED_REFUSALS, f"{rel} should be refused"
    assert result.duration_ms >= 1000 and result.width >= 32 and result.height >= 32
    assert result.fps_num > 0 and result.fps_den > 0


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("path", _corpus_files(), ids=_id)
def test_ingest_is_ready_or_media_error_and_leaves_nothing(
    corpus: Path, path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rec"
    try:
        result = ingest(path, out, SHORT_CLIPS)
    except MediaError as exc:
        assert exc.code in SPECIFIC_CODES, exc
        assert list(out.iterdir()) == []
        return
    names = sorted(p.name for p in out.iterdir())
    assert names == ["analysis.json", "clips", "playable.mp4", "sprite.jpg", "waveform.json"]
    assert len(list((out / "clips").glob("*.mp4"))) == len(result.clips) >= 1


def test_probe_reads_rotation_and_sar(corpus: Path) -> None:
    rot = probe(corpus / "scene_cuts/pyscenedetect/issue-134-rotate.mp4")
    assert (rot.width, rot.height, rot.rotation) == (544, 1280, 90)
    assert (rot.coded_width, rot.coded_height) == (1280, 544)
    sar = probe(corpus / "containers_codecs/mediabunny/sar_2x1.mp4")
    assert (sar.width, sar.height, sar.sar) == (1280, 360, (2, 1))
    vfr = probe(corpus / "scene_cuts/pyscenedetect/goldeneye-vfr-drop3.mp4")
    assert vfr.is_vfr and (vfr.fps_num, vfr.fps_den) == (24000, 1001)
    assert vfr.duration_ms == 9969


DISGUISES = {
    "hls.mp4": (b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n", "playlist"),
    "concat.mp4": (b"ffconcat version 1.0\nfile '/etc/passwd'\n", "playlist"),
    "list.mov": (b"file 'a.mp4'\nfile 'b.mp4'\n", "playlist"),
    "dash.mp4": (b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">', "playlist"),
    "stream.mp4": (b"v=0\no=- 0 0 IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n", "playlist"),
    "photo.mp4": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "still_image"),
    "notes.mp4": (b"just some text that is not media at all\n" * 20, "unreadable"),
    "empty.mp4": (b"", "empty"),
}


@pytest.mark.parametrize("name", sorted(DISGUISES))
def test_disguised_files_are_refused(tmp_path: Path, name: str) -> None:
    content, code = DISGUISES[name]
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises((ProbeError, UnsupportedMedia)) as info:
        ingest(src, out, SHORT_CLIPS)
    assert info.value.code == code
    assert list(out.iterdir()) == []


def test_audio_only_is_refused_with_no_video(tmp_path: Path) -> None:
    import subprocess

    wav = tmp_path / "voice.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=2", str(wav)], check=True)
    with pytest.raises(UnsupportedMedia) as info:
        probe(wav)
    assert info.value.code == "no_video"
    assert "audio" in info.value.message
