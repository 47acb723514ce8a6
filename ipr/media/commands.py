"""Building blocks of every ffmpeg command line, expressed with ffmpeg-python.

ffmpeg-python only builds the argument list (`compile`); running it stays with our own runner
(`_run.py`: resource limits, deadline, kill switch, pipes read on threads).
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg
from ffmpeg.nodes import FilterableStream, OutputStream

from ipr.media._run import FFMPEG

# Output options as ffmpeg-python keyword arguments (`{"c:v": "libx264"}` -> `-c:v libx264`).
VIDEO_ENCODE = {
    "c:v": "libx264",
    "preset": "veryfast",
    "crf": "23",
    "profile:v": "high",
    "pix_fmt": "yuv420p",
}
AUDIO_ENCODE = {"c:a": "aac", "b:a": "128k", "ac": "2"}
# No container, stream or chapter metadata survives (device, GPS, creation time, encoder).
STRIP_METADATA = {
    "map_metadata": "-1",
    "map_chapters": "-1",
    "fflags": "+bitexact",
    "flags:v": "+bitexact",
    "flags:a": "+bitexact",
    "metadata:s:v:0": "handler_name=",
    "metadata:s:a:0": "handler_name=",
}
MP4_OUT = {"movflags": "+faststart", "format": "mp4"}
GLOBAL_ARGS = ("-nostdin", "-hide_banner", "-v", "error")


def pinned_input(
    path: Path, fmt: str, *, seek_ms: int | None = None, **options: str | None
) -> FilterableStream:
    """Read one local file with the demuxer chosen at probe time and no other protocol.

    Extra input options go in `options` (`noautorotate=None` gives a bare `-noautorotate`).
    """
    opts: dict[str, str | None] = {"protocol_whitelist": "file", "format": fmt, **options}
    if seek_ms:
        opts["ss"] = f"{seek_ms / 1000:.3f}"
    return ffmpeg.input(f"file:{Path(path).resolve()}", **opts)


def command(*outputs: OutputStream) -> list[str]:
    """The argument list for one ffmpeg run writing `outputs`, with our global options and -y."""
    spec = ffmpeg.merge_outputs(*outputs) if len(outputs) > 1 else outputs[0]
    return ffmpeg.compile(spec.global_args(*GLOBAL_ARGS), cmd=FFMPEG, overwrite_output=True)
