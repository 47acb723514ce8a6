"""The previous, plain implementations of the fast paths in ipr.timeline and ipr.synchrony.

Kept verbatim (as of the commit before the vectorised versions) so that property tests can
compare the fast paths with them result for result, and so that bench/algorithms.py can measure
before and after in one run. Not used by the application.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from ipr.synchrony import (
    SeriesTooShort,
    Statistic,
    SurrogateResult,
    SynchronyError,
    _as_series,
    _ms,
    _samples,
    _shuffle_segments,
    synchrony,
)
from ipr.timeline import ChanceBaseline, Mark, gap_ms


def chance_baseline(
    therapist: Sequence[Mark],
    client: Sequence[Mark],
    tolerance_ms: int,
    *,
    duration_ms: int,
    n_shifts: int = 1000,
    seed: int = 0,
    observed_pairs: int | None = None,
) -> ChanceBaseline | None:
    """One shift at a time: a moved copy of the client lane, then a greedy pair count."""
    if not therapist or not client or n_shifts == 0:
        return None
    n_t, n_c = len(therapist), len(client)
    if observed_pairs is None:
        observed_pairs = count_pairs(therapist, client, tolerance_ms)
    shifts = np.random.default_rng(seed).integers(0, duration_ms, size=n_shifts)
    points = not any(m.is_span for m in therapist) and not any(m.is_span for m in client)
    therapist_times = sorted(m.t_ms for m in therapist)
    client_times = np.array([m.t_ms for m in client], dtype=np.int64)
    counts = np.empty(n_shifts, dtype=np.int64)
    for k, shift in enumerate(shifts.tolist()):
        if points:
            moved = np.sort((client_times + shift) % duration_ms).tolist()
            counts[k] = _greedy_count(therapist_times, moved, tolerance_ms)
        else:
            moved_lane = _shift_lane(client, shift, duration_ms)
            counts[k] = count_pairs(therapist, moved_lane, tolerance_ms)
    rates = 2 * counts / (n_t + n_c)
    return ChanceBaseline(
        n_shifts=n_shifts,
        seed=seed,
        expected_rate=float(rates.mean()),
        sd_rate=float(rates.std()),
        p_value=(1 + int((counts >= observed_pairs).sum())) / (1 + n_shifts),
    )


def count_pairs(therapist: Sequence[Mark], client: Sequence[Mark], tol: int) -> int:
    if any(m.is_span for m in therapist) or any(m.is_span for m in client):
        return _greedy_count_spans(therapist, client, tol)
    return _greedy_count(sorted(m.t_ms for m in therapist), sorted(m.t_ms for m in client), tol)


def _greedy_count(a: Sequence[int], b: Sequence[int], tol: int) -> int:
    i = j = count = 0
    while i < len(a) and j < len(b):
        if b[j] < a[i] - tol:
            j += 1
        elif b[j] > a[i] + tol:
            i += 1
        else:
            count += 1
            i += 1
            j += 1
    return count


def _greedy_count_spans(therapist: Sequence[Mark], client: Sequence[Mark], tol: int) -> int:
    lane_t = sorted((m.end_ms if m.end_ms is not None else m.t_ms, m.t_ms) for m in therapist)
    lane_c = sorted((m.t_ms, m.end_ms if m.end_ms is not None else m.t_ms) for m in client)
    open_ends: list[int] = []
    j = count = 0
    for b, a in lane_t:
        while j < len(lane_c) and lane_c[j][0] <= b + tol:
            insort(open_ends, lane_c[j][1])
            j += 1
        k = bisect_left(open_ends, a - tol)
        if k < len(open_ends):
            del open_ends[k]
            count += 1
    return count


def _shift_lane(lane: Sequence[Mark], shift: int, duration_ms: int) -> list[Mark]:
    moved = []
    for mark in lane:
        start = (mark.t_ms + shift) % duration_ms
        delta = start - mark.t_ms
        moved.append(
            Mark(
                id=mark.id,
                t_ms=start,
                end_ms=None if mark.end_ms is None else mark.end_ms + delta,
                peaks_ms=tuple(p + delta for p in mark.peaks_ms),
                codes=mark.codes,
            )
        )
    return moved


def match_general(lane_t: list[Mark], lane_c: list[Mark], tol: int) -> list[tuple[int, int]]:
    """The span matching with its graph built edge by edge in Python (lanes already sorted)."""
    edges = _candidate_edges(lane_t, lane_c, tol)
    if not edges:
        return []
    n, m = len(lane_t), len(lane_c)
    lags = [abs(lane_c[j].t_ms - lane_t[i].t_ms) for i, j in edges]
    unmatched = 2 * sum(lags) + 1
    rows, cols, weights = [], [], []
    for (i, j), lag in zip(edges, lags, strict=True):
        rows += [i, n + j]
        cols += [j, m + i]
        weights += [lag + 1, 1]
    for i in range(n):
        rows.append(i)
        cols.append(m + i)
        weights.append(unmatched + 1)
    for j in range(m):
        rows.append(n + j)
        cols.append(j)
        weights.append(unmatched + 1)
    graph = csr_matrix(
        (np.array(weights, dtype=float), (np.array(rows), np.array(cols))), shape=(n + m, n + m)
    )
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    return [(int(r), int(c)) for r, c in zip(row_ind, col_ind, strict=True) if r < n and c < m]


def _candidate_edges(lane_t: list[Mark], lane_c: list[Mark], tol: int) -> list[tuple[int, int]]:
    starts = [m.t_ms for m in lane_c]
    longest = max((m.end - m.t_ms for m in lane_c), default=0)
    edges = []
    for i, mt in enumerate(lane_t):
        first = bisect_left(starts, mt.t_ms - tol - longest)
        last = bisect_right(starts, mt.end + tol)
        for j in range(first, last):
            if gap_ms(mt, lane_c[j]) <= tol:
                edges.append((i, j))
    return edges


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
    """One full synchrony() per surrogate."""
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
        raise SeriesTooShort("Segment shuffling needs at least two segments.")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        value = synchrony(
            _shuffle_segments(x, seg, rng), _shuffle_segments(y, seg, rng), rate_hz, **settings
        ).statistic(statistic)
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
