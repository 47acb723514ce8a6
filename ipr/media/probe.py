"""Probe and validate an upload before any real work: is this a usable session recording?

ffprobe runs with the input protocol limited to `file` and the demuxer limited to real media
containers, so a playlist, concat list or manifest renamed to `.mp4` is never followed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from ipr.media._run import FFPROBE, GIB, RunLimits, run
from ipr.media.errors import ProbeError, UnsupportedMedia

# Demuxers we let ffprobe/ffmpeg use. Audio-only containers are listed so that a WAV gets the
# clear "no video" answer (and so the audio analysis can read them), not "unknown format".
VIDEO_CONTAINERS = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv", "asf", "mxf", "ogg")
AUDIO_CONTAINERS = ("wav", "w64", "mp3", "flac", "aac", "aiff", "ogg", "caf")
CONTAINER_WHITELIST = ",".join(dict.fromkeys(VIDEO_CONTAINERS + AUDIO_CONTAINERS))

# Codecs ffmpeg decodes reliably and cameras/phones/browsers actually produce.
VIDEO_CODECS = frozenset(
    [
        "h264",
        "hevc",
        "mpeg4",
        "vp8",
        "vp9",
        "av1",
        "mpeg2video",
        "mpeg1video",
        "mjpeg",
        "h263",
        "prores",
        "dnxhd",
        "dvvideo",
        "theora",
        "wmv2",
        "wmv3",
        "vc1",
        "msmpeg4v2",
        "msmpeg4v3",
        "ffv1",
        "flv1",
    ]
)
AUDIO_CODECS = frozenset(
    [
        "aac",
        "mp3",
        "mp2",
        "opus",
        "vorbis",
        "ac3",
        "eac3",
        "flac",
        "alac",
        "amr_nb",
        "amr_wb",
        "wmav2",
        "pcm_alaw",
        "pcm_mulaw",
        "pcm_s16le",
        "pcm_s16be",
        "pcm_s24le",
        "pcm_s24be",
        "pcm_s32le",
        "pcm_f32le",
        "pcm_u8",
        "adpcm_ima_wav",
    ]
)

# Frame rates a constant-frame-rate copy may use when the source's own rate is meaningless.
STANDARD_RATES = tuple(
    Fraction(n, d)
    for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1), (60, 1))
)

PLAYLIST_SIGNS = (
    (b"#EXTM3U", "an HLS playlist (.m3u8)"),
    (b"#EXTINF", "an M3U playlist"),
    (b"ffconcat", "an ffmpeg concat list"),
    (b"[playlist]", "a PLS playlist"),
    (b"<?xml", "an XML manifest (DASH/SMIL)"),
    (b"<MPD", "a DASH manifest"),
    (b"<smil", "a SMIL playlist"),
    (b"<asx", "an ASX playlist"),
    (b"v=0", "an SDP session description"),
    (b"file ", "an ffmpeg concat list"),
    (b"file\t", "an ffmpeg concat list"),
)
IMAGE_SIGNS = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)


@dataclass(frozen=True)
class Limits:
    """What we accept as a session recording; anything outside is refused before processing."""

    max_file_bytes: int = 20 * GIB
    min_side: int = 32
    max_side: int = 8192
    max_pixels: int = 8192 * 4320
    min_duration_ms: int = 1_000
    max_duration_ms: int = 8 * 3600 * 1000
    probe_timeout_s: float = 60.0


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe says about the file, reduced to what the pipeline decides on."""

    path: str
    format_name: str  # the demuxer to pin with -f on every later run
    duration_ms: int
    size_bytes: int
    width: int  # display size: after rotation and sample aspect ratio
    height: int
    coded_width: int
    coded_height: int
    fps_num: int  # nominal rate of the constant-frame-rate copy
    fps_den: int
    is_vfr: bool
    video_codec: str
    pix_fmt: str
    rotation: int  # clockwise degrees needed to show the picture upright: 0, 90, 180, 270
    sar: tuple[int, int]
    interlaced: bool
    video_index: int
    has_audio: bool
    audio_codec: str | None = None
    audio_index: int | None = None
    audio_channels: int = 0
    sample_rate: int = 0
    start_ms: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    def to_dict(self) -> dict:
        return asdict(self)


def _refuse(message: str, code: str, unsupported: bool = False) -> None:
    raise (UnsupportedMedia if unsupported else ProbeError)(message, code=code)


def sniff(path: Path) -> None:
    """Refuse text playlists and still images by their first bytes, before ffprobe sees them."""
    with path.open("rb") as f:
        head = f.read(4096)
    if not head:
        _refuse("The file is empty (0 bytes). Upload the recording again.", "empty")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for sign, what in PLAYLIST_SIGNS:
        if text[: len(sign)].lower() == sign.lower():
            _refuse(
                f"This file is {what}, not a video recording. Playlists and manifests only point "
                "to other files; upload the recording itself (for example the .mp4 from the "
                "camera).",
                "playlist",
                unsupported=True,
            )
    if any(head.startswith(sign) for sign in IMAGE_SIGNS) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    ):
        _refuse(
            "This file is a still image, not a video recording. Upload the session video.",
            "still_image",
            unsupported=True,
        )


def ffprobe_base(limits: Limits) -> list[str]:
    return [
        FFPROBE,
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        CONTAINER_WHITELIST,
    ]


def _ratio(text: str | None) -> Fraction | None:
    sep = "/" if text and "/" in text else ":"
    if not text or sep not in text:
        return None
    n, _, d = text.partition(sep)
    try:
        n_i, d_i = int(n), int(d)
    except ValueError:
        return None
    if n_i <= 0 or d_i <= 0:
        return None
    return Fraction(n_i, d_i)


def _seconds_ms(text: object) -> int | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return round(value * 1000)


def _rotation(stream: dict) -> tuple[int, list[str]]:
    raw: object = None
    for sd in stream.get("side_data_list", []) or []:
        if "rotation" in sd:
            raw = sd["rotation"]
    if raw is None:
        raw = (stream.get("tags") or {}).get("rotate")
    if raw is None:
        return 0, []
    try:
        value = int(float(str(raw)))
    except ValueError:
        return 0, ["ignored an unreadable rotation value"]
    if value % 90 != 0 or abs(value) > 360:
        return 0, [f"ignored an invalid rotation of {value} degrees"]
    # ffprobe reports the display matrix angle (counter-clockwise); we store clockwise turns.
    return (-value) % 360, []


def _nominal_rate(stream: dict) -> tuple[Fraction, bool]:
    r = _ratio(stream.get("r_frame_rate"))
    avg = _ratio(stream.get("avg_frame_rate"))
    is_vfr = r is not None and avg is not None and abs(float(r) - float(avg)) > 0.01 * float(r)
    if r is not None and 1 <= r <= 61:
        return r, is_vfr
    if avg is not None and 1 <= avg <= 61:
        return min((s for s in STANDARD_RATES if s >= avg * Fraction(99, 100)), default=avg), True
    if avg is not None and avg > 61:
        return Fraction(60), True
    return Fraction(25), True


def _duration_by_scan(path: Path, limits: Limits, fmt: str, index: int) -> int | None:
    """Read packet times when the container states no duration (browser-recorded WebM)."""
    args = ffprobe_base(limits) + [
        "-f",
        fmt,
        "-select_streams",
        str(index),
        "-show_entries",
        "packet=pts_time,duration_time",
        "-of",
        "csv=p=0",
        "-i",
        f"file:{path}",
    ]
    done = run(args, RunLimits(timeout_s=limits.probe_timeout_s))
    end = None
    for line in done.stdout.decode("ascii", "replace").splitlines():
        parts = line.split(",")
        start = _seconds_ms(parts[0]) if parts else None
        length = _seconds_ms(parts[1]) if len(parts) > 1 else 0
        if start is not None:
            end = max(end or 0, start + (length or 0))
    return end


def _check_packets(path: Path, limits: Limits, fmt: str, duration_ms: int) -> None:
    """Read a few packets at the start and near the end: catches encryption and truncation."""
    tail_s = max(0.0, duration_ms / 1000 - 2.0)
    args = ffprobe_base(limits) + [
        "-f",
        fmt,
        "-select_streams",
        "V:0",
        "-read_intervals",
        f"%+#5,{tail_s:.3f}%+#5",
        "-show_entries",
        "packet=pts_time:packet_side_data=side_data_type",
        "-of",
        "json",
        "-i",
        f"file:{path}",
    ]
    done = run(args, RunLimits(timeout_s=limits.probe_timeout_s))
    try:
        packets = json.loads(done.stdout or b"{}").get("packets", [])
    except json.JSONDecodeError:
        packets = []
    for p in packets:
        for sd in p.get("side_data_list", []) or []:
            if "encryption" in str(sd.get("side_data_type", "")).lower():
                _refuse(
                    "This recording is encrypted (DRM) and cannot be played or analysed. Export "
                    "an unprotected copy from the recording software.",
                    "encrypted",
                    unsupported=True,
                )
    # ffprobe prints the first interval's packets first; anything beyond them came from the tail.
    tail_read = len(packets) > 5
    if "partial file" in done.stderr or (duration_ms > 3000 and not tail_read):
        _refuse(
            "The recording is incomplete: the file ends before the video does (an interrupted "
            "upload or copy, or a camera that lost power). Copy the file again from the original "
            "device and re-upload it.",
            "truncated",
        )


def probe(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> ProbeResult:
    """Validate `path` as a session recording; raise ProbeError/UnsupportedMedia if it is not."""
    path = Path(path).resolve()
    if not path.is_file():
        _refuse("The uploaded file could not be found on the server.", "missing")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        _refuse(
            f"The file is {size / GIB:.1f} GB; the limit is {limits.max_file_bytes / GIB:.0f} GB. "
            "Split the session or export it at a lower bit rate.",
            "too_large",
            unsupported=True,
        )
    sniff(path)
    args = ffprobe_base(limits) + [
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "-i",
        f"file:{path}",
    ]
    done = run(args, RunLimits(timeout_s=limits.probe_timeout_s))
    if "not on whitelist" in done.stderr:
        _refuse(
            "This file type is not accepted. Upload a video recording in MP4, MOV, MKV, WebM, "
            "AVI or MPEG-TS.",
            "unsupported_container",
            unsupported=True,
        )
    try:
        info = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError:
        info = {}
    if done.returncode != 0 or "format" not in info:
        _refuse(
            "The file could not be read as video: it is damaged, incomplete or not a media file. "
            "Copy it again from the original device and re-upload it.",
            "unreadable",
        )
    return _validate(path, size, info, limits)


def _validate(path: Path, size: int, info: dict, limits: Limits) -> ProbeResult:
    fmt_info = info["format"]
    fmt = str(fmt_info.get("format_name", "")).split(",")[0]
    streams = info.get("streams", [])
    if any(
        "encryption" in str(sd.get("side_data_type", "")).lower()
        for s in streams
        for sd in (s.get("side_data_list") or [])
    ):
        _refuse(
            "This recording is encrypted (DRM) and cannot be played or analysed. Export an "
            "unprotected copy from the recording software.",
            "encrypted",
            unsupported=True,
        )
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos:
        what = "only audio" if audios else "no video"
        _refuse(
            f"This file contains {what}. A session recording needs a video track; upload the "
            "video file from the camera or phone.",
            "no_video",
            unsupported=True,
        )
    v = videos[0]
    codec = str(v.get("codec_name", "unknown"))
    if codec not in VIDEO_CODECS:
        _refuse(
            f"The video is encoded as '{codec}', which we do not process. Export the recording "
            "as H.264 MP4 and upload that.",
            "unsupported_codec",
            unsupported=True,
        )
    coded_w, coded_h = int(v.get("width") or 0), int(v.get("height") or 0)
    sar = _ratio(v.get("sample_aspect_ratio")) or Fraction(1)
    if not Fraction(1, 4) <= sar <= 4:
        sar = Fraction(1)
    rotation, warnings = _rotation(v)
    disp_w = round(coded_w * sar)
    disp_h = coded_h
    if rotation in (90, 270):
        disp_w, disp_h = disp_h, disp_w
    if (
        min(disp_w, disp_h) < limits.min_side
        or max(disp_w, disp_h) > limits.max_side
        or disp_w * disp_h > limits.max_pixels
    ):
        _refuse(
            f"The picture is {disp_w}x{disp_h} pixels, outside what a session recording can be "
            f"({limits.min_side} to {limits.max_side} pixels a side). Check the export settings.",
            "absurd_dimensions",
            unsupported=True,
        )
    rate, is_vfr = _nominal_rate(v)
    duration_ms = _seconds_ms(fmt_info.get("duration")) or _seconds_ms(v.get("duration"))
    if duration_ms is None:
        duration_ms = _duration_by_scan(path, limits, fmt, int(v["index"]))
    if duration_ms is None:
        _refuse(
            "The length of the recording cannot be determined; the file is probably damaged. "
            "Copy it again from the original device.",
            "unreadable",
        )
    assert duration_ms is not None
    if not limits.min_duration_ms <= duration_ms <= limits.max_duration_ms:
        _refuse(
            f"The recording lasts {duration_ms / 1000:.2f} s; a session recording must last "
            f"between {limits.min_duration_ms / 1000:.0f} s and "
            f"{limits.max_duration_ms / 3_600_000:.0f} h.",
            "absurd_duration",
            unsupported=True,
        )
    a = audios[0] if audios else None
    if a is not None and str(a.get("codec_name")) not in AUDIO_CODECS:
        _refuse(
            f"The audio is encoded as '{a.get('codec_name')}', which browsers cannot play and we "
            "do not convert. Export the recording with AAC or MP3 audio.",
            "unsupported_codec",
            unsupported=True,
        )
    _check_packets(path, limits, fmt, duration_ms)
    field_order = str(v.get("field_order", "progressive"))
    return ProbeResult(
        path=str(path),
        format_name=fmt,
        duration_ms=duration_ms,
        size_bytes=size,
        width=disp_w,
        height=disp_h,
        coded_width=coded_w,
        coded_height=coded_h,
        fps_num=rate.numerator,
        fps_den=rate.denominator,
        is_vfr=is_vfr,
        video_codec=codec,
        pix_fmt=str(v.get("pix_fmt", "")),
        rotation=rotation,
        sar=(sar.numerator, sar.denominator),
        interlaced=field_order in ("tt", "bb", "tb", "bt"),
        video_index=int(v["index"]),
        has_audio=a is not None,
        audio_codec=str(a["codec_name"]) if a else None,
        audio_index=int(a["index"]) if a else None,
        audio_channels=int(a.get("channels") or 0) if a else 0,
        sample_rate=int(a.get("sample_rate") or 0) if a else 0,
        start_ms=_seconds_ms(fmt_info.get("start_time")) or 0,
        warnings=warnings,
    )
