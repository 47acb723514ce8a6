"""The analysis decode of a file that needs no transcode: one pass with PyAV, in a child process.

When the source is already a browser-safe H.264 file, the playable copy is a stream copy and
the only decode left is the one the analysis needs. Decoding with PyAV (libavcodec with frame
threading) lets us read the luma plane of each frame where the decoder left it, without the
colour conversion and full-size rescale an ffmpeg pipe would do: the grey analysis frame is
every n-th pixel of every n-th row (n = 4 at 720p), averaged 2×2 (OpenCV's area resize), so the
whole analysis costs little beyond the decode itself; sprite tiles are area-scaled from the few
frames that become tiles. (The audio comes from the ffmpeg run that makes the stream copy.)

It runs as ``python -m ipr.media.decode`` under ``ipr.media._run`` (CPU, memory and file-size
limits, a deadline, a kill switch), exactly like ffmpeg: a decoder that hangs or crashes on a
hostile file takes down only this child. It prints ``frames N`` lines for progress and leaves
its results in one ``.npz`` file.

Frames are put on the constant-rate grid of the recording (index = time × rate, from the file's
start), dropping a frame that lands on an index already filled and repeating the previous frame
over a gap, as ffmpeg's ``fps`` filter does. Times therefore match the playable copy, which is a
stream copy of this file.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ipr.media.analysis import MOTION_PIXEL_THRESHOLD, AudioAnalyzer, FrameAnalyzer, Region

PROGRESS_EVERY = 250  # frames between progress lines


@dataclass
class Signals:
    """Everything the analysis decode yields, whichever decoder produced it."""

    frames: int
    scores: np.ndarray  # per frame, mean absolute grey difference to the previous frame
    means: np.ndarray  # per frame, mean grey level
    motion: np.ndarray  # (frames, regions) share of changed pixels
    region_names: list[str]
    rms: np.ndarray  # 10 ms audio windows, high-passed RMS
    peak: np.ndarray  # 10 ms audio windows, peak amplitude
    tiles: list[np.ndarray]  # sprite tiles, BGR
    keyframes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frame indices
    shapes: np.ndarray = field(default_factory=lambda: np.zeros(0))  # scores, level change removed
    repeated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # per frame

    @classmethod
    def collect(
        cls,
        frames: FrameAnalyzer,
        audio: AudioAnalyzer | None,
        tiles: list[np.ndarray],
        keyframes: list[int] | None = None,
    ) -> Signals:
        return cls(
            frames=frames.frames,
            scores=frames.scores,
            means=frames.means,
            motion=frames.motion,
            region_names=[r.name for r in frames.regions],
            rms=audio.rms if audio is not None else np.zeros(0),
            peak=audio.peak if audio is not None else np.zeros(0),
            tiles=tiles,
            keyframes=np.array(keyframes or [], np.int64),
            shapes=frames.shapes,
            repeated=frames.repeated,
        )

    def save(self, path: Path) -> None:
        tiles = np.stack(self.tiles) if self.tiles else np.zeros((0, 1, 1, 3), np.uint8)
        with open(path, "wb") as fh:
            np.savez(
                fh,
                frames=np.array(self.frames),
                scores=self.scores,
                means=self.means,
                motion=self.motion,
                region_names=np.array(self.region_names),
                rms=self.rms,
                peak=self.peak,
                tiles=tiles,
                keyframes=self.keyframes,
                shapes=self.shapes,
                repeated=self.repeated,
            )

    @classmethod
    def load(cls, path: Path) -> Signals:
        with np.load(path) as z:
            return cls(
                frames=int(z["frames"]),
                scores=z["scores"],
                means=z["means"],
                motion=z["motion"],
                region_names=[str(n) for n in z["region_names"]],
                rms=z["rms"],
                peak=z["peak"],
                tiles=list(z["tiles"]),
                keyframes=z["keyframes"],
                shapes=z["shapes"],
                repeated=z["repeated"] if "repeated" in z else np.zeros(0, bool),
            )


def luma_stride(width: int, height: int, aw: int, ah: int) -> int:
    """Take every n-th pixel so the sampled picture is still at least twice the analysis size."""
    return max(1, min(width // (2 * aw), height // (2 * ah)))


def small_grey(frame, aw: int, ah: int, stride: int) -> np.ndarray:  # noqa: ANN001 - av frame
    """The (ah, aw) grey analysis picture of a decoded frame, read from its luma plane."""
    import cv2

    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "nv12"):
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        y = y[:, : frame.width]
    else:
        y = frame.to_ndarray(format="gray")
    sampled = y[::stride, ::stride]
    return cv2.resize(sampled, (aw, ah), interpolation=cv2.INTER_AREA)


def decode(
    src: Path,
    fmt: str,
    rate: Fraction,
    size: tuple[int, int],
    regions: list[Region],
    tile_every: int,
    tile_size: tuple[int, int],
    report=None,  # noqa: ANN001 - callable(frames) or None
    thumbnail: tuple[Path, int, int] | None = None,
    threshold: int = MOTION_PIXEL_THRESHOLD,
) -> Signals:
    """With ``thumbnail`` (path, width, height) the first frame is also written there as a
    JPEG: the first clip's thumbnail, without an ffmpeg run of its own."""
    import av

    aw, ah = size
    tw, th = tile_size
    frames = FrameAnalyzer(aw, ah, regions, threshold)
    tiles: list[np.ndarray] = []
    keyframes: list[int] = []  # frame indices of the keyframes (where a stream copy can cut)
    # The decoder's threads wait for this thread to hand them packets, so the analysis of the
    # small frames runs on a second thread (NumPy releases the GIL in its loops).
    todo: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=8)
    failed: list[BaseException] = []

    def work() -> None:
        while (item := todo.get()) is not None:
            try:
                frames.feed(item)
            except BaseException as exc:  # reported after the decode
                failed.append(exc)

    def analyse(item: np.ndarray | None) -> None:
        todo.put(item)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    options = {"protocol_whitelist": "file"}
    with av.open(f"file:{src}", format=fmt, options=options) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        start = (container.start_time or 0) / 1_000_000
        fps = float(rate)
        stride = luma_stride(video.codec_context.width, video.codec_context.height, aw, ah)
        batch: list[np.ndarray] = []
        state = {"next": 0, "prev": None, "prev_frame": None}

        def emit(picture: np.ndarray, frame) -> None:  # noqa: ANN001
            index = state["next"]
            if index == 0 and thumbnail is not None:
                _write_jpeg(frame, *thumbnail)
            if index % tile_every == 0:
                tile = frame.reformat(tw, th, format="bgr24", interpolation="AREA")
                tiles.append(tile.to_ndarray())
            batch.append(picture)
            state["next"] = index + 1
            if len(batch) >= 64:
                analyse(np.stack(batch))
                batch.clear()
            if report is not None and state["next"] % PROGRESS_EVERY == 0:
                report(state["next"])

        def on_video(frame) -> None:  # noqa: ANN001
            picture = small_grey(frame, aw, ah, stride)
            if frame.pts is None or frame.time_base is None:
                index = state["next"]
            else:
                index = round((frame.pts * float(frame.time_base) - start) * fps)
            if index < state["next"] and state["prev"] is not None:
                return  # lands on a filled slot: dropped, as the fps filter does
            while index > state["next"] and state["prev"] is not None:
                emit(state["prev"], state["prev_frame"])  # a gap: the last picture is held
            if frame.key_frame:
                keyframes.append(state["next"])
            emit(picture, frame)
            state["prev"], state["prev_frame"] = picture, frame

        try:
            for frame in container.decode(video):
                on_video(frame)
            if batch:
                analyse(np.stack(batch))
        finally:
            analyse(None)
            worker.join()
    if failed:
        raise failed[0]
    return Signals.collect(frames, None, tiles, keyframes)


def _write_jpeg(frame, path: Path, width: int, height: int) -> None:  # noqa: ANN001 - av frame
    """Best effort: without the file the parent makes the thumbnail with ffmpeg instead."""
    import cv2

    picture = frame.reformat(width, height, format="bgr24", interpolation="AREA").to_ndarray()
    try:
        cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    except (cv2.error, OSError):
        Path(path).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipr.media.decode")
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path, help="the .npz to write")
    parser.add_argument("--format", required=True, help="the demuxer chosen at probe time")
    parser.add_argument("--rate", required=True, help="frame rate as num/den")
    parser.add_argument("--size", required=True, help="analysis frame size WxH")
    parser.add_argument("--tile-size", required=True, help="sprite tile size WxH")
    parser.add_argument("--tile-every", type=int, required=True)
    parser.add_argument("--regions", required=True, help="JSON list of [name, x, y, w, h]")
    parser.add_argument("--thumbnail", type=Path, help="a JPEG of the first frame to write")
    parser.add_argument("--thumbnail-size", default="320x180", help="its size WxH")
    parser.add_argument("--threshold", type=int, default=MOTION_PIXEL_THRESHOLD)
    args = parser.parse_args(argv)
    regions = [Region(str(n), *map(float, box)) for n, *box in json.loads(args.regions)]

    def pair(text: str) -> tuple[int, int]:
        w, h = text.lower().split("x")
        return int(w), int(h)

    def report(n: int) -> None:
        print(f"frames {n}", flush=True)

    signals = decode(
        args.src,
        args.format,
        Fraction(args.rate),
        pair(args.size),
        regions,
        args.tile_every,
        pair(args.tile_size),
        report,
        (args.thumbnail, *pair(args.thumbnail_size)) if args.thumbnail else None,
        args.threshold,
    )
    if signals.frames == 0:
        print("no frames decoded", file=sys.stderr)
        return 3
    tmp = args.out.with_suffix(".part")
    signals.save(tmp)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # the parent reads the reason from stderr
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
