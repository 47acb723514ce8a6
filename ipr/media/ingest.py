"""Ingest: probe, a browser-playable copy, one decode shared by all analyses, and clips.

A transcode and the analysis share one ffmpeg process (the MP4 plus small grey frames, sprite
tiles and mono PCM on pipes); a qualifying source is stream-copied and decoded once for analysis.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
from ffmpeg.nodes import FilterableStream, OutputStream

from ipr.media._run import GIB, RunLimits, StreamingRun, run, stream_reader
from ipr.media.analysis import (
    AUDIO_RATE,
    DEFAULT_REGIONS,
    MOTION_PIXEL_THRESHOLD,
    AudioAnalyzer,
    FrameAnalyzer,
    MotionEnergy,
    Region,
    detect_cuts,
    detect_silences,
    frame_ms,
    motion_energy,
    waveform_levels,
)
from ipr.media.clips import (
    extract_thumbnail,
    segment,
    snap_to_keyframes,
    video_packets,
    write_clips,
)
from ipr.media.commands import (
    AUDIO_ENCODE,
    MP4_OUT,
    STRIP_METADATA,
    VIDEO_ENCODE,
    command,
    pinned_input,
)
from ipr.media.decode import Signals, luma_stride
from ipr.media.errors import IngestCancelled, MediaError, ProbeError, ProcessingError
from ipr.media.probe import DEFAULT_LIMITS, Limits, ProbeResult, ffprobe_base, probe

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding ``ipr``, for the child
ANALYSIS_SIDE = 160  # longer side of the grey analysis frames
TILE_SIDE = 160  # longer side of a sprite tile
SPRITE_COLUMNS = 10
MAX_SPRITE_TILES = 300
SPLIT_TOLERANCE_MS = 100  # a segment listed this close to its keyframe was cut there
THUMB_WIDTH = 320  # clip thumbnails (extract_thumbnail's default width)
FIRST_THUMB = "first.jpg"  # the first frame, written by the remux path's decode child

Progress = Callable[[str, float], None]
Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class IngestSettings:
    """How one recording is processed; the study's segmentation defaults come in here."""

    strategy: str = "fixed"
    fixed_ms: int = 300_000
    min_clip_ms: int = 60_000
    max_clip_ms: int = 600_000
    regions: tuple[Region, ...] = DEFAULT_REGIONS
    motion_threshold: int = MOTION_PIXEL_THRESHOLD  # grey levels; the study's setting
    limits: Limits = DEFAULT_LIMITS
    timeout_s: float | None = None  # None: scaled to the recording's length


@dataclass
class Clip:
    index: int
    start_ms: int
    end_ms: int
    path: str
    thumbnail_path: str


@dataclass
class IngestResult:
    """Everything the app stores about a processed recording; paths are relative to out_dir."""

    duration_ms: int
    width: int
    height: int
    fps_num: int
    fps_den: int
    has_audio: bool
    remuxed: bool
    playable_path: str
    scene_cuts_ms: list[int]
    silences_ms: list[list[int]]
    motion_energy: dict
    sprite: dict
    waveform: dict
    clips: list[Clip]
    scene_scores: list[float] = field(default_factory=list)
    source: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = round(self.fps, 6)
        return d


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Scale (width, height) so the longer side is `side`, keeping both even."""
    if width >= height:
        return side, _even(side * height / width)
    return _even(side * width / height), side


def _playable_size(p: ProbeResult) -> tuple[int, int]:
    return _even(p.width - 1), _even(p.height - 1)


def qualifies_for_remux(p: ProbeResult) -> bool:
    """Browser-safe as it is: H.264 8-bit 4:2:0, constant rate, upright, square pixels."""
    return (
        p.video_codec == "h264"
        and p.pix_fmt in ("yuv420p", "yuvj420p")
        and not p.is_vfr
        and p.rotation == 0
        and p.sar == (1, 1)
        and not p.interlaced
        and p.width % 2 == 0
        and p.height % 2 == 0
    )


def _orient(video: FilterableStream, p: ProbeResult) -> FilterableStream:
    """Deinterlace and rotate explicitly (autorotation is off) so the copy is upright."""
    if p.interlaced:
        video = video.filter("bwdif")
    if p.rotation == 90:
        video = video.filter("transpose", "clock")
    elif p.rotation == 180:
        video = video.filter("hflip").filter("vflip")
    elif p.rotation == 270:
        video = video.filter("transpose", "cclock")
    return video


@dataclass(frozen=True)
class _Layout:
    """Sizes of the analysis frames and sprite tiles, and how often a frame becomes a tile."""

    aw: int
    ah: int
    tw: int
    th: int
    tile_every: int

    @classmethod
    def of(cls, p: ProbeResult, width: int | None = None, height: int | None = None) -> _Layout:
        """For the picture as played (``width`` x ``height``, default: as probed)."""
        w, h = width or p.width, height or p.height
        interval_s = max(1, math.ceil(p.duration_ms / 1000 / MAX_SPRITE_TILES))
        return cls(
            *_fit(w, h, ANALYSIS_SIDE),
            *_fit(w, h, TILE_SIDE),
            tile_every=max(1, round(interval_s * p.fps_num / p.fps_den)),
        )


class _Decode:
    """One ffmpeg run with analysis outputs on pipes, read concurrently."""

    def __init__(
        self,
        p: ProbeResult,
        regions: tuple[Region, ...],
        limits: RunLimits,
        threshold: int = MOTION_PIXEL_THRESHOLD,
    ):
        self.p = p
        layout = _Layout.of(p, *_playable_size(p))
        self.aw, self.ah = layout.aw, layout.ah
        self.tw, self.th = layout.tw, layout.th
        self.tile_every = layout.tile_every
        self.frames = FrameAnalyzer(self.aw, self.ah, regions, threshold)
        self.audio = AudioAnalyzer()
        self.tiles: list[np.ndarray] = []
        self.run = StreamingRun(limits)
        self._tile_buf = b""

    def video_branches(self, video: FilterableStream) -> FilterableStream:
        """The MP4's video, plus grey analysis frames and sprite tiles split off it.

        The grey frames are sampled from the luma plane the way ``ipr.media.decode`` samples
        them (every n-th pixel, then a 2×2 area average), which costs next to nothing beside
        the encode; an area scale of the whole picture would cost a fifth of it.
        """
        p = self.p
        video = _orient(video, p)
        video = video.filter("fps", f"{p.fps_num}/{p.fps_den}")
        w, h = _playable_size(p)
        video = video.filter("scale", w, h, flags="bicubic").filter("setsar", 1)
        video = video.filter("format", "yuv420p")
        parts = video.split()
        ow, oh = w, h
        stride = luma_stride(ow, oh, self.aw, self.ah)
        luma = parts[0].filter("extractplanes", "y")
        sampled = luma.filter("scale", -(-ow // stride), -(-oh // stride), flags="neighbor")
        self._grey = sampled.filter("scale", self.aw, self.ah, flags="area")
        tiles = parts[1].filter("select", f"not(mod(n,{self.tile_every}))")
        tiles = tiles.filter("scale", self.tw, self.th, flags="area")
        self._tiles = tiles.filter("format", "bgr24")
        return parts[2]

    def audio_branches(self, audio: FilterableStream) -> FilterableStream:
        """The MP4's audio, plus 8 kHz mono PCM for the envelope."""
        audio = audio.filter("aresample", **{"async": 1, "first_pts": 0})
        parts = audio.asplit()
        self._pcm = _analysis_pcm(parts[1])
        return parts[0]

    def pipe_outputs(self, has_audio: bool) -> list[OutputStream]:
        t_fd, t_pipe = self.run.extra_pipe()
        self._tile_fd = t_fd
        raw = {"fps_mode": "passthrough", "format": "rawvideo"}
        outs = [
            ffmpeg.output(self._grey, "pipe:1", **raw),
            ffmpeg.output(self._tiles, t_pipe, **raw),
        ]
        self._audio_fd = None
        if has_audio:
            a_fd, a_pipe = self.run.extra_pipe()
            self._audio_fd = a_fd
            outs.append(ffmpeg.output(self._pcm, a_pipe, format="s16le"))
        return outs

    def signals(self) -> Signals:
        return Signals.collect(self.frames, self.audio, self.tiles)

    def _take_tiles(self, data: bytes) -> None:
        size = self.tw * self.th * 3
        buf = self._tile_buf + data
        n = len(buf) // size
        for i in range(n):
            tile = np.frombuffer(buf[i * size : (i + 1) * size], np.uint8)
            self.tiles.append(tile.reshape(self.th, self.tw, 3))
        self._tile_buf = buf[n * size :]

    def execute(
        self, args: list[str], progress: Progress | None, cancelled: Cancelled | None
    ) -> None:
        proc = self.run.start(args)
        readers = [stream_reader(self._tile_fd, self._take_tiles)]
        if self._audio_fd is not None:
            readers.append(stream_reader(self._audio_fd, self.audio.feed))
        frame_bytes = self.aw * self.ah
        batch = 64
        expected = max(1, self.p.duration_ms * self.p.fps_num // (1000 * self.p.fps_den))
        stop = False
        assert proc.stdout is not None
        try:
            while True:
                data = proc.stdout.read(frame_bytes * batch)
                if not data:
                    break
                n = len(data) // frame_bytes
                if n:
                    arr = np.frombuffer(data[: n * frame_bytes], np.uint8)
                    self.frames.feed(arr.reshape(n, self.ah, self.aw))
                if len(data) % frame_bytes:
                    rest = proc.stdout.read(frame_bytes - len(data) % frame_bytes)
                    arr = np.frombuffer(data[n * frame_bytes :] + rest, np.uint8)
                    if len(arr) == frame_bytes:
                        self.frames.feed(arr.reshape(1, self.ah, self.aw))
                if progress is not None:
                    progress("analysing", min(1.0, self.frames.frames / expected))
                if cancelled is not None and cancelled():
                    stop = True
                    break
        except BaseException:
            self.run.abort()
            raise
        try:
            rc = self.run.finish(cancelled=stop)
        finally:
            for t in readers:
                t.join(timeout=30)
        self.audio.close()
        if rc != 0:
            raise ProcessingError(
                "The recording could not be decoded to the end; it is probably damaged. Copy it "
                "again from the original device and re-upload it.",
                code="decode_failed",
                detail="\n".join(self.run.stderr_tail),
            )
        if self.frames.frames == 0:
            raise ProbeError(
                "No picture could be decoded from this recording; the video track is damaged.",
                code="no_decodable_video",
            )


def _limits_for(p: ProbeResult, settings: IngestSettings) -> RunLimits:
    timeout = settings.timeout_s or 120.0 + 3.0 * p.duration_ms / 1000
    return RunLimits(
        timeout_s=timeout,
        cpu_s=int(timeout * 2) + 60,
        file_size_bytes=max(4 * GIB, 3 * p.size_bytes),
    )


def _force_keyframes(p: ProbeResult, settings: IngestSettings) -> dict[str, str]:
    gop = {"g": str(max(1, round(2 * p.fps_num / p.fps_den)))}
    if settings.strategy != "fixed":
        return gop
    times = range(settings.fixed_ms, p.duration_ms, settings.fixed_ms)
    listed = ",".join(f"{t / 1000:.3f}" for t in times)
    return {**gop, "force_key_frames": listed} if listed else gop


def _transcode_with_analysis(
    p: ProbeResult,
    dst: Path,
    settings: IngestSettings,
    limits: RunLimits,
    progress: Progress | None,
    cancelled: Cancelled | None,
) -> Signals:
    dec = _Decode(p, settings.regions, limits, settings.motion_threshold)
    dec.execute(_transcode_args(p, dst, settings, dec), progress, cancelled)
    return dec.signals()


def _transcode_args(p: ProbeResult, dst: Path, settings: IngestSettings, dec: _Decode) -> list[str]:
    """One ffmpeg run: the MP4 from the first video and audio stream, plus the analysis pipes."""
    src = pinned_input(Path(p.path), p.format_name, noautorotate=None)
    streams = [dec.video_branches(src[str(p.video_index)])]
    options = {**VIDEO_ENCODE, **_force_keyframes(p, settings), "fps_mode": "cfr"}
    if p.has_audio:
        streams.append(dec.audio_branches(src[str(p.audio_index)]))
        options.update(AUDIO_ENCODE)
    mp4 = ffmpeg.output(*streams, str(dst), **options, **STRIP_METADATA, **MP4_OUT)
    return command(mp4, *dec.pipe_outputs(p.has_audio))


def _analysis_pcm(audio: FilterableStream) -> FilterableStream:
    """The audio the envelope is computed from: 8 kHz mono 16-bit."""
    audio = audio.filter("aresample", AUDIO_RATE)
    return audio.filter("aformat", sample_fmts="s16", channel_layouts="mono")


@dataclass(frozen=True)
class _Split:
    """Clips cut by the stream-copy run itself: at the first keyframe at or after each time."""

    folder: Path
    times_ms: list[int]

    @property
    def listing(self) -> Path:
        return self.folder / "segments.csv"


def _remux_args(
    p: ProbeResult, dst: Path, pcm_pipe: str | None = None, split: _Split | None = None
) -> list[str]:
    """Stream copy of the first video (and audio, re-encoded unless AAC) stream into MP4; with
    ``pcm_pipe`` the same run also decodes the audio for analysis onto that pipe, and with
    ``split`` it also writes the clips (NNN.mp4 from 001)."""
    src = pinned_input(Path(p.path), p.format_name)
    streams = [src[str(p.video_index)]]
    options: dict[str, str] = {"c:v": "copy"}
    if p.has_audio:
        streams.append(src[str(p.audio_index)])
        options.update({"c:a": "copy"} if p.audio_codec == "aac" else AUDIO_ENCODE)
    outputs = [ffmpeg.output(*streams, str(dst), **options, **STRIP_METADATA, **MP4_OUT)]
    if split is not None:
        segments = {
            "format": "segment",
            "segment_times": ",".join(f"{t / 1000:.3f}" for t in split.times_ms),
            "segment_format": "mp4",
            "segment_format_options": "movflags=+faststart",
            "segment_start_number": "1",
            "reset_timestamps": "1",
            "segment_list": str(split.listing),
            "segment_list_type": "csv",
        }
        target = str(split.folder / "%03d.mp4")
        outputs.append(ffmpeg.output(*streams, target, **options, **STRIP_METADATA, **segments))
    if p.has_audio and pcm_pipe:
        audio = src[str(p.audio_index)].filter("aresample", **{"async": 1, "first_pts": 0})
        outputs.append(ffmpeg.output(_analysis_pcm(audio), pcm_pipe, format="s16le"))
    return command(*outputs)


def _remux(
    p: ProbeResult, dst: Path, limits: RunLimits, split: _Split | None = None
) -> AudioAnalyzer:
    """The stream copy (and clips), and the envelope of the audio decoded by the same run."""
    audio = AudioAnalyzer()
    copy = StreamingRun(limits)
    fd, pipe = copy.extra_pipe() if p.has_audio else (None, None)
    if split is not None:
        split.folder.mkdir(parents=True, exist_ok=True)
    proc = copy.start(_remux_args(p, dst, pipe, split))
    reader = stream_reader(fd, audio.feed) if fd is not None else None
    try:
        assert proc.stdout is not None
        proc.stdout.read()  # nothing is written there; returns when ffmpeg ends
        rc = copy.finish()
    except BaseException:
        copy.abort()
        raise
    finally:
        if reader is not None:
            reader.join(timeout=60)
    if rc != 0:
        raise ProcessingError(
            "The recording could not be copied into a playable file; it is probably damaged.",
            code="remux_failed",
            detail="\n".join(copy.stderr_tail),
        )
    audio.close()
    return audio


def _analyse(
    src: Path,
    fmt: str,
    p: ProbeResult,
    regions: tuple[Region, ...],
    work: Path,
    limits: RunLimits,
    progress: Progress | None,
    cancelled: Cancelled | None,
    thumbnail: Path | None = None,
    threshold: int = MOTION_PIXEL_THRESHOLD,
) -> Signals:
    """The analysis decode of a file that is played as it is: ``ipr.media.decode`` in a child
    process, under the same limits, deadline and kill switch as ffmpeg. With ``thumbnail``
    the child also writes the first frame there (THUMB_WIDTH wide, as ``extract_thumbnail``)."""
    layout = _Layout.of(p)
    out = work / f"signals-{uuid.uuid4().hex}.npz"
    boxes = [[r.name, r.x, r.y, r.w, r.h] for r in regions]
    args = [
        sys.executable, "-m", "ipr.media.decode", str(src.resolve()), str(out),
        "--format", fmt,
        "--rate", f"{p.fps_num}/{p.fps_den}",
        "--size", f"{layout.aw}x{layout.ah}",
        "--tile-size", f"{layout.tw}x{layout.th}",
        "--tile-every", str(layout.tile_every),
        "--regions", json.dumps(boxes),
        "--threshold", str(threshold),
    ]  # fmt: skip
    if thumbnail is not None:
        size = f"{THUMB_WIDTH}x{_even(THUMB_WIDTH * p.height / max(1, p.width))}"
        args += ["--thumbnail", str(thumbnail), "--thumbnail-size", size]
    child = StreamingRun(limits)
    proc = child.start(args, env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
    expected = max(1, p.duration_ms * p.fps_num // (1000 * p.fps_den))
    stop = False
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith(b"frames ") and progress is not None:
                progress("analysing", min(1.0, int(line.split()[1]) / expected))
            if cancelled is not None and cancelled():
                stop = True
                break
    except BaseException:
        child.abort()
        raise
    try:
        rc = child.finish(cancelled=stop)
        if rc != 0 or not out.is_file():
            tail = "\n".join(child.stderr_tail)
            if rc == 3:
                raise ProbeError(
                    "No picture could be decoded from this recording; the video track is damaged.",
                    code="no_decodable_video",
                )
            raise ProcessingError(
                "The recording could not be decoded to the end; it is probably damaged. Copy it "
                "again from the original device and re-upload it.",
                code="decode_failed",
                detail=tail,
            )
        return Signals.load(out)
    finally:
        out.unlink(missing_ok=True)


def _write_sprite(signals: Signals, layout: _Layout, p: ProbeResult, dst: Path) -> dict:
    tiles = signals.tiles or [np.zeros((layout.th, layout.tw, 3), np.uint8)]
    th, tw = tiles[0].shape[:2]
    cols = min(SPRITE_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tile
    if not cv2.imwrite(str(dst), sheet, [cv2.IMWRITE_JPEG_QUALITY, 80]):
        raise ProcessingError("The thumbnail sprite could not be written.", code="sprite_failed")
    return {
        "path": "sprite.jpg",
        "columns": cols,
        "rows": rows,
        "tile_width": tw,
        "tile_height": th,
        "interval_ms": frame_ms(layout.tile_every, p.fps_num, p.fps_den),
        "count": len(signals.tiles),
    }


@dataclass(frozen=True)
class _Facts:
    """The finished MP4 as the browser will see it, and its video packets when asked for."""

    duration_ms: int
    width: int
    height: int
    packets: list[tuple[int, bool]] | None  # (pts_ms, is_keyframe), in presentation order


def _playable_facts(playable: Path, limits: Limits, *, packets: bool = False) -> _Facts:
    """Duration and display size of the finished MP4 (and, with ``packets``, every video
    packet's time and keyframe flag) from one ffprobe run."""
    entries = "format=duration:stream=width,height" + (":packet=pts_time,flags" if packets else "")
    args = ffprobe_base(limits) + [
        "-f",
        "mov",
        "-select_streams",
        "v:0",
        "-show_entries",
        entries,
        "-of",
        "json",
        "-i",
        f"file:{playable}",
    ]
    info = json.loads(run(args, RunLimits(timeout_s=limits.probe_timeout_s)).stdout or b"{}")
    stream = (info.get("streams") or [{}])[0]
    duration = round(float(info.get("format", {}).get("duration", 0)) * 1000)
    listed = None
    if packets:
        listed = sorted(
            (round(float(pk["pts_time"]) * 1000), "K" in pk.get("flags", ""))
            for pk in info.get("packets", [])
            if "pts_time" in pk
        )
    return _Facts(duration, int(stream.get("width", 0)), int(stream.get("height", 0)), listed)


def ingest(
    src: Path,
    out_dir: Path,
    settings: IngestSettings = IngestSettings(),
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> IngestResult:
    """Turn an upload into playable.mp4, sprite.jpg, analysis.json, waveform.json and clips/.

    Work happens in a hidden folder inside out_dir that is moved into place only at the end;
    on any failure or cancellation it is removed and a MediaError is raised.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / f".ingest-{uuid.uuid4().hex}"
    work.mkdir()
    try:
        result = _ingest_into(Path(src), work, settings, progress, cancelled)
        _move_into_place(work, out_dir)
        return result
    except MediaError:
        raise
    except Exception as exc:  # an unexpected failure still leaves nothing behind
        raise ProcessingError(
            "Processing failed unexpectedly; the recording was not stored.",
            code="internal",
            detail=repr(exc),
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _move_into_place(work: Path, out_dir: Path) -> None:
    names = ["playable.mp4", "sprite.jpg", "analysis.json", "waveform.json", "clips"]
    moved: list[Path] = []
    try:
        for name in names:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(work / name, target)
            moved.append(target)
    except OSError as exc:
        for target in moved:
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        raise ProcessingError("The processed files could not be stored.", code="storage") from exc


def _ingest_into(
    src: Path,
    work: Path,
    settings: IngestSettings,
    progress: Progress | None,
    cancelled: Cancelled | None,
) -> IngestResult:
    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)
        if cancelled is not None and cancelled():
            raise IngestCancelled("Processing was cancelled; nothing was kept.")

    report("probing", 0.0)
    p = probe(src, limits=settings.limits)
    limits = _limits_for(p, settings)
    playable = work / "playable.mp4"
    remuxed = qualifies_for_remux(p)
    split = None
    if remuxed:
        # The stream copy (disk-bound, seconds) runs beside the one analysis decode of the
        # source; fixed-length clips are known in advance, so the same copy also cuts them.
        if settings.strategy == "fixed":
            planned = segment(p.duration_ms, "fixed", fixed_ms=settings.fixed_ms,
                              min_ms=settings.min_clip_ms, max_ms=settings.max_clip_ms)  # fmt: skip
            if len(planned) > 1:
                split = _Split(work / "clips", [start for start, _ in planned[1:]])
        report("analysing", 0.0)
        with ThreadPoolExecutor(1) as pool:
            copy = pool.submit(_remux, p, playable, limits, split)
            try:
                signals = _analyse(
                    src, p.format_name, p, settings.regions, work, limits, progress, cancelled,
                    thumbnail=work / FIRST_THUMB,
                    threshold=settings.motion_threshold,
                )  # fmt: skip
            except BaseException:
                wait([copy])  # the decode's reason is the one to report; the copy just ends
                raise
            audio = copy.result()
        signals.rms, signals.peak = audio.rms, audio.peak
    else:
        report("transcoding", 0.0)
        signals = _transcode_with_analysis(p, playable, settings, limits, progress, cancelled)
    report("analysing", 1.0)
    # The packet list is needed only when the clips are cut after the copy, not by it.
    facts = _playable_facts(playable, settings.limits, packets=split is None)
    duration_ms, width, height = facts.duration_ms, facts.width, facts.height
    scores = signals.scores
    cut_frames = detect_cuts(scores, p.fps_num, p.fps_den, signals.means, signals.shapes)
    scene_cuts_ms = [frame_ms(i, p.fps_num, p.fps_den) for i in cut_frames]
    silences = detect_silences(signals.rms, duration_ms=duration_ms) if p.has_audio else []
    motion = _motion(signals, p, settings.motion_threshold)
    waveform = {"sample_rate": AUDIO_RATE, "levels": waveform_levels(signals.peak)}
    sprite = _write_sprite(signals, _Layout.of(p, width, height), p, work / "sprite.jpg")
    report("clips", 0.0)
    clips = None
    if split is not None:
        keyframes = [frame_ms(int(i), p.fps_num, p.fps_den) for i in signals.keyframes]
        clips = _clips_from_split(split, keyframes, duration_ms)
    if clips is None:
        packets = facts.packets if facts.packets is not None else video_packets(playable)
        clips = _make_clips(
            playable, work, duration_ms, settings, scene_cuts_ms, silences, packets, report
        )
    result = IngestResult(
        duration_ms=duration_ms,
        width=width,
        height=height,
        fps_num=p.fps_num,
        fps_den=p.fps_den,
        has_audio=p.has_audio,
        remuxed=remuxed,
        playable_path="playable.mp4",
        scene_cuts_ms=scene_cuts_ms,
        silences_ms=[[a, b] for a, b in silences],
        motion_energy=motion.to_dict(),
        sprite=sprite,
        waveform=waveform,
        clips=clips,
        scene_scores=[round(float(s), 2) for s in scores],
        source={"format": p.format_name, "video_codec": p.video_codec, "rotation": p.rotation},
    )
    analysis = {
        k: v for k, v in result.to_dict().items() if k not in ("waveform", "clips", "sprite")
    }
    (work / "analysis.json").write_text(json.dumps(analysis), encoding="utf-8")
    (work / "waveform.json").write_text(json.dumps(waveform), encoding="utf-8")
    report("done", 1.0)
    return result


def _clips_from_split(
    split: _Split, keyframes_ms: list[int], duration_ms: int
) -> list[Clip] | None:
    """The clips the copy run cut, with their exact bounds; None (and the folder emptied) if
    they are not what the keyframes say they must be, so they are cut again the slow way."""
    starts = [0]
    for t in split.times_ms:
        key = next((k for k in keyframes_ms if k >= t), None)
        if key is not None and starts[-1] < key < duration_ms:
            starts.append(key)
    bounds = list(zip(starts, starts[1:] + [duration_ms], strict=True))
    try:
        rows = split.listing.read_text(encoding="utf-8").splitlines()
        listed = [round(float(row.split(",")[1]) * 1000) for row in rows if row.strip()]
    except (OSError, ValueError, IndexError):
        listed = []
    split.listing.unlink(missing_ok=True)
    files = sorted(split.folder.glob("*.mp4"))
    expected = [split.folder / f"{i:03d}.mp4" for i in range(1, len(bounds) + 1)]
    # The listing gives each segment's first packet (audio may lead the keyframe a little).
    agrees = len(listed) == len(bounds) and all(
        abs(a - b) <= SPLIT_TOLERANCE_MS for a, (b, _) in zip(listed, bounds, strict=True)
    )
    if files != expected or not agrees:
        shutil.rmtree(split.folder, ignore_errors=True)
        return None
    for i in range(1, len(bounds) + 1):
        if i == 1 and _take_first_thumbnail(split.folder.parent, split.folder / "001.jpg"):
            continue
        extract_thumbnail(split.folder / f"{i:03d}.mp4", split.folder / f"{i:03d}.jpg", 0)
    return [
        Clip(i, start, end, f"clips/{i:03d}.mp4", f"clips/{i:03d}.jpg")
        for i, (start, end) in enumerate(bounds, start=1)
    ]


def _make_clips(
    playable: Path,
    work: Path,
    duration_ms: int,
    settings: IngestSettings,
    scene_cuts_ms: list[int],
    silences: list[tuple[int, int]],
    packets: list[tuple[int, bool]],
    report: Callable[[str, float], None],
) -> list[Clip]:
    bounds = segment(
        duration_ms,
        settings.strategy,
        fixed_ms=settings.fixed_ms,
        min_ms=settings.min_clip_ms,
        max_ms=settings.max_clip_ms,
        scene_cuts_ms=scene_cuts_ms,
        silences_ms=silences,
    )
    bounds = snap_to_keyframes(bounds, [t for t, key in packets if key])
    if len(bounds) == 1:
        # One clip is the whole playable copy: the same bytes a stream copy would give, copied
        # as a file (no ffmpeg run; not a hard link, so no write to a clip reaches the copy).
        (work / "clips").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(playable, work / "clips" / "001.mp4")
    else:
        write_clips(
            playable, work / "clips", bounds, packets=packets, thumbnails=False,
            progress=lambda done, total: report("clips", done / total),
        )  # fmt: skip
    for i, (start, _) in enumerate(bounds, start=1):
        thumb = work / "clips" / f"{i:03d}.jpg"
        if not (i == 1 and _take_first_thumbnail(work, thumb)):
            extract_thumbnail(playable, thumb, start)
    return [
        Clip(i, start, end, f"clips/{i:03d}.mp4", f"clips/{i:03d}.jpg")
        for i, (start, end) in enumerate(bounds, start=1)
    ]


def _take_first_thumbnail(work: Path, dst: Path) -> bool:
    """Use the first frame the decode child wrote (remux path) as the first clip's thumbnail."""
    first = work / FIRST_THUMB
    if not first.is_file():
        return False
    os.replace(first, dst)
    return True


def _motion(signals: Signals, p: ProbeResult, threshold: int) -> MotionEnergy:
    repeated = signals.repeated if len(signals.repeated) == signals.frames else None
    return motion_energy(
        p.fps_num / p.fps_den, signals.motion, signals.region_names, repeated, threshold
    )


def compute_motion_energy(
    playable: Path,
    regions: list[Region] | tuple[Region, ...],
    *,
    limits: Limits = DEFAULT_LIMITS,
    threshold: int = MOTION_PIXEL_THRESHOLD,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> MotionEnergy:
    """Re-run motion energy on an existing playable copy, e.g. after moving the regions."""
    p = probe(playable, limits=limits)
    run_limits = _limits_for(p, IngestSettings(limits=limits))
    with tempfile.TemporaryDirectory(prefix="ipr-motion-") as tmp:
        signals = _analyse(
            Path(p.path), p.format_name, p, tuple(regions), Path(tmp), run_limits,
            progress, cancelled, threshold=threshold,
        )  # fmt: skip
    return _motion(signals, p, threshold)


@dataclass
class AudioAnalysis:
    duration_ms: int
    silences_ms: list[tuple[int, int]]
    waveform: dict


def analyze_audio(path: Path, *, timeout_s: float = 600.0) -> AudioAnalysis:
    """Silences and waveform of any accepted file with audio, including audio-only WAV/FLAC."""
    from ipr.media.probe import CONTAINER_WHITELIST, sniff

    path = Path(path).resolve()
    sniff(path)
    head = ffprobe_base(DEFAULT_LIMITS) + ["-show_entries", "format=format_name", "-of", "json"]
    info = json.loads(run([*head, "-i", f"file:{path}"], RunLimits(timeout_s=60)).stdout or b"{}")
    fmt = str(info.get("format", {}).get("format_name", "")).split(",")[0]
    if not fmt or fmt not in CONTAINER_WHITELIST.split(","):
        raise ProbeError("The file could not be read as audio.", code="unreadable")
    src = pinned_input(path, fmt)
    pcm = ffmpeg.output(src["a:0"], "pipe:1", ac="1", ar=str(AUDIO_RATE), format="s16le")
    done = run(command(pcm), RunLimits(timeout_s=timeout_s))
    if done.returncode != 0:
        raise ProbeError("The audio could not be decoded.", code="unreadable", detail=done.stderr)
    audio = AudioAnalyzer()
    audio.feed(done.stdout)
    audio.close()
    duration_ms = len(done.stdout) // 2 * 1000 // AUDIO_RATE
    return AudioAnalysis(
        duration_ms=duration_ms,
        silences_ms=detect_silences(audio.rms, duration_ms=duration_ms),
        waveform={"sample_rate": AUDIO_RATE, "levels": waveform_levels(audio.peak)},
    )
