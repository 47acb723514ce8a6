"""Signals computed from the shared decode: scene cuts, motion energy, silences, waveform.

Everything here is plain NumPy on small frames and PCM chunks handed over by the decoder, so the
analysis costs little beyond the decode itself. Method notes and thresholds: docs/media.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

# Scene cuts, on the mean absolute grey-level difference between consecutive frames (0..255).
CUT_MIN_SCORE = 8.0  # a hard cut changes the picture by at least this much on average
CUT_RATIO = 3.0  # ... and stands out this many times above the surrounding frames' median
# ... and is not a change of the whole picture's level (a light switched on, a uniform background
# changing colour): with the mean change taken out, this share of the score must remain.
CUT_SHAPE_FRACTION = 0.3
CUT_WINDOW_MS = 1_000  # the surroundings: this much on each side
MIN_SCENE_MS = 500  # cuts closer than this to the previous one are flashes, not scenes
FREEZE_MAX_SCORE = 0.05  # a frame this close to the previous one is a held (frozen) picture
BLACK_MAX_MEAN = 24.0  # a held picture this dark (mean grey level) is a black hold
FREEZE_MIN_MS = 500  # a black hold at least this long ...
FREEZE_END_SCORE = 1.0  # ... ended by a change at least this large starts a new scene

# Motion energy (MEA-style): a pixel "moves" when its grey level changes by more than this
# (the default of a study's threshold setting).
MOTION_PIXEL_THRESHOLD = 10
BACKGROUND = "background"  # a region of this name is subtracted from the others (camera noise)
MISSING_REASON = "repeated frames (variable frame rate or dropped frames)"

# Audio: envelope of 10 ms windows of 8 kHz mono PCM.
AUDIO_RATE = 8_000
WINDOW_MS = 10
WINDOW_SAMPLES = AUDIO_RATE * WINDOW_MS // 1000
AUDIO_BLOCK_BYTES = 4 * AUDIO_RATE * 2  # PCM filtered at once: 4 s of s16 mono
MIN_SILENCE_MS = 250
MIN_SPEECH_MS = 100  # a weak sound burst shorter than this between quiet stretches is no speech
CLICK_MS = 50  # any burst shorter than this after smoothing (a click, a tap) is no speech
HIGHPASS_HZ = 80  # rumble, handling noise and hum below this are not speech
SMOOTH_MS = 30  # moving average of the dB envelope
# Hysteresis, as fractions of the way from the noise floor to the speech level (in dB): a pause
# starts when the envelope falls below ENTER and ends when it rises above LEAVE.
SILENCE_ENTER_FRACTION = 0.25
SILENCE_LEAVE_FRACTION = 0.35
WEAK_BURST_FRACTION = 0.6  # a burst whose loudest window stays below this is weak
MAX_RANGE_DB = 60  # a "floor" further below speech than this is digital silence, not room noise
WAVEFORM_LEVELS_MS = (20, 100, 500, 2_500)


@dataclass(frozen=True)
class Region:
    """A normalised rectangle of the picture (0..1 each) watched for one person's movement."""

    name: str
    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        if not (0 <= self.x < 1 and 0 <= self.y < 1 and self.w > 0 and self.h > 0):
            raise ValueError(f"region {self.name!r} lies outside the picture")
        if self.x + self.w > 1.0001 or self.y + self.h > 1.0001:
            raise ValueError(f"region {self.name!r} extends beyond the picture")

    def slices(self, width: int, height: int) -> tuple[slice, slice]:
        x0, y0 = round(self.x * width), round(self.y * height)
        x1 = max(x0 + 1, round((self.x + self.w) * width))
        y1 = max(y0 + 1, round((self.y + self.h) * height))
        return slice(y0, min(y1, height)), slice(x0, min(x1, width))


DEFAULT_REGIONS = (Region("left", 0.0, 0.0, 0.5, 1.0), Region("right", 0.5, 0.0, 0.5, 1.0))


@dataclass
class MotionEnergy:
    """Per-region share of changed pixels per frame, sampled at `rate_hz` from t=0.

    A sample is None where the frame repeats the one before it (a frame the constant-rate grid
    filled in for a missing one): it carries no measurement. `missing` counts them.
    """

    rate_hz: float
    series: dict[str, list[float | None]]
    missing: int = 0
    threshold: int = MOTION_PIXEL_THRESHOLD

    def to_dict(self) -> dict:
        out: dict = {"rate_hz": self.rate_hz, **self.series}
        out["threshold"] = self.threshold
        out["missing"] = self.missing
        if self.missing:
            out["missing_reason"] = MISSING_REASON
        return out


def motion_energy(
    rate_hz: float,
    motion: np.ndarray,
    names: list[str],
    repeated: np.ndarray | None,
    threshold: int = MOTION_PIXEL_THRESHOLD,
) -> MotionEnergy:
    """The stored series: each region's share, minus the background region's share (floored
    at 0) when there is one, rounded to 4 places, None at repeated frames."""
    motion = np.asarray(motion, dtype=float).reshape(len(motion), len(names))
    rep = np.zeros(len(motion), bool) if repeated is None else np.asarray(repeated, bool)
    series: dict[str, list[float | None]] = {}
    background = motion[:, names.index(BACKGROUND)] if BACKGROUND in names else None
    for i, name in enumerate(names):
        values = motion[:, i]
        if background is not None and name != BACKGROUND:
            values = np.maximum(values - background, 0.0)
        rounded = np.round(values, 4).tolist()
        series[name] = [None if r else v for v, r in zip(rounded, rep.tolist(), strict=True)]
    return MotionEnergy(rate_hz, series, int(rep.sum()), threshold)


class FrameAnalyzer:
    """Consumes small grey frames in display order; keeps scene scores and motion energy."""

    def __init__(
        self,
        width: int,
        height: int,
        regions: list[Region] | tuple[Region, ...],
        threshold: int = MOTION_PIXEL_THRESHOLD,
    ):
        self.width, self.height = width, height
        self.threshold = threshold
        self.regions = list(regions)
        self._slices = [r.slices(width, height) for r in self.regions]
        self._prev: np.ndarray | None = None
        self._scores: list[np.ndarray] = []
        self._means: list[np.ndarray] = []
        self._shapes: list[np.ndarray] = []
        self._motion: list[np.ndarray] = []
        self._repeated: list[np.ndarray] = []
        self.frames = 0

    def feed(self, frames: np.ndarray) -> None:
        """`frames` is (n, height, width) uint8."""
        n = len(frames)
        if n == 0:
            return
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        prev = frames[:1] if self._prev is None else self._prev[None]
        before = np.concatenate([prev, frames[:-1]])
        # |a - b| in uint8 without widening: max - min never wraps.
        diff = np.maximum(frames, before)
        diff -= np.minimum(frames, before)
        pixels = self.width * self.height
        flat = diff.reshape(n, -1)
        scores = flat.sum(axis=1, dtype=np.uint64) / pixels
        means = frames.reshape(n, -1).sum(axis=1, dtype=np.uint64) / pixels
        self._scores.append(scores)
        self._means.append(means)
        self._shapes.append(self._shape_scores(frames, before, scores))
        # a frame identical to the one before in every analysed pixel is a repeat the constant
        # rate filled in (camera pictures always carry some sensor noise); frame 0 is not
        repeated = flat.max(axis=1) == 0
        if self._prev is None:
            repeated[0] = False
        self._repeated.append(repeated)
        moved = diff > self.threshold
        shares = []
        for ys, xs in self._slices:
            region = moved[:, ys, xs]
            area = region.shape[1] * region.shape[2]
            shares.append(np.count_nonzero(region.reshape(n, -1), axis=1) / area)
        self._motion.append(np.stack(shares, axis=1))
        self._prev = frames[-1].copy()
        self.frames += n

    @staticmethod
    def _shape_scores(frames: np.ndarray, before: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Mean absolute difference with the mean difference taken out: what is left of a
        change once the picture's overall level shift is removed. Only frames that could be a
        hard cut (score >= CUT_MIN_SCORE, a few per minute) are measured; the rest are 0."""
        shapes = np.zeros(len(frames))
        for k in np.flatnonzero(scores >= CUT_MIN_SCORE).tolist():
            d = frames[k].astype(np.int16) - before[k].astype(np.int16)
            shapes[k] = float(np.abs(d - d.mean()).mean())
        return shapes

    @property
    def scores(self) -> np.ndarray:
        return np.concatenate(self._scores) if self._scores else np.zeros(0)

    @property
    def shapes(self) -> np.ndarray:
        """Per frame, the score without the overall level change (0 where no cut is possible)."""
        return np.concatenate(self._shapes) if self._shapes else np.zeros(0)

    @property
    def means(self) -> np.ndarray:
        return np.concatenate(self._means) if self._means else np.zeros(0)

    @property
    def repeated(self) -> np.ndarray:
        """Per frame: True where the frame repeats its predecessor exactly."""
        return np.concatenate(self._repeated) if self._repeated else np.zeros(0, bool)

    @property
    def motion(self) -> np.ndarray:
        """(frames, regions): each region's share of changed pixels per frame."""
        return np.concatenate(self._motion) if self._motion else np.zeros((0, len(self.regions)))


def frame_ms(index: int, fps_num: int, fps_den: int) -> int:
    """Presentation time of frame `index` in a constant-frame-rate stream starting at 0."""
    return (index * fps_den * 1000 * 2 + fps_num) // (2 * fps_num)


def detect_cuts(
    scores: np.ndarray,
    fps_num: int,
    fps_den: int,
    means: np.ndarray | None = None,
    shapes: np.ndarray | None = None,
) -> list[int]:
    """Frame indices that start a new scene: hard cuts, and the picture's return after a
    black hold (`means`, the frames' mean grey levels, tells black holds from still pictures).

    `shapes` (``FrameAnalyzer.shapes``) keeps a change of the whole picture's level (a uniform
    background changing colour) from passing for a cut. A black hold entered by a hard cut is
    one transition: the cut into it is the new scene, the picture's return is not another one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if means is None:
        means = np.full(n, 255.0)
    fps = fps_num / fps_den
    half = max(1, round(CUT_WINDOW_MS / 1000 * fps))
    freeze_frames = max(2, round(FREEZE_MIN_MS / 1000 * fps))
    min_gap = max(1, round(MIN_SCENE_MS / 1000 * fps))
    if n < 2:
        return []
    base = _surrounding_median(scores, half)
    hard = (scores >= CUT_MIN_SCORE) & (scores >= CUT_RATIO * np.maximum(base, 0.5))
    if shapes is not None:
        hard &= np.asarray(shapes, dtype=np.float64)[:n] >= CUT_SHAPE_FRACTION * scores
    # A black hold: consecutive frames that do not change and are dark; frozen[i] is the length
    # of the hold that ends just before frame i.
    held = (scores <= FREEZE_MAX_SCORE) & (np.asarray(means)[:n] <= BLACK_MAX_MEAN)
    held[0] = False  # frame 0 has no predecessor to be held from
    idx = np.arange(n)
    last_change = np.maximum.accumulate(np.where(held, -1, idx))
    run = idx - last_change  # length of the hold ending at i (0 if frame i is not held)
    frozen = np.concatenate([[0], run[:-1]])
    entered = np.maximum(idx - frozen - 1, 0)  # the frame that changed into the hold
    entered_by_cut = hard[entered] & (entered >= 1)
    after_hold = (frozen >= freeze_frames) & (scores >= FREEZE_END_SCORE) & ~entered_by_cut
    candidates = np.flatnonzero(hard | after_hold)
    cuts: list[int] = []
    for i in candidates.tolist():
        if i >= 1 and (not cuts or i - cuts[-1] >= min_gap):
            cuts.append(i)
    return cuts


def _surrounding_median(scores: np.ndarray, half: int) -> np.ndarray:
    """Per frame i >= 1, the median of the scores of frames max(1, i - half) .. i + half
    without i itself (0 where there are none): the level a cut has to stand out from."""
    n = len(scores)
    base = np.zeros(n)
    width = 2 * half + 1
    if n >= width + 1:
        windows = np.lib.stride_tricks.sliding_window_view(scores[1:], width)
        inner = np.delete(windows, half, axis=1)  # rows: centre frame 1 + half + k
        base[1 + half : 1 + half + len(inner)] = np.median(inner, axis=1)
        edges = [*range(1, 1 + half), *range(1 + half + len(inner), n)]
    else:
        edges = list(range(1, n))
    for i in edges:
        around = np.concatenate([scores[max(1, i - half) : i], scores[i + 1 : i + 1 + half]])
        base[i] = float(np.median(around)) if len(around) else 0.0
    return base


@cache
def _highpass() -> np.ndarray:
    """The 80 Hz high-pass as second-order sections (SciPy is imported only when audio is)."""
    from scipy import signal

    return signal.butter(4, HIGHPASS_HZ, "highpass", fs=AUDIO_RATE, output="sos")


@dataclass
class AudioAnalyzer:
    """Consumes mono s16 PCM at AUDIO_RATE; keeps a 10 ms envelope (RMS and peak).

    The RMS (for pauses) is taken after an 80 Hz high-pass so rumble does not pass for speech;
    the peak (for the waveform) is of the signal as recorded.
    """

    _pending: bytearray = field(default_factory=bytearray)
    _rms: list[np.ndarray] = field(default_factory=list)
    _peak: list[np.ndarray] = field(default_factory=list)
    _zi: np.ndarray = field(default_factory=lambda: np.zeros((_highpass().shape[0], 2)))

    def feed(self, data: bytes) -> None:
        """Add PCM bytes in any chunking. A pipe hands over a few KiB at a time and the filter
        costs a fixed ~0.5 ms per call, so bytes wait here until a block of AUDIO_BLOCK_BYTES
        (4 s of audio) is there: filtering each pipe chunk cost a second of CPU per 3 minutes,
        while ffmpeg's encoder needed both cores."""
        self._pending += data
        if len(self._pending) >= AUDIO_BLOCK_BYTES:
            self._flush()

    def _flush(self) -> None:
        """Filter every whole 10 ms window waiting; the part of a window stays."""
        step = WINDOW_SAMPLES * 2
        usable = len(self._pending) - len(self._pending) % step
        if usable:
            self._add(np.frombuffer(bytes(self._pending[:usable]), dtype="<i2"))
            del self._pending[:usable]

    def _add(self, samples: np.ndarray) -> None:
        x = samples.astype(np.float64) / 32768.0
        from scipy import signal

        filtered, self._zi = signal.sosfilt(_highpass(), x, zi=self._zi)
        win = filtered.reshape(-1, WINDOW_SAMPLES)
        self._rms.append(np.sqrt((win * win).mean(axis=1)))
        self._peak.append(np.abs(x.reshape(-1, WINDOW_SAMPLES)).max(axis=1))

    def close(self) -> None:
        self._flush()
        if len(self._pending) >= 2:
            tail = np.frombuffer(bytes(self._pending[: len(self._pending) // 2 * 2]), dtype="<i2")
            self._add(np.pad(tail, (0, WINDOW_SAMPLES - len(tail))))
        self._pending.clear()

    @property
    def rms(self) -> np.ndarray:
        return np.concatenate(self._rms) if self._rms else np.zeros(0)

    @property
    def peak(self) -> np.ndarray:
        return np.concatenate(self._peak) if self._peak else np.zeros(0)


def detect_silences(
    rms: np.ndarray,
    *,
    min_silence_ms: int = MIN_SILENCE_MS,
    min_speech_ms: int = MIN_SPEECH_MS,
    duration_ms: int | None = None,
) -> list[tuple[int, int]]:
    """Pauses as (start_ms, end_ms), from 10 ms RMS windows with thresholds set per recording.

    The thresholds sit between the recording's noise floor and its speech level (low and high
    percentiles of the smoothed envelope in dB), so they adapt to microphone gain and room noise;
    two thresholds (hysteresis) keep a breath or a fading word end from flickering in and out.
    """
    if len(rms) == 0:
        return []
    db = 20 * np.log10(np.maximum(rms, 1e-6))
    k = max(1, SMOOTH_MS // WINDOW_MS)
    if k > 1 and len(db) >= k:
        padded = np.pad(db, (k // 2, k - 1 - k // 2), mode="edge")
        db = np.convolve(padded, np.ones(k) / k, mode="valid")
    floor = float(np.percentile(db, 10))
    speech = float(np.percentile(db, 95))
    if speech - floor < 6:  # no contrast: all pause (digital silence) or all sound
        return [(0, duration_ms or len(rms) * WINDOW_MS)] if speech < -60 else []
    floor = max(floor, speech - MAX_RANGE_DB)
    enter = floor + SILENCE_ENTER_FRACTION * (speech - floor)
    leave = floor + SILENCE_LEAVE_FRACTION * (speech - floor)
    quiet = _hysteresis(db, enter, leave)
    # Clicks, and short weak bursts (a breath, a lip smack) between pauses, are not speech.
    weak = floor + WEAK_BURST_FRACTION * (speech - floor)
    min_speech = max(1, min_speech_ms // WINDOW_MS)
    click = max(1, CLICK_MS // WINDOW_MS)
    for start, end, value in _runs(quiet):
        if value or start == 0 or end == len(quiet):
            continue
        if end - start < click or (end - start < min_speech and db[start:end].max() < weak):
            quiet[start:end] = True
    end_ms = duration_ms if duration_ms is not None else len(rms) * WINDOW_MS
    out = []
    for start, end, value in _runs(quiet):
        if value and (end - start) * WINDOW_MS >= min_silence_ms:
            out.append((start * WINDOW_MS, min(end * WINDOW_MS, end_ms)))
    return out


def _hysteresis(db: np.ndarray, enter: float, leave: float) -> np.ndarray:
    """Quiet mask: becomes quiet below `enter`, becomes sound again above `leave`."""
    quiet = np.zeros(len(db), dtype=bool)
    state = bool(db[0] < leave)
    for i, level in enumerate(db.tolist()):
        if state and level > leave:
            state = False
        elif not state and level < enter:
            state = True
        quiet[i] = state
    return quiet


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    if len(mask) == 0:
        return []
    change = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [len(mask)]])
    return [(int(a), int(b), bool(mask[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def waveform_levels(peak: np.ndarray) -> list[dict]:
    """Peak amplitude (0..1) per bucket at several zoom levels, coarsest last."""
    levels = []
    for ms in WAVEFORM_LEVELS_MS:
        k = ms // WINDOW_MS
        n = -(-len(peak) // k) if len(peak) else 0
        padded = np.zeros(n * k)
        padded[: len(peak)] = peak
        values = padded.reshape(n, k).max(axis=1) if n else np.zeros(0)
        levels.append({"ms_per_peak": ms, "peaks": np.round(values, 3).tolist()})
    return levels
