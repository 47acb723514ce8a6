"""Movement as Motion Energy Analysis (MEA) researchers measure it: regions, honest samples,
rMEA's pipeline settings and the series that leave the app.

Plain Python (no Flask): the web layer validates and queues through here, the worker re-runs
the motion pass through here, exports and the timeline read the series through here.
Method notes: docs/media.md ("Motion energy") and docs/timeline.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ipr.errors import ValidationError

REGION_ROLES = ("therapist", "client", "background")
"""The rectangles a researcher draws: one per person, optionally one for background noise."""

MISSING_WARN_SHARE = 0.05
"""Above this share of missing samples the synchrony figure carries a warning."""
MISSING_REFUSE_SHARE = 0.5
"""Above this share ("mostly missing") no synchrony figure is shown at all."""


class RegionsInvalid(ValidationError):
    """The drawn regions cannot be used as they are."""

    code = "regions_invalid"


class MotionSettingsInvalid(ValidationError):
    """A study's motion or synchrony setting is out of range."""

    code = "motion_settings_invalid"


@dataclass(frozen=True)
class MotionSettings:
    """A study's motion-energy and synchrony pipeline (rMEA's steps, in its order).

    threshold: a pixel moves when its grey level (0..255) changes by more than this.
    smoothing_s: 0 = none; else rMEA's MEAsmooth moving average over this many seconds.
    window_s, step_s, max_lag_s: MEAccf's winSec, incSec, lagSec.
    surrogates, seed: the segment-shuffled baseline (count and random seed).
    """

    threshold: int = 10
    smoothing_s: float = 0.0
    window_s: float = 30.0
    step_s: float = 10.0
    max_lag_s: float = 5.0
    surrogates: int = 50
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> MotionSettings:
        """The settings stored on a study (missing keys take the defaults)."""
        stored = stored or {}
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in stored.items() if k in names})


def parse_settings(form: dict[str, Any]) -> MotionSettings:
    """Validate the study settings form (seconds as text); raises MotionSettingsInvalid."""

    def number(name: str, lo: float, hi: float, *, whole: bool = False) -> float:
        raw = str(form.get(name, "")).strip()
        try:
            value = float(raw)
        except ValueError:
            raise MotionSettingsInvalid(f"{name} must be a number.", field=name) from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise MotionSettingsInvalid(f"{name} must be between {lo:g} and {hi:g}.", field=name)
        if whole and value != int(value):
            raise MotionSettingsInvalid(f"{name} must be a whole number.", field=name)
        return value

    settings = MotionSettings(
        threshold=int(number("threshold", 1, 254, whole=True)),
        smoothing_s=number("smoothing_s", 0, 10),
        window_s=number("window_s", 1, 600),
        step_s=number("step_s", 0.04, 600),
        max_lag_s=number("max_lag_s", 0, 60),
        surrogates=int(number("surrogates", 1, 10_000, whole=True)),
        seed=int(number("seed", 0, 2**31 - 1, whole=True)),
    )
    if settings.max_lag_s >= settings.window_s:
        raise MotionSettingsInvalid("The lag must be shorter than the window.", field="max_lag_s")
    return settings


# --- regions -------------------------------------------------------------------------------------


def parse_regions(raw: Any) -> list[dict[str, Any]]:
    """Validate drawn regions: a list of {name, x, y, w, h} in picture fractions (0..1).

    A therapist and a client region are required; a background region is optional.
    """
    if not isinstance(raw, list):
        raise RegionsInvalid("Draw the regions as a list of rectangles.")
    out: dict[str, dict[str, Any]] = {}
    for item in raw:
        if not isinstance(item, dict) or item.get("name") not in REGION_ROLES:
            raise RegionsInvalid("Each region is one of: therapist, client, background.")
        name = item["name"]
        if name in out:
            raise RegionsInvalid(f"There are two {name} regions; draw one.")
        try:
            box = {k: round(float(item[k]), 4) for k in ("x", "y", "w", "h")}
        except (KeyError, TypeError, ValueError):
            raise RegionsInvalid(f"The {name} region needs x, y, w and h numbers.") from None
        if not all(math.isfinite(v) for v in box.values()):
            raise RegionsInvalid(f"The {name} region needs finite numbers.")
        # clip to the picture (a handle dragged a little outside is still meant as the edge)
        x0, y0 = max(0.0, box["x"]), max(0.0, box["y"])
        x1, y1 = min(1.0, box["x"] + box["w"]), min(1.0, box["y"] + box["h"])
        if x1 - x0 < 0.02 or y1 - y0 < 0.02:
            raise RegionsInvalid(f"The {name} region is too small (at least 2% of the picture).")
        out[name] = {
            "name": name,
            "x": round(x0, 4),
            "y": round(y0, 4),
            "w": round(x1 - x0, 4),
            "h": round(y1 - y0, 4),
        }
    for needed in ("therapist", "client"):
        if needed not in out:
            raise RegionsInvalid(f"Draw a {needed} region.")
    return [out[name] for name in REGION_ROLES if name in out]


FACE_DETECTOR = "dlib HOG frontal face"
"""The detector behind the suggestion: dlib's histogram-of-oriented-gradients frontal-face
detector, compiled into the installed ``dlib`` package (the pinned ``dlib-bin`` wheel), so there
is no model file and nothing is ever downloaded."""


@functools.cache
def face_detector() -> Any | None:
    """dlib's frontal-face detector, or None when the ``dlib`` package is not installed.

    (OpenCV's Haar cascades are not used: the pinned opencv-python-headless 5.0 ships neither
    the cascade files nor ``cv2.CascadeClassifier``, and its 4.x wheels lack ``cv2.FontFace``,
    which the figure export draws its text with.)
    """
    try:
        import dlib
    except ImportError:
        return None
    return dlib.get_frontal_face_detector()


def _upsampling(height: int, width: int) -> int:
    """How often the detector doubles the picture first: it finds faces of about 80 pixels and
    more, and the still a suggestion reads is a 320-pixel-wide thumbnail, where a person's face
    is 20 to 50 pixels. Twice (faces from about 20 pixels) for pictures under 240 pixels on the
    short side, once under 540, else not at all."""
    short = min(height, width)
    return 2 if short < 240 else 1 if short < 540 else 0


def find_faces(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Faces in a BGR (or grey) picture as (x, y, w, h) in its pixels, largest first; none
    when no detector is installed."""
    import cv2

    detector = face_detector()
    if detector is None:
        return []
    height, width = image.shape[:2]
    if image.ndim == 3:
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    else:
        rgb = np.ascontiguousarray(image)
    found = detector(rgb, _upsampling(height, width))
    boxes = []
    for r in found:
        x0, y0 = max(0, int(r.left())), max(0, int(r.top()))
        x1, y1 = min(width, int(r.right()) + 1), min(height, int(r.bottom()) + 1)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1 - x0, y1 - y0))
    return sorted(boxes, key=lambda f: (-f[2] * f[3], f[0]))


def suggestion(image: np.ndarray) -> dict[str, Any]:
    """What "Suggest from faces" answers: the regions, how many faces were found, and whether
    a detector is installed at all."""
    faces = find_faces(image)
    return {
        "regions": suggest_regions(image, faces),
        "faces": len(faces),
        "detector": face_detector() is not None,
    }


def suggest_regions(
    image: np.ndarray, faces: list[tuple[int, int, int, int]] | None = None
) -> list[dict[str, Any]]:
    """Therapist and client regions around the two largest faces found in a BGR still (by
    dlib's frontal-face detector, see ``face_detector``).

    Each region is the face widened to three face widths and extended down to the bottom of
    the picture (head, torso, hands). Left face → therapist, right face → client: the
    researcher swaps them if the seating is the other way round. Fewer than two faces (or no
    detector installed): the left and right halves. ``faces``: ``find_faces(image)`` if already
    known.
    """
    height, width = image.shape[:2]
    faces = (find_faces(image) if faces is None else faces)[:2]
    if len(faces) < 2:
        return [
            {"name": "therapist", "x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0},
            {"name": "client", "x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0},
        ]
    faces.sort(key=lambda f: f[0])
    out = []
    for name, (fx, fy, fw, _fh) in zip(("therapist", "client"), faces, strict=True):
        x0 = max(0, fx - fw)
        x1 = min(width, fx + 2 * fw)
        y0 = max(0, fy - fw // 2)
        out.append(
            {
                "name": name,
                "x": round(x0 / width, 4),
                "y": round(y0 / height, 4),
                "w": round((x1 - x0) / width, 4),
                "h": round((height - y0) / height, 4),
            }
        )
    # the two boxes must not overlap: split at the middle between the faces
    left, right = out
    if left["x"] + left["w"] > right["x"]:
        mid = round((faces[0][0] + faces[0][2] + faces[1][0]) / 2 / width, 4)
        left["w"] = round(mid - left["x"], 4)
        right["w"] = round(right["x"] + right["w"] - mid, 4)
        right["x"] = mid
    return out


# --- honest samples ---------------------------------------------------------------------------


def pair(motion_energy: dict[str, Any]) -> tuple[list, list, float, tuple[str, str]]:
    """The two people's series of a stored analysis: (a, b, rate, names).

    Drawn regions are named therapist/client; recordings analysed with the default halves
    have left/right. The first series takes rMEA's "left" place in the lag convention.
    """
    rate = float(motion_energy.get("rate_hz") or 0)
    for names in (("therapist", "client"), ("left", "right")):
        if motion_energy.get(names[0]) is not None:
            a, b = motion_energy.get(names[0]) or [], motion_energy.get(names[1]) or []
            return list(a), list(b), rate, names
    return [], [], rate, ("left", "right")


def missing_summary(motion_energy: dict[str, Any]) -> dict[str, Any]:
    """How many samples are missing (repeated or absent frames) and what to say about it."""
    a, b, _rate, _names = pair(motion_energy)
    n = len(a)
    missing = sum(1 for u, v in zip(a, b, strict=False) if u is None or v is None)
    missing += abs(len(a) - len(b))
    share = missing / n if n else 0.0
    reason = motion_energy.get("missing_reason") or "variable frame rate or dropped frames"
    message = None
    if missing:
        pct = f"{round(100 * share)}%" if share >= 0.005 else "less than 1%"
        message = f"{pct} of samples missing: {reason}"
        if share > MISSING_REFUSE_SHARE:
            message += "; the motion data is mostly missing, so no synchrony figure is given"
    return {
        "samples": n,
        "missing": missing,
        "share": round(share, 4),
        "message": message,
        "warn": share > MISSING_WARN_SHARE,
        "mostly_missing": share > MISSING_REFUSE_SHARE,
    }


# --- rMEA's MEAsmooth -------------------------------------------------------------------------


def mea_smooth(
    values: Sequence[float | None] | np.ndarray,
    rate_hz: float,
    seconds: float,
    *,
    gaps: str = "missing",
) -> np.ndarray:
    """Moving average as rMEA's MEAsmooth (its ``sasFiltB``, after SAS proc expand).

    With n = seconds × rate (not necessarily whole), sample t (1-based) becomes the sum of the
    samples at the whole indices reached counting up by one from t − (n−1)/2 (clipped to 1)
    while staying ≤ t + (n−1)/2, divided by n (not by how many were summed). Missing samples
    stay missing.

    ``gaps="rmea"`` reproduces rMEA exactly: a window that reaches a missing sample or runs
    past the end of the series sums to NA, which rMEA sets to 0. ``gaps="missing"`` (what the
    app uses) makes such a window missing instead, so no invented zeros enter the synchrony.
    """
    x = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    n = seconds * rate_hz
    if not n >= 1 or not math.isfinite(n):
        raise MotionSettingsInvalid(
            f"A {seconds:g} s moving average at {rate_hz:g} Hz spans {n:g} samples; at least 1 "
            "is needed.",
            field="smoothing_s",
        )
    size = x.size
    half = (n - 1) / 2
    steps = math.floor(n - 1 + 1e-10)  # R's from:to counts with a 1e-10 fuzz
    t = np.arange(1, size + 1, dtype=float)
    start = t - half
    clipped = start < 1
    lo = np.where(clipped, 1, np.floor(start)).astype(np.int64)
    hi = np.where(clipped, np.floor(t + half + 1e-10), np.floor(start + steps)).astype(np.int64)
    bad = np.isnan(x)
    cum = np.concatenate([[0.0], np.cumsum(np.where(bad, 0.0, x))])
    cum_bad = np.concatenate([[0], np.cumsum(bad)])
    over = hi > size
    hi_c = np.minimum(hi, size)
    sums = cum[hi_c] - cum[lo - 1]
    touched = (cum_bad[hi_c] - cum_bad[lo - 1] > 0) | over
    out = sums / n
    out[touched] = 0.0 if gaps == "rmea" else np.nan
    out[bad] = np.nan
    return out


def prepared(
    a: Sequence[float | None], b: Sequence[float | None], rate_hz: float, settings: MotionSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The two series as the synchrony sees them: missing as NaN, smoothed if the study says so."""
    x = np.asarray([np.nan if v is None else v for v in a], dtype=float)
    y = np.asarray([np.nan if v is None else v for v in b], dtype=float)
    if settings.smoothing_s > 0:
        x = mea_smooth(x, rate_hz, settings.smoothing_s)
        y = mea_smooth(y, rate_hz, settings.smoothing_s)
    return x, y


# --- series out -------------------------------------------------------------------------------


def series_csv_rows(motion_energy: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the motion-energy series: t_ms, then one column per region
    (empty cell = missing sample)."""
    rate = float(motion_energy.get("rate_hz") or 0)
    names = [k for k, v in motion_energy.items() if isinstance(v, list)]
    length = max((len(motion_energy[k]) for k in names), default=0)
    rows = []
    for i in range(length):
        t_ms = math.floor(i * 1000 / rate + 0.5) if rate else i
        row: list[Any] = [t_ms]
        for k in names:
            series = motion_energy[k]
            v = series[i] if i < len(series) else None
            row.append("" if v is None else v)
        rows.append(row)
    return ["t_ms", *names], rows


def rmea_text(motion_energy: dict[str, Any]) -> str:
    """The two people's series as MEA's text export, which rMEA's readMEA reads with
    ``readMEA(path, sampRate=<rate>, s1Col=1, s2Col=2, skip=1)``: a header line, then two
    space-separated columns per sample; a missing sample is ``NA``."""
    a, b, _rate, names = pair(motion_energy)

    def cell(v: float | None) -> str:
        return "NA" if v is None else f"{v:.6g}"

    lines = [f"{names[0]} {names[1]}"]
    lines += [f"{cell(u)} {cell(v)}" for u, v in zip(a, b, strict=False)]
    return "\n".join(lines) + "\n"


# --- study settings ---------------------------------------------------------------------------


def update_study_settings(
    db: Any, study: Any, form: dict[str, Any], user: Any, *, ip: str | None = None
) -> MotionSettings:
    """Validate and store a study's motion/synchrony settings (its default regions stay),
    audited. Figures use them the next time they are computed (the stored synchrony is keyed
    on them); a changed threshold takes effect when the motion pass runs again."""
    from ipr import audit, figures

    settings = parse_settings(form)
    stored = dict(study.motion_settings or {})
    before = MotionSettings.of(stored).to_dict()
    stored.update(settings.to_dict())
    study.motion_settings = stored
    audit.record(
        db,
        "motion_settings_changed",
        user=user,
        study_id=study.id,
        obj=("study", study.id),
        ip=ip,
        details={"before": before, "after": settings.to_dict()},
    )
    if before != settings.to_dict():
        figures.mark_study_stale(db, study.id)  # the stored synchrony is redone by the worker
    return settings
