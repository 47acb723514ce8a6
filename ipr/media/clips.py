"""Cutting a recording into clips: where the boundaries go, and each clip as its own MP4."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import ffmpeg

from ipr.media._run import RunLimits, run
from ipr.media.commands import (
    AUDIO_ENCODE,
    MP4_OUT,
    STRIP_METADATA,
    VIDEO_ENCODE,
    command,
    pinned_input,
)
from ipr.media.errors import ProcessingError
from ipr.media.probe import DEFAULT_LIMITS, ffprobe_base

STRATEGIES = ("fixed", "scenes", "silences")


def segment(
    duration_ms: int,
    strategy: str,
    *,
    fixed_ms: int = 300_000,
    min_ms: int = 60_000,
    max_ms: int = 600_000,
    scene_cuts_ms: Sequence[int] = (),
    silences_ms: Sequence[Sequence[int]] = (),
) -> list[tuple[int, int]]:
    """Contiguous clips covering [0, duration_ms].

    "fixed" cuts every `fixed_ms`; "scenes" cuts at scene cuts, "silences" in the middle of
    pauses. Candidate cuts closer than `min_ms` to the previous boundary are skipped, and a clip
    longer than `max_ms` is split evenly. A last piece shorter than `min_ms` joins its neighbour.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown segmentation strategy {strategy!r}; use one of {STRATEGIES}")
    if duration_ms <= 0:
        return []
    if not 0 < min_ms <= max_ms:
        raise ValueError("need 0 < min_ms <= max_ms")
    if strategy == "fixed":
        if fixed_ms <= 0:
            raise ValueError("fixed_ms must be positive")
        candidates = list(range(fixed_ms, duration_ms, fixed_ms))
        min_ms = min(min_ms, fixed_ms)
        max_ms = max(max_ms, fixed_ms)
    elif strategy == "scenes":
        candidates = sorted(int(t) for t in scene_cuts_ms)
    else:
        candidates = sorted((int(a) + int(b)) // 2 for a, b in silences_ms)
    bounds = [0]
    for t in candidates:
        if t <= bounds[-1] or t >= duration_ms:
            continue
        _split_long(bounds, t, max_ms)
        if t - bounds[-1] >= min_ms:
            bounds.append(t)
    _split_long(bounds, duration_ms, max_ms)
    if len(bounds) > 1 and duration_ms - bounds[-1] < min_ms:
        bounds.pop()
    bounds.append(duration_ms)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _split_long(bounds: list[int], until: int, max_ms: int) -> None:
    """Add evenly spaced boundaries so that no piece between bounds[-1] and `until` > max_ms."""
    start = bounds[-1]
    span = until - start
    pieces = math.ceil(span / max_ms)
    for k in range(1, pieces):
        bounds.append(start + span * k // pieces)


def video_packets(playable: Path, *, timeout_s: float = 600.0) -> list[tuple[int, bool]]:
    """(pts_ms, is_keyframe) of every video packet of our own MP4 (reads packets, no decode)."""
    args = ffprobe_base(DEFAULT_LIMITS) + [
        "-f",
        "mov",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,flags",
        "-of",
        "csv=p=0",
        "-i",
        f"file:{Path(playable).resolve()}",
    ]
    done = run(args, RunLimits(timeout_s=timeout_s))
    out = []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        parts = line.split(",")
        if len(parts) >= 2:
            try:
                out.append((round(float(parts[0]) * 1000), "K" in parts[1]))
            except ValueError:
                continue
    return sorted(out)


def keyframes_ms(playable: Path, *, timeout_s: float = 600.0) -> list[int]:
    """Presentation times of the video keyframes of our own MP4."""
    return sorted({t for t, key in video_packets(playable, timeout_s=timeout_s) if key})


def snap_to_keyframes(
    clips: list[tuple[int, int]], keyframes: Sequence[int]
) -> list[tuple[int, int]]:
    """Move inner boundaries to the nearest keyframe so clips can be cut without re-encoding."""
    if not clips or not keyframes:
        return clips
    end = clips[-1][1]
    bounds = [0]
    for _, b in clips[:-1]:
        nearest = min(keyframes, key=lambda k: abs(k - b))
        if bounds[-1] < nearest < end:
            bounds.append(nearest)
    bounds.append(end)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def cut_clip(
    playable: Path,
    dst: Path,
    start_ms: int,
    end_ms: int,
    *,
    packets: Sequence[tuple[int, bool]] | None = None,
    timeout_s: float = 1800.0,
) -> Path:
    """Write [start_ms, end_ms) of our playable copy as its own MP4, metadata stripped.

    When the clip starts on a keyframe the streams are copied (seconds); otherwise the clip is
    re-encoded so that it still starts exactly at `start_ms`. A clip that starts at or before
    the first video frame (a file whose first keyframe is at 21 ms, say) starts where the file
    starts: it is copied from there, without a seek.
    """
    if not 0 <= start_ms < end_ms:
        raise ValueError("need 0 <= start_ms < end_ms")
    if packets is None:
        packets = video_packets(playable)
    from_start = bool(packets) and packets[0][1] and start_ms <= packets[0][0]
    copy = from_start or any(key and abs(t - start_ms) <= 1 for t, key in packets)
    # Stream copy stops by decode order, so count the frames instead of trusting -t alone.
    frames = sum(1 for t, _ in packets if start_ms - 1 <= t < end_ms - 1)
    codec = {"c": "copy", "frames:v": str(frames)} if copy else {**VIDEO_ENCODE, **AUDIO_ENCODE}
    seek_ms = 0 if from_start else start_ms
    src = pinned_input(playable, "mov", seek_ms=seek_ms)
    clip = ffmpeg.output(
        src["v:0"],
        src["a:0?"],
        str(dst),
        t=f"{(end_ms - seek_ms) / 1000:.3f}",
        **codec,
        **STRIP_METADATA,
        **MP4_OUT,
    )
    args = command(clip)
    done = run(args, RunLimits(timeout_s=timeout_s))
    if done.returncode != 0 or not Path(dst).is_file():
        Path(dst).unlink(missing_ok=True)
        raise ProcessingError(
            "A clip could not be cut from the playable copy.",
            code="clip_failed",
            detail=done.stderr[-2000:],
        )
    return Path(dst)


def extract_thumbnail(
    playable: Path, dst: Path, t_ms: int, width: int = 320, *, timeout_s: float = 120.0
) -> Path:
    """A JPEG of the frame shown at `t_ms`, `width` pixels wide."""
    src = pinned_input(playable, "mov", seek_ms=max(0, t_ms))
    picture = src["v:0"].filter("scale", int(width), -2, flags="area")
    jpeg = ffmpeg.output(
        picture,
        str(dst),
        **{"frames:v": "1", "q:v": "4"},
        map_metadata="-1",
        fflags="+bitexact",
        format="image2",
        update="1",
    )
    args = command(jpeg)
    done = run(args, RunLimits(timeout_s=timeout_s))
    if done.returncode != 0 or not Path(dst).is_file():
        Path(dst).unlink(missing_ok=True)
        raise ProcessingError(
            "A thumbnail could not be made from the playable copy.",
            code="thumbnail_failed",
            detail=done.stderr[-2000:],
        )
    return Path(dst)


def write_clips(
    playable: Path,
    folder: Path,
    bounds: Sequence[tuple[int, int]],
    *,
    packets: Sequence[tuple[int, bool]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    thumbnails: bool = True,
) -> None:
    """Cut each (start, end) of ``bounds`` into ``folder``/NNN.mp4 with its NNN.jpg thumbnail
    (NNN from 001): the clip files of a recording, at ingest and when re-segmented. With
    ``thumbnails=False`` the caller makes the thumbnails."""
    if packets is None:
        packets = video_packets(playable)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (start, end) in enumerate(bounds, start=1):
        cut_clip(playable, folder / f"{i:03d}.mp4", start, end, packets=packets)
        if thumbnails:
            extract_thumbnail(playable, folder / f"{i:03d}.jpg", start)
        if progress is not None:
            progress(i, len(bounds))
