"""The ffmpeg argument lists built with ffmpeg-python keep our safety and privacy options."""

from __future__ import annotations

import os
from pathlib import Path

import ffmpeg

from ipr.media._run import RunLimits
from ipr.media.commands import MP4_OUT, STRIP_METADATA, command, pinned_input
from ipr.media.ingest import IngestSettings, _Decode, _remux_args, _transcode_args
from ipr.media.probe import ProbeResult

STRIPPED = [
    ("-map_metadata", "-1"),
    ("-map_chapters", "-1"),
    ("-fflags", "+bitexact"),
    ("-flags:v", "+bitexact"),
    ("-flags:a", "+bitexact"),
    ("-metadata:s:v:0", "handler_name="),
    ("-metadata:s:a:0", "handler_name="),
    ("-movflags", "+faststart"),
]


def _phone_file(tmp_path: Path, **changes: object) -> ProbeResult:
    """Like the pyfeat iPhone .mov: audio is stream 0, video stream 1, variable frame rate."""
    fields = dict(
        path=str(tmp_path / "in.mov"),
        format_name="mov",
        duration_ms=10_000,
        size_bytes=1_000_000,
        width=720,
        height=1280,
        coded_width=1280,
        coded_height=720,
        fps_num=30,
        fps_den=1,
        is_vfr=True,
        video_codec="hevc",
        pix_fmt="yuv420p",
        rotation=90,
        sar=(1, 1),
        interlaced=False,
        video_index=1,
        has_audio=True,
        audio_codec="aac",
        audio_index=0,
    )
    fields.update(changes)
    return ProbeResult(**fields)


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    return list(zip(args, args[1:], strict=False))


def _input_part(args: list[str]) -> list[str]:
    return args[: args.index("-i") + 2]


def test_pinned_input_and_global_options(tmp_path: Path) -> None:
    src = pinned_input(tmp_path / "a.mp4", "mov", seek_ms=1500)
    args = command(ffmpeg.output(src["v:0"], str(tmp_path / "b.mp4"), **STRIP_METADATA, **MP4_OUT))
    assert args[0] == "ffmpeg"
    assert _input_part(args) == [
        "ffmpeg",
        "-f",
        "mov",
        "-protocol_whitelist",
        "file",
        "-ss",
        "1.500",
        "-i",
        f"file:{(tmp_path / 'a.mp4').resolve()}",
    ]
    assert args[-5:] == ["-nostdin", "-hide_banner", "-v", "error", "-y"]
    for pair in STRIPPED + [("-map", "0:v:0"), ("-f", "mp4")]:
        assert pair in _pairs(args), pair


def test_remux_maps_first_streams_by_index(tmp_path: Path) -> None:
    p = _phone_file(tmp_path, video_codec="h264", is_vfr=False, rotation=0, audio_codec="opus")
    args = _remux_args(p, tmp_path / "out.mp4")
    maps = [b for a, b in _pairs(args) if a == "-map"]
    assert maps == ["0:1", "0:0"]
    for pair in STRIPPED + [("-c:v", "copy"), ("-c:a", "aac"), ("-b:a", "128k")]:
        assert pair in _pairs(args), pair
    assert args[-6] == str(tmp_path / "out.mp4")


def test_transcode_graph_rotates_and_feeds_every_pipe(tmp_path: Path) -> None:
    p = _phone_file(tmp_path)
    dec = _Decode(p, IngestSettings().regions, RunLimits())
    try:
        args = _transcode_args(p, tmp_path / "out.mp4", IngestSettings(fixed_ms=4_000), dec)
    finally:
        for r, w in dec.run._pipes:
            os.close(r)
            os.close(w)
    assert "-noautorotate" in _input_part(args)
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:1]transpose=clock[")
    assert "fps=30/1" in graph and "scale=720:1280:flags=bicubic" in graph
    assert "[0:0]aresample=async=1:first_pts=0[" in graph
    assert "select=not(mod(n\\,30))" in graph
    outputs = [b for a, b in _pairs(args) if a == "-map"]
    assert len(outputs) == 5 and all(o.startswith("[s") for o in outputs)  # mp4 v+a, 3 pipes
    pairs = _pairs(args)
    encode = [("-force_key_frames", "4.000,8.000"), ("-g", "60"), ("-c:v", "libx264")]
    for pair in STRIPPED + encode:
        assert pair in pairs, pair
    assert ("-fps_mode", "cfr") in pairs and ("-fps_mode", "passthrough") in pairs
    assert "pipe:1" in args and sum(a.startswith("pipe:") for a in args) == 3
