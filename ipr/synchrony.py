"""Nonverbal synchrony of two motion-energy series: windowed, lagged cross-correlation.

Follows the Motion Energy Analysis practice implemented in rMEA's MEAccf (Kleinbub & Ramseyer):
per window, the Pearson r at every lag, Fisher-z transformed and taken as absolute values, then
averaged; a shuffled-segment surrogate baseline (Ramseyer & Tschacher 2010) tells whether that
synchrony is more than two people moving independently. Method and the check on real
psychotherapy data: docs/timeline.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ipr.errors import ValidationError

Statistic = Literal["grand_mean", "peak_mean", "lag_zero_mean"]

Z_LIMIT = 10.0
"""Fisher z is capped at ±10 (|r| ≈ 1 − 4e-9), as rMEA does, so r = ±1 stays finite."""


class SynchronyError(ValidationError):
    """The motion-energy series or settings cannot be analysed as they are."""

    code = "synchrony_invalid"


class SeriesTooShort(SynchronyError):
    """The series is shorter than one analysis window plus the maximum lag."""

    code = "series_too_short"


@dataclass(frozen=True)
class SynchronyPoint:
    """One window: its centre on the recording's time axis and its mean value over all lags."""

    t_ms: int
    value: float | None


@dataclass
class Synchrony:
    """Windowed lagged cross-correlation of one session and its per-session summary.

    Lag convention: positive lag = the right series follows the left (left leads).
    Values are Fisher z when `fisher_z`, absolute values when `absolute` (rMEA's defaults).
    """

    rate_hz: float
    window_ms: int
    step_ms: int
    max_lag_ms: int
    fisher_z: bool
    absolute: bool
    n_windows: int
    lags_ms: list[int]
    grand_mean: float | None
    peak_mean: float | None
    lag_zero_mean: float | None
    left_leads_mean: float | None
    right_leads_mean: float | None
    best_lag_median_ms: int | None
    series: list[SynchronyPoint]
    matrix: np.ndarray = field(repr=False, compare=False)

    def statistic(self, name: Statistic) -> float | None:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the full window × lag matrix, as JSON-ready values."""
        return {
            "rate_hz": self.rate_hz,
            "window_ms": self.window_ms,
            "step_ms": self.step_ms,
            "max_lag_ms": self.max_lag_ms,
            "fisher_z": self.fisher_z,
            "absolute": self.absolute,
            "n_windows": self.n_windows,
            "lags_ms": self.lags_ms,
            "grand_mean": self.grand_mean,
            "peak_mean": self.peak_mean,
            "lag_zero_mean": self.lag_zero_mean,
            "left_leads_mean": self.left_leads_mean,
            "right_leads_mean": self.right_leads_mean,
            "best_lag_median_ms": self.best_lag_median_ms,
            "series": [{"t_ms": p.t_ms, "value": p.value} for p in self.series],
        }


@dataclass
class SurrogateResult:
    """Observed synchrony against pseudo-synchrony of segment-shuffled surrogates."""

    statistic: str
    observed: float | None
    n: int
    seed: int
    segment_ms: int
    surrogates: list[float]
    surrogate_mean: float | None
    surrogate_sd: float | None
    effect_size: float | None
    p_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "observed": self.observed,
            "n": self.n,
            "seed": self.seed,
            "segment_ms": self.segment_ms,
            "surrogate_mean": self.surrogate_mean,
            "surrogate_sd": self.surrogate_sd,
            "effect_size": self.effect_size,
            "p_value": self.p_value,
        }


def synchrony(
    left: Sequence[float] | np.ndarray,
    right: Sequence[float] | np.ndarray,
    rate_hz: float,
    *,
    window_s: float = 30.0,
    step_s: float = 10.0,
    max_lag_s: float = 5.0,
    fisher_z: bool = True,
    absolute: bool = True,
) -> Synchrony:
    """Windowed lagged cross-correlation, window by window as in rMEA's MEAccf.

    Window k starts at sample k·step and, like MEAccf, reads window + max_lag samples, so every
    lag of a window uses exactly `window` sample pairs. NaN samples are left out pair-wise; a
    window with more than half of either series missing has no value. A window/lag cell where
    either series does not vary has no r (NaN) and is left out of every mean.
    """
    x, y = _as_series(left, "left"), _as_series(right, "right")
    if x.size != y.size:
        raise SynchronyError(
            f"The two series must have the same length; left has {x.size} samples, "
            f"right has {y.size}."
        )
    if not rate_hz > 0 or not math.isfinite(rate_hz):
        raise SynchronyError(f"rate_hz must be a positive number, got {rate_hz!r}.")
    win = _samples(window_s, rate_hz, "window_s", minimum=3)
    step = _samples(step_s, rate_hz, "step_s", minimum=1)
    lag = _samples(max_lag_s, rate_hz, "max_lag_s", minimum=0)
    if x.size < win + lag:
        raise SeriesTooShort(
            f"Synchrony needs at least {(win + lag) / rate_hz:g} s of motion energy "
            f"(a {window_s:g} s window plus {max_lag_s:g} s of lag); this series has "
            f"{x.size / rate_hz:g} s. Use a shorter window or lag."
        )
    n_windows = (x.size - win - lag) // step + 1
    matrix = _lagged_correlations(x, y, win, step, lag, n_windows)
    if fisher_z:
        limit = math.tanh(Z_LIMIT)
        matrix = np.arctanh(np.clip(matrix, -limit, limit))
    if absolute:
        matrix = np.abs(matrix)
    return _summarise(matrix, rate_hz, win, step, lag, fisher_z, absolute)


def _lagged_correlations(
    x: np.ndarray, y: np.ndarray, win: int, step: int, lag: int, n_windows: int
) -> np.ndarray:
    """Pearson r for every window (rows) and lag −lag..+lag (columns), NaN where undefined.

    All windows and lags are computed at once from strided views (no copies), so a 10-minute
    session at 25 Hz takes milliseconds; sums run over the sample pairs where both are present.
    """
    valid_x, valid_y = ~np.isnan(x), ~np.isnan(y)
    # Centring on the session mean leaves r unchanged and keeps the sums well conditioned.
    x0 = np.where(valid_x, x - (x[valid_x].mean() if valid_x.any() else 0.0), 0.0)
    y0 = np.where(valid_y, y - (y[valid_y].mean() if valid_y.any() else 0.0), 0.0)
    mx, my = valid_x.astype(float), valid_y.astype(float)
    out = np.full((n_windows, 2 * lag + 1), np.nan)
    # Lags ≥ 0: left fixed at the window start, right moved later (right follows left).
    out[:, lag:] = _pearson_fixed_moving(x0, mx, y0, my, win, step, lag, n_windows)
    # Lags < 0: right fixed, left moved later; column lag − d holds lag −d.
    back = _pearson_fixed_moving(y0, my, x0, mx, win, step, lag, n_windows)
    out[:, :lag] = back[:, 1:][:, ::-1]
    if not (valid_x.all() and valid_y.all()):
        reach = win + lag
        missing_x = _window_sums(1.0 - mx, reach, step, n_windows)
        missing_y = _window_sums(1.0 - my, reach, step, n_windows)
        out[(missing_x > reach / 2) | (missing_y > reach / 2)] = np.nan
    return out


def _pearson_fixed_moving(
    a: np.ndarray,
    ma: np.ndarray,
    b: np.ndarray,
    mb: np.ndarray,
    win: int,
    step: int,
    lag: int,
    n_windows: int,
) -> np.ndarray:
    """r(a[s:s+win], b[s+d:s+d+win]) for each window start s = k·step and d = 0..lag."""
    a_w = sliding_window_view(a, win)[::step][:n_windows]
    b_3 = _lagged_views(b, win, step, lag, n_windows)
    sab = np.einsum("kdt,kt->kd", b_3, a_w)
    if ma.all() and mb.all():
        n = np.full((n_windows, lag + 1), float(win))
        sa = a_w.sum(axis=1)[:, None]
        saa = (a_w * a_w).sum(axis=1)[:, None]
        sb = _lagged_sums(b, win, step, lag, n_windows)
        sbb = _lagged_sums(b * b, win, step, lag, n_windows)
    else:
        ma_w = sliding_window_view(ma, win)[::step][:n_windows]
        mb_3 = _lagged_views(mb, win, step, lag, n_windows)
        n = np.einsum("kdt,kt->kd", mb_3, ma_w)
        sa = np.einsum("kdt,kt->kd", mb_3, a_w)
        saa = np.einsum("kdt,kt->kd", mb_3, a_w * a_w)
        sb = np.einsum("kdt,kt->kd", b_3, ma_w)
        sbb = np.einsum("kdt,kt->kd", _lagged_views(b * b, win, step, lag, n_windows), ma_w)
    var_a = n * saa - sa * sa
    var_b = n * sbb - sb * sb
    defined = (
        (n >= 3)
        & (var_a > 1e-10 * np.maximum(n * saa, 1e-300))
        & (var_b > 1e-10 * np.maximum(n * sbb, 1e-300))
    )
    r = np.full(defined.shape, np.nan)
    r[defined] = (n * sab - sa * sb)[defined] / np.sqrt(var_a[defined] * var_b[defined])
    return np.clip(r, -1.0, 1.0)


def _lagged_views(b: np.ndarray, win: int, step: int, lag: int, n_windows: int) -> np.ndarray:
    """A read-only (window, lag, sample) view: element [k, d, t] is b[k·step + d + t]."""
    rows = sliding_window_view(b, win)
    return as_strided(
        rows,
        shape=(n_windows, lag + 1, win),
        strides=(rows.strides[0] * step, rows.strides[0], rows.strides[1]),
        writeable=False,
    )


def _lagged_sums(b: np.ndarray, win: int, step: int, lag: int, n_windows: int) -> np.ndarray:
    """Σ b[k·step + d : k·step + d + win] for every window k and lag d, from one cumulative sum."""
    cum = np.concatenate([[0.0], np.cumsum(b)])
    starts = (np.arange(n_windows) * step)[:, None] + np.arange(lag + 1)[None, :]
    return cum[starts + win] - cum[starts]


def _window_sums(b: np.ndarray, length: int, step: int, n_windows: int) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(b)])
    starts = np.arange(n_windows) * step
    return cum[starts + length] - cum[starts]


def _summarise(
    matrix: np.ndarray,
    rate_hz: float,
    win: int,
    step: int,
    lag: int,
    fisher_z: bool,
    absolute: bool,
) -> Synchrony:
    lags = np.arange(-lag, lag + 1)
    has_value = ~np.isnan(matrix)
    window_means = _row_means(matrix)
    peaks, best_lags = [], []
    for row, ok in zip(matrix, has_value, strict=True):
        if ok.any():
            best = int(np.nanargmax(row))
            peaks.append(float(row[best]))
            best_lags.append(int(lags[best]))
    centres = [_ms((k * step + win / 2) / rate_hz) for k in range(matrix.shape[0])]
    return Synchrony(
        rate_hz=rate_hz,
        window_ms=_ms(win / rate_hz),
        step_ms=_ms(step / rate_hz),
        max_lag_ms=_ms(lag / rate_hz),
        fisher_z=fisher_z,
        absolute=absolute,
        n_windows=matrix.shape[0],
        lags_ms=[_ms(d / rate_hz) for d in lags.tolist()],
        grand_mean=_mean(matrix),
        peak_mean=_mean(np.array(peaks)),
        lag_zero_mean=_mean(matrix[:, lag]),
        left_leads_mean=_mean(matrix[:, lag + 1 :]) if lag else None,
        right_leads_mean=_mean(matrix[:, :lag]) if lag else None,
        best_lag_median_ms=_ms(float(np.median(best_lags)) / rate_hz) if best_lags else None,
        series=[SynchronyPoint(t, v) for t, v in zip(centres, window_means, strict=True)],
        matrix=matrix,
    )


def surrogate_baseline(
    left: Sequence[float] | np.ndarray,
    right: Sequence[float] | np.ndarray,
    rate_hz: float,
    *,
    n: int = 100,
    seed: int = 0,
    segment_s: float = 30.0,
    statistic: Statistic = "grand_mean",
    window_s: float = 30.0,
    step_s: float = 10.0,
    max_lag_s: float = 5.0,
    fisher_z: bool = True,
    absolute: bool = True,
) -> SurrogateResult:
    """Pseudo-synchrony from within-subject segment shuffling, an effect size and a p-value.

    Each series is cut into consecutive segments of `segment_s` (a shorter tail stays last) and
    the segments of each person are put in a new random order, independently for the two
    people: each keeps their own movement, but not its timing relative to the other.
    effect_size = (observed − surrogate mean) / surrogate SD;
    p = (1 + #{surrogate ≥ observed}) / (1 + n).
    """
    if not isinstance(n, int) or n < 1:
        raise SynchronyError(f"n (the number of surrogates) must be a whole number ≥ 1, got {n!r}.")
    x, y = _as_series(left, "left"), _as_series(right, "right")
    settings = dict(
        window_s=window_s,
        step_s=step_s,
        max_lag_s=max_lag_s,
        fisher_z=fisher_z,
        absolute=absolute,
    )
    observed = synchrony(x, y, rate_hz, **settings).statistic(statistic)
    seg = _samples(segment_s, rate_hz, "segment_s", minimum=1)
    if x.size // seg < 2:
        raise SeriesTooShort(
            f"Segment shuffling needs at least two {segment_s:g} s segments; the series has "
            f"{x.size / rate_hz:g} s. Use shorter segments."
        )
    rng = np.random.default_rng(seed)
    # The permutations are drawn in the order shuffling one surrogate after the other draws them.
    orders = [(rng.permutation(x.size // seg), rng.permutation(x.size // seg)) for _ in range(n)]
    win = _samples(window_s, rate_hz, "window_s", minimum=3)
    step = _samples(step_s, rate_hz, "step_s", minimum=1)
    lag = _samples(max_lag_s, rate_hz, "max_lag_s", minimum=0)
    n_windows = (x.size - win - lag) // step + 1
    values = []
    for order_x, order_y in orders:
        matrix = _lagged_correlations(
            x[_segment_order(order_x, seg, x.size)],
            y[_segment_order(order_y, seg, y.size)],
            win,
            step,
            lag,
            n_windows,
        )
        if fisher_z:
            matrix = np.arctanh(np.clip(matrix, -math.tanh(Z_LIMIT), math.tanh(Z_LIMIT)))
        if absolute:
            matrix = np.abs(matrix)
        value = _statistic(matrix, statistic, rate_hz, win, step, lag, fisher_z, absolute)
        if value is not None:
            values.append(value)
    surr = np.array(values)
    mean = float(surr.mean()) if surr.size else None
    sd = float(surr.std(ddof=1)) if surr.size > 1 else None
    effect = None
    if observed is not None and mean is not None and sd:
        effect = (observed - mean) / sd
    p_value = None
    if observed is not None and surr.size:
        p_value = (1 + int((surr >= observed).sum())) / (1 + surr.size)
    return SurrogateResult(
        statistic=statistic,
        observed=observed,
        n=int(surr.size),
        seed=seed,
        segment_ms=_ms(seg / rate_hz),
        surrogates=[float(v) for v in surr],
        surrogate_mean=mean,
        surrogate_sd=sd,
        effect_size=effect,
        p_value=p_value,
    )


def _shuffle_segments(series: np.ndarray, seg: int, rng: np.random.Generator) -> np.ndarray:
    whole = series.size // seg
    blocks = series[: whole * seg].reshape(whole, seg)[rng.permutation(whole)]
    return np.concatenate([blocks.ravel(), series[whole * seg :]])


def _segment_order(order: np.ndarray, seg: int, size: int) -> np.ndarray:
    """Sample indices of a series whose whole segments are put in `order` (the tail stays last)."""
    whole = order.size
    return np.concatenate(
        [(order[:, None] * seg + np.arange(seg)).ravel(), np.arange(whole * seg, size)]
    )


def _statistic(
    matrix: np.ndarray,
    name: str,
    rate_hz: float,
    win: int,
    step: int,
    lag: int,
    fisher_z: bool,
    absolute: bool,
) -> float | None:
    """One summary figure of a window × lag matrix, computed as `_summarise` computes it."""
    if name == "grand_mean":
        return _mean(matrix)
    if name == "lag_zero_mean":
        return _mean(matrix[:, lag])
    if name == "peak_mean":
        defined = matrix[~np.isnan(matrix).all(axis=1)]
        return _mean(np.nanmax(defined, axis=1) if defined.size else np.array([]))
    return _summarise(matrix, rate_hz, win, step, lag, fisher_z, absolute).statistic(name)


def read_mea_txt(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read an MEA text export: a header line, then two space-separated columns per sample.

    Returns the two columns in file order (in rMEA's example data: patient, therapist).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SynchronyError(f"Cannot read the motion-energy file {path.name}: {exc}.") from exc
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split()
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (IndexError, ValueError) as exc:
            raise SynchronyError(
                f"{path.name}, line {number}: expected two numbers, found {line.strip()!r}."
            ) from exc
    data = np.array(rows, dtype=float).reshape(-1, 2)
    return data[:, 0], data[:, 1]


def _as_series(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    try:
        series = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SynchronyError(f"The {name} series must hold numbers.") from exc
    if series.ndim != 1:
        raise SynchronyError(f"The {name} series must be one-dimensional.")
    if np.isinf(series).any():
        raise SynchronyError(f"The {name} series holds an infinite value.")
    return series


def _samples(seconds: float, rate_hz: float, name: str, *, minimum: int) -> int:
    count = round(seconds * rate_hz)
    if not math.isfinite(seconds) or count < minimum:
        raise SynchronyError(
            f"{name} = {seconds!r} s is {count} samples at {rate_hz:g} Hz; at least {minimum} "
            f"needed."
        )
    return count


def _row_means(matrix: np.ndarray) -> list[float | None]:
    return [_mean(row) for row in matrix]


def _mean(values: np.ndarray) -> float | None:
    """Mean of the defined (non-NaN) values; None when there are none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else None


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000 + 0.5)
