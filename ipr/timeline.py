"""Therapist and client moments on one time axis: optimal matching and agreement figures.

Pure functions of plain dataclasses (no Flask, no database), so the API, the CLI, the exports and
the worker all compute the same pairs and figures. Formulas and definitions: docs/timeline.md.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from ipr.errors import ValidationError
from ipr.shift_counts import shifted_point_counts, shifted_span_counts

DEFAULT_TOLERANCE_MS = 5000
"""Matches `Study.alignment_tolerance_ms`'s default; each study may set its own."""

_WIDE_BAND = 48
"""DP rows with more candidate clients than this run in NumPy, narrower ones in plain Python."""

DEFAULT_BIN_MS = 1000
"""Time-unit kappa bin width: one second (a default, not a standard; it changes kappa)."""


class TimelineError(ValidationError):
    """The moments or settings given to the timeline cannot be used as they are."""

    code = "timeline_invalid"


class InvalidMark(TimelineError):
    """A moment has an impossible time, span or id."""

    code = "invalid_mark"


class InvalidSetting(TimelineError):
    """A tolerance, duration, bin width or shift count is out of range."""

    code = "invalid_setting"


@dataclass(frozen=True)
class Mark:
    """One moment in a lane: a stop point, or a span [t_ms, end_ms] with optional peaks."""

    id: int
    t_ms: int
    end_ms: int | None = None
    peaks_ms: tuple[int, ...] = ()
    codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _is_int(self.t_ms) or self.t_ms < 0:
            raise InvalidMark(
                f"Moment {self.id}: t_ms must be a whole number ≥ 0, got {self.t_ms!r}."
            )
        if self.end_ms is not None and (not _is_int(self.end_ms) or self.end_ms < self.t_ms):
            raise InvalidMark(
                f"Moment {self.id}: end_ms ({self.end_ms!r}) must be a whole number "
                f"≥ its start ({self.t_ms} ms)."
            )
        end = self.end
        for peak in self.peaks_ms:
            if not _is_int(peak) or not self.t_ms <= peak <= end:
                raise InvalidMark(
                    f"Moment {self.id}: peak {peak!r} lies outside its span "
                    f"[{self.t_ms}, {end}] ms."
                )

    @property
    def end(self) -> int:
        """The end of the moment; a point ends where it starts."""
        return self.t_ms if self.end_ms is None else self.end_ms

    @property
    def is_span(self) -> bool:
        return self.end_ms is not None and self.end_ms > self.t_ms


@dataclass(frozen=True)
class Pair:
    """Two moments matched across lanes.

    lag_ms = client t_ms − therapist t_ms (for spans: the difference of their starts).
    Positive: the therapist stopped first; negative: the client did; 0: same millisecond.
    """

    therapist_id: int
    client_id: int
    lag_ms: int


@dataclass
class Matching:
    """Pairs in therapist time order; unmatched ids in time order."""

    pairs: list[Pair]
    therapist_only: list[int]
    client_only: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gap_ms(a: Mark, b: Mark) -> int:
    """Time between two moments: 0 when they overlap or touch, else the empty stretch between."""
    return max(0, b.t_ms - a.end, a.t_ms - b.end)


def match_lanes(
    therapist: Sequence[Mark], client: Sequence[Mark], tolerance_ms: int = DEFAULT_TOLERANCE_MS
) -> Matching:
    """Optimal one-to-one matching: the most pairs, then the smallest total |lag|.

    Two moments can pair when gap_ms(...) ≤ tolerance_ms (points: |lag| ≤ τ; spans: overlapping,
    touching or at most τ apart). Ties between equally good matchings are broken as documented in
    docs/timeline.md, so the result depends only on the moments, not on their input order.
    """
    _check_tolerance(tolerance_ms)
    lane_t = _sorted_lane(therapist, "therapist")
    lane_c = _sorted_lane(client, "client")
    if any(m.is_span for m in lane_t) or any(m.is_span for m in lane_c):
        index_pairs = _match_general(lane_t, lane_c, tolerance_ms)
    else:
        index_pairs = _match_points(
            [m.t_ms for m in lane_t], [m.t_ms for m in lane_c], tolerance_ms
        )
    index_pairs.sort()
    used_t = {i for i, _ in index_pairs}
    used_c = {j for _, j in index_pairs}
    return Matching(
        pairs=[
            Pair(lane_t[i].id, lane_c[j].id, lane_c[j].t_ms - lane_t[i].t_ms)
            for i, j in index_pairs
        ],
        therapist_only=[m.id for k, m in enumerate(lane_t) if k not in used_t],
        client_only=[m.id for k, m in enumerate(lane_c) if k not in used_c],
    )


def _match_points(a: list[int], b: list[int], tol: int) -> list[tuple[int, int]]:
    """Exact optimum for two sorted point lanes by a banded dynamic programme.

    On a line an optimal matching never needs to cross (swapping a crossed pair keeps both pairs
    within τ and never raises Σ|lag|), so a sequence-alignment DP over order-preserving matchings
    is exact. Therapist i can only pair with clients lo[i] ≤ j < hi[i]; both bounds only grow with
    i, so row i of the DP needs just that band: O(n + m + candidate pairs) in all. F(i, j) is the
    best value for therapists i.. and clients j..; a value is pairs·big − Σ|lag|, so one more
    pair always outweighs any lag total. Within a row, F(i, j) = max over j' ≥ j of
    max(F(i+1, j'), pair(i, j')), a suffix maximum, which NumPy computes for wide bands.
    """
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return []
    lo = [bisect_left(b, x - tol) for x in a]
    hi = [bisect_right(b, x + tol) for x in a]
    big = tol * min(n, m) + 1
    fits_int64 = big * (min(n, m) + 1) < 2**62
    b_array = np.asarray(b, dtype=np.int64)
    rows: list[list[int]] = [[]] * n
    next_row: list[int] = [0] * (m + 1)
    next_lo = 0
    for i in range(n - 1, -1, -1):
        l_i, h_i, a_i = lo[i], hi[i], a[i]
        # below[k] = F(i+1, l_i + k) for k = 0..h_i − l_i (clients before lo[i+1] are out of reach)
        if l_i >= next_lo:
            below = next_row[l_i - next_lo : h_i - next_lo + 1]
        elif h_i < next_lo:
            below = [next_row[0]] * (h_i - l_i + 1)
        else:
            below = [next_row[0]] * (next_lo - l_i) + next_row[: h_i - next_lo + 1]
        width = h_i - l_i
        if width > _WIDE_BAND and fits_int64:
            skip = np.asarray(below, dtype=np.int64)
            best = skip.copy()
            paired = big - np.abs(b_array[l_i:h_i] - a_i) + skip[1:]
            np.maximum(best[:-1], paired, out=best[:-1])
            row = np.maximum.accumulate(best[::-1])[::-1].tolist()
        else:
            row = [0] * (width + 1)
            best_so_far = below[width]
            row[width] = best_so_far
            for k in range(width - 1, -1, -1):
                cell = big - abs(b[l_i + k] - a_i) + below[k + 1]
                if below[k] > cell:
                    cell = below[k]
                if cell > best_so_far:
                    best_so_far = cell
                row[k] = best_so_far
        rows[i] = row
        next_row, next_lo = row, l_i
    return _walk_points(a, b, lo, hi, rows, big)


def _walk_points(
    a: list[int], b: list[int], lo: list[int], hi: list[int], rows: list[list[int]], big: int
) -> list[tuple[int, int]]:
    """Read one optimal matching off the DP, earliest moments first (the documented tie-break)."""
    n, m = len(a), len(b)

    def value(i: int, j: int) -> int:
        if i == n:
            return 0
        return rows[i][j - lo[i]] if j >= lo[i] else rows[i][0]

    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if j < lo[i]:
            j = lo[i]
        elif j >= hi[i]:
            i += 1
        else:
            here = value(i, j)
            if big - abs(b[j] - a[i]) + value(i + 1, j + 1) == here:
                pairs.append((i, j))
                i += 1
                j += 1
            elif value(i, j + 1) == here:
                j += 1
            else:
                i += 1
    return pairs


def _match_general(lane_t: list[Mark], lane_c: list[Mark], tol: int) -> list[tuple[int, int]]:
    """Exact optimum when spans are present: a sparse minimum-weight perfect matching.

    Spans of different lengths break the order structure the point DP relies on, so the
    candidate graph is solved as an assignment problem (SciPy's sparse LAPJV). To allow
    moments to stay unmatched, each therapist moment i gets a stand-in partner d_i and each
    client moment j a stand-in e_j, both costing `unmatched`; for every candidate pair (i, j) the
    stand-ins e_j–d_i may pair at no extra cost. A perfect matching then costs
    Σ|lag| + unmatched · (moments left alone), and `unmatched` exceeds any lag total, so the
    solver first maximises the number of pairs and then minimises Σ|lag|. The graph is built in
    NumPy, entry for entry in the order the solver has always been given it, so the solver's
    choice among equally good matchings is unchanged.
    """
    t_start = np.array([mark.t_ms for mark in lane_t], dtype=np.int64)
    t_end = np.array([mark.end for mark in lane_t], dtype=np.int64)
    c_start = np.array([mark.t_ms for mark in lane_c], dtype=np.int64)
    c_end = np.array([mark.end for mark in lane_c], dtype=np.int64)
    edge_t, edge_c = _candidate_edges(t_start, t_end, c_start, c_end, tol)
    if not edge_t.size:
        return []
    n, m, n_edges = len(lane_t), len(lane_c), edge_t.size
    lags = np.abs(c_start[edge_c] - t_start[edge_t])
    unmatched = 2 * int(lags.sum()) + 1
    # Rows: therapist moments 0..n-1, then client stand-ins e_j; columns: client moments
    # 0..m-1, then therapist stand-ins d_i. Every weight gets +1 so that none is zero (a sparse
    # matrix would drop it); a perfect matching always has n + m edges, so this shifts nothing.
    # Entries: (i, j) and (e_j, d_i) for each candidate pair in turn, then (i, d_i), (e_j, j).
    size = 2 * n_edges + n + m
    rows = np.empty(size, dtype=np.int64)
    cols = np.empty(size, dtype=np.int64)
    weights = np.empty(size, dtype=float)
    pair_part = slice(0, 2 * n_edges)
    rows[pair_part][0::2], rows[pair_part][1::2] = edge_t, n + edge_c
    cols[pair_part][0::2], cols[pair_part][1::2] = edge_c, m + edge_t
    weights[pair_part][0::2], weights[pair_part][1::2] = lags + 1, 1
    rows[2 * n_edges :] = np.arange(n + m)
    cols[2 * n_edges : 2 * n_edges + n] = m + np.arange(n)
    cols[2 * n_edges + n :] = np.arange(m)
    weights[2 * n_edges :] = float(unmatched + 1)
    graph = csr_matrix((weights, (rows, cols)), shape=(n + m, n + m))
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    keep = (row_ind < n) & (col_ind < m)
    return list(zip(row_ind[keep].tolist(), col_ind[keep].tolist(), strict=True))


def _candidate_edges(
    t_start: np.ndarray, t_end: np.ndarray, c_start: np.ndarray, c_end: np.ndarray, tol: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (therapist, client) index pairs within τ, by therapist then client index.

    The client lane is sorted by start, so the clients therapist i can reach lie in one run of
    starts, [t_start − τ − longest client, t_end + τ]; the runs are laid out at once and then
    filtered by the gap, at most about `_CANDIDATE_CHUNK` candidates at a time (one very long
    client span makes every run long).
    """
    if not t_start.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    longest = int((c_end - c_start).max()) if c_start.size else 0
    first = np.searchsorted(c_start, t_start - tol - longest, side="left")
    last = np.searchsorted(c_start, t_end + tol, side="right")
    sizes = np.maximum(last - first, 0)
    ends = np.cumsum(sizes)
    cuts = np.searchsorted(ends, np.arange(_CANDIDATE_CHUNK, int(ends[-1]), _CANDIDATE_CHUNK))
    found_t, found_c = [], []
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), t_start.size], strict=True):
        if lo == hi:
            continue
        run = sizes[lo:hi]
        edge_t = np.repeat(np.arange(lo, hi), run)
        run_start = np.cumsum(run) - run
        edge_c = np.arange(edge_t.size) - np.repeat(run_start - first[lo:hi], run)
        gap = np.maximum(c_start[edge_c] - t_end[edge_t], t_start[edge_t] - c_end[edge_c])
        keep = gap <= tol
        found_t.append(edge_t[keep])
        found_c.append(edge_c[keep])
    return np.concatenate(found_t), np.concatenate(found_c)


_CANDIDATE_CHUNK = 1 << 22
"""Candidate pairs examined at once when building the span graph (about 100 MB of arrays)."""


def count_pairs(
    therapist: Sequence[Mark], client: Sequence[Mark], tolerance_ms: int = DEFAULT_TOLERANCE_MS
) -> int:
    """The number of pairs an optimal matching has, by a greedy that needs no lags.

    For points on a line, pairing the earliest eligible therapist and client moments is a
    maximum matching (exchange argument), so the chance baseline need not solve for lags. Spans
    have their own greedy (``_greedy_count_spans``).
    """
    _check_tolerance(tolerance_ms)
    if any(m.is_span for m in therapist) or any(m.is_span for m in client):
        return _greedy_count_spans(therapist, client, tolerance_ms)
    return _greedy_count(
        sorted(m.t_ms for m in therapist), sorted(m.t_ms for m in client), tolerance_ms
    )


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
    """Maximum matching size for spans (and points) that pair when their gap is ≤ tol.

    Therapist T = [a, b] may pair with client C = [c, d] iff c ≤ b + tol and d ≥ a − tol. Take
    the therapist moments by b; give each the available client with the smallest d that still
    reaches it. Exchange argument: if an optimal matching pairs T with C2 and the greedy's C1
    (d1 ≤ d2) with a later T' (b' ≥ b), then C2 also fits T' (c2 ≤ b ≤ b', d2 ≥ d1 ≥ a' − tol),
    so swapping keeps it optimal. O(n log n) plus list inserts; checked against the exact
    matching by a property test.
    """
    lane_t = sorted((m.end_ms if m.end_ms is not None else m.t_ms, m.t_ms) for m in therapist)
    lane_c = sorted((m.t_ms, m.end_ms if m.end_ms is not None else m.t_ms) for m in client)
    open_ends: list[int] = []  # ends of available clients that have started by now, sorted
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


@dataclass(frozen=True)
class CodePairCount:
    """How many matched pairs carry this therapist code and this client code."""

    therapist_code: str
    client_code: str
    pairs: int


@dataclass(frozen=True)
class CodeAgreement:
    """One code: how often each side used it, and in how many pairs both sides did."""

    code: str
    therapist: int
    client: int
    both_in_pair: int


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa over fixed time bins: is a lane marking anything in this bin, yes or no."""

    bin_ms: int
    n_bins: int
    observed: float
    expected: float
    kappa: float | None


@dataclass(frozen=True)
class ChanceBaseline:
    """The co-marking rate expected by chance: the client lane circularly shifted at random."""

    n_shifts: int
    seed: int
    expected_rate: float
    sd_rate: float
    p_value: float


@dataclass
class Agreement:
    """Every agreement figure of one dyad timeline, JSON-ready through to_dict()."""

    tolerance_ms: int
    duration_ms: int
    n_therapist: int
    n_client: int
    n_pairs: int
    co_marking_rate: float | None
    therapist_matched_share: float | None
    client_matched_share: float | None
    therapist_first: int
    client_first: int
    simultaneous: int
    lag_median_ms: int | None
    abs_lag_median_ms: int | None
    abs_lag_iqr_ms: int | None
    abs_lag_mad_ms: int | None
    per_code: list[CodeAgreement] = field(default_factory=list)
    code_cooccurrence: list[CodePairCount] = field(default_factory=list)
    kappa: Kappa | None = None
    chance: ChanceBaseline | None = None
    matching: Matching | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(
    therapist: Sequence[Mark],
    client: Sequence[Mark],
    tolerance_ms: int = DEFAULT_TOLERANCE_MS,
    *,
    duration_ms: int,
    bin_ms: int = DEFAULT_BIN_MS,
    n_shifts: int = 1000,
    seed: int = 0,
) -> Agreement:
    """Agreement figures for one recording; deterministic for a given seed.

    co_marking_rate = 2·pairs / (n_therapist + n_client): the share of all moments that found a
    partner (1 when every moment is paired; symmetric in the two lanes).
    """
    if not _is_int(duration_ms) or duration_ms <= 0:
        raise InvalidSetting(f"duration_ms must be a whole number > 0, got {duration_ms!r}.")
    if not _is_int(n_shifts) or n_shifts < 0:
        raise InvalidSetting(f"n_shifts must be a whole number ≥ 0, got {n_shifts!r}.")
    for lane, name in ((therapist, "therapist"), (client, "client")):
        for mark in lane:
            if mark.end > duration_ms:
                raise InvalidMark(
                    f"The {name}'s moment {mark.id} ends at {mark.end} ms, after the recording's "
                    f"end ({duration_ms} ms). Check that the moments belong to this recording."
                )
    matching = match_lanes(therapist, client, tolerance_ms)
    n_t, n_c, n_p = len(therapist), len(client), len(matching.pairs)
    lags = np.array([p.lag_ms for p in matching.pairs], dtype=np.int64)
    abs_lags = np.abs(lags)
    if n_p:
        q25, q50, q75 = np.percentile(abs_lags, [25, 50, 75])
        mad = float(np.median(np.abs(abs_lags - q50)))
        lag_figures = (
            _round_ms(float(np.median(lags))),
            _round_ms(float(q50)),
            _round_ms(float(q75 - q25)),
            _round_ms(mad),
        )
    else:
        lag_figures = (None, None, None, None)
    per_code, cooccurrence = _code_tables(therapist, client, matching)
    return Agreement(
        tolerance_ms=tolerance_ms,
        duration_ms=duration_ms,
        n_therapist=n_t,
        n_client=n_c,
        n_pairs=n_p,
        co_marking_rate=_rate(n_p, n_t, n_c),
        therapist_matched_share=n_p / n_t if n_t else None,
        client_matched_share=n_p / n_c if n_c else None,
        therapist_first=int((lags > 0).sum()),
        client_first=int((lags < 0).sum()),
        simultaneous=int((lags == 0).sum()),
        lag_median_ms=lag_figures[0],
        abs_lag_median_ms=lag_figures[1],
        abs_lag_iqr_ms=lag_figures[2],
        abs_lag_mad_ms=lag_figures[3],
        per_code=per_code,
        code_cooccurrence=cooccurrence,
        kappa=binned_kappa(therapist, client, duration_ms=duration_ms, bin_ms=bin_ms),
        chance=chance_baseline(
            therapist,
            client,
            tolerance_ms,
            duration_ms=duration_ms,
            n_shifts=n_shifts,
            seed=seed,
            observed_pairs=n_p,
        ),
        matching=matching,
    )


def _rate(n_pairs: int, n_t: int, n_c: int) -> float | None:
    return 2 * n_pairs / (n_t + n_c) if n_t + n_c else None


def _code_tables(
    therapist: Sequence[Mark], client: Sequence[Mark], matching: Matching
) -> tuple[list[CodeAgreement], list[CodePairCount]]:
    by_t = {m.id: m for m in therapist}
    by_c = {m.id: m for m in client}
    used_t = Counter(code for m in therapist for code in set(m.codes))
    used_c = Counter(code for m in client for code in set(m.codes))
    both: Counter[str] = Counter()
    cross: Counter[tuple[str, str]] = Counter()
    for pair in matching.pairs:
        codes_t, codes_c = set(by_t[pair.therapist_id].codes), set(by_c[pair.client_id].codes)
        both.update(codes_t & codes_c)
        cross.update((ct, cc) for ct in codes_t for cc in codes_c)
    per_code = [
        CodeAgreement(code, used_t[code], used_c[code], both[code])
        for code in sorted(set(used_t) | set(used_c))
    ]
    table = [CodePairCount(ct, cc, k) for (ct, cc), k in sorted(cross.items())]
    return per_code, table


def binned_kappa(
    therapist: Sequence[Mark],
    client: Sequence[Mark],
    *,
    duration_ms: int,
    bin_ms: int = DEFAULT_BIN_MS,
) -> Kappa:
    """Cohen's kappa on [0, duration) cut into bins, each bin 'marked' or not in each lane.

    Bakeman & Quera's time-unit kappa (not ELAN's or BORIS's comparison); kappa is None when
    it is undefined (both lanes constant over every bin, so expected agreement is 1).
    """
    if not _is_int(bin_ms) or bin_ms <= 0:
        raise InvalidSetting(f"bin_ms must be a whole number > 0, got {bin_ms!r}.")
    if not _is_int(duration_ms) or duration_ms <= 0:
        raise InvalidSetting(f"duration_ms must be a whole number > 0, got {duration_ms!r}.")
    n_bins = -(-duration_ms // bin_ms)
    occ_t = _occupancy(therapist, n_bins, bin_ms)
    occ_c = _occupancy(client, n_bins, bin_ms)
    observed = float((occ_t == occ_c).mean())
    p_t, p_c = float(occ_t.mean()), float(occ_c.mean())
    expected = p_t * p_c + (1 - p_t) * (1 - p_c)
    kappa = None if expected >= 1.0 else (observed - expected) / (1 - expected)
    return Kappa(bin_ms, n_bins, observed, expected, kappa)


def _occupancy(lane: Sequence[Mark], n_bins: int, bin_ms: int) -> np.ndarray:
    """Bins touched by a lane: a point marks its bin; a span [s, e) every bin it overlaps."""
    occ = np.zeros(n_bins, dtype=bool)
    for mark in lane:
        first = min(mark.t_ms // bin_ms, n_bins - 1)
        last = min((mark.end - 1) // bin_ms, n_bins - 1) if mark.is_span else first
        occ[first : last + 1] = True
    return occ


def chance_baseline(
    therapist: Sequence[Mark],
    client: Sequence[Mark],
    tolerance_ms: int = DEFAULT_TOLERANCE_MS,
    *,
    duration_ms: int,
    n_shifts: int = 1000,
    seed: int = 0,
    observed_pairs: int | None = None,
) -> ChanceBaseline | None:
    """Co-marking under random circular shifts of the client lane, and a one-sided p-value.

    Shifting keeps each lane's own rhythm (spacing, clustering) but breaks the alignment
    between lanes. p = (1 + #{shifted rate ≥ observed}) / (1 + n_shifts). None when there is
    nothing to shift (an empty lane, or n_shifts = 0).
    """
    if not therapist or not client or n_shifts == 0:
        return None
    n_t, n_c = len(therapist), len(client)
    if observed_pairs is None:
        observed_pairs = count_pairs(therapist, client, tolerance_ms)
    shifts = np.random.default_rng(seed).integers(0, duration_ms, size=n_shifts)
    if any(m.is_span for m in therapist) or any(m.is_span for m in client):
        counts = shifted_span_counts(
            [(m.t_ms, m.end) for m in therapist],
            [(m.t_ms, m.end) for m in client],
            shifts,
            duration_ms,
            tolerance_ms,
        )
    else:
        counts = shifted_point_counts(
            [m.t_ms for m in therapist], [m.t_ms for m in client], shifts, duration_ms, tolerance_ms
        )
    rates = 2 * counts / (n_t + n_c)
    return ChanceBaseline(
        n_shifts=n_shifts,
        seed=seed,
        expected_rate=float(rates.mean()),
        sd_rate=float(rates.std()),
        p_value=(1 + int((counts >= observed_pairs).sum())) / (1 + n_shifts),
    )


def _sorted_lane(lane: Sequence[Mark], name: str) -> list[Mark]:
    seen: set[int] = set()
    for mark in lane:
        if not isinstance(mark, Mark):
            raise InvalidMark(f"The {name} lane holds {type(mark).__name__}, expected Mark.")
        if mark.id in seen:
            raise InvalidMark(f"The {name} lane has moment id {mark.id} more than once.")
        seen.add(mark.id)
    return sorted(lane, key=lambda m: (m.t_ms, m.end, m.id))


def _check_tolerance(tolerance_ms: int) -> None:
    if not _is_int(tolerance_ms) or tolerance_ms < 0:
        raise InvalidSetting(
            f"The alignment tolerance must be a whole number of milliseconds ≥ 0, "
            f"got {tolerance_ms!r}."
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _round_ms(value: float) -> int:
    """Half-up rounding to whole milliseconds (medians of even counts can end in .5)."""
    return math.floor(value + 0.5)
