"""Building blocks of every ffmpeg command line: pinned input, stripped metadata, encoders."""

from __future__ import annotations

from pathlib import Path

from ipr.media._run import FFMPEG

VIDEO_ENCODE = [
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "23",
    "-profile:v",
    "high",
    "-pix_fmt",
    "yuv420p",
]
AUDIO_ENCODE = ["-c:a", "aac", "-b:a", "128k", "-ac", "2"]
# No container, stream or chapter metadata survives (device, GPS, creation time, encoder).
STRIP_METADATA = [
    "-map_metadata",
    "-1",
    "-map_chapters",
    "-1",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-flags:a",
    "+bitexact",
    "-metadata:s:v:0",
    "handler_name=",
    "-metadata:s:a:0",
    "handler_name=",
]
MP4_OUT = ["-movflags", "+faststart", "-f", "mp4"]


def ffmpeg_head() -> list[str]:
    return [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y"]


def pinned_input(path: Path, fmt: str, *, seek_ms: int | None = None) -> list[str]:
    """Read one local file with the demuxer chosen at probe time and no other protocol."""
    seek = ["-ss", f"{seek_ms / 1000:.3f}"] if seek_ms else []
    return [*seek, "-protocol_whitelist", "file", "-f", fmt, "-i", f"file:{Path(path).resolve()}"]
