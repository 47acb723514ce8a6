"""Pair counts of the chance baseline for every circular shift at once, compiled with numba.

`ipr.timeline.chance_baseline` shifts the client lane circularly 1,000 times and counts the pairs
of a maximum matching for each shift. Here the lanes become integer arrays once; a shift then
only rotates the client order (and, for spans, interleaves two runs of the end order), so no
moment object is built and nothing is re-sorted per shift. The counts equal those of the plain
greedies in ipr.timeline (`_greedy_count`, `_greedy_count_spans`) shift for shift; property tests
compare them with the previous one-shift-at-a-time implementation (tests/reference_algorithms.py).

numba is imported and the kernels compiled on first use, so processes that never compute a chance
baseline do not pay for it: about 1.4 s of CPU the first time on a machine, about 0.5 s (mostly
importing numba) in later processes, which load the compiled code from numba's cache. The kernels
release the interpreter lock while they run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_compiled: dict[str, Callable[..., Any]] = {}


def shifted_point_counts(
    therapist: Sequence[int],
    client: Sequence[int],
    shifts: np.ndarray,
    duration_ms: int,
    tol: int,
) -> np.ndarray:
    """Pairs of the points `therapist` and `client` moved to (t + s) mod duration, per shift s.

    With the clients reduced modulo the duration and sorted once as c, and c_ext = (c − duration,
    c), the shifted lane for shift s, sorted, is c_ext[w : w + m] + s where w counts the clients
    below duration − s (those that do not wrap). The greedy two-pointer then runs per shift.
    """
    a = np.sort(np.asarray(therapist, dtype=np.int64))
    c = np.sort(np.asarray(client, dtype=np.int64) % duration_ms)
    c_ext = np.concatenate([c - duration_ms, c])
    shifts = np.asarray(shifts, dtype=np.int64)
    first_kept = np.searchsorted(c, duration_ms - shifts, side="left").astype(np.int64)
    return _kernel("points", _point_counts)(a, c_ext, shifts, first_kept, int(tol))


def shifted_span_counts(
    therapist: Sequence[tuple[int, int]],
    client: Sequence[tuple[int, int]],
    shifts: np.ndarray,
    duration_ms: int,
    tol: int,
) -> np.ndarray:
    """Pairs of the (start, end) moments, the client ones moved as ipr.timeline shifts them.

    A client moment starts at (start + s) mod duration and keeps its length. Therapist [a, b]
    and client [c, d] pair when c ≤ b + τ and d ≥ a − τ; the greedy takes the therapist moments
    by (b, a) and gives each the open client with the smallest d that still reaches it
    (exchange argument in `ipr.timeline._greedy_count_spans`).
    """
    lane_t = sorted((end, start) for start, end in therapist)
    t_end = np.array([b for b, _ in lane_t], dtype=np.int64).reshape(-1)
    t_start = np.array([a for _, a in lane_t], dtype=np.int64).reshape(-1)
    starts = np.array([start for start, _ in client], dtype=np.int64).reshape(-1)
    ends = np.array([end for _, end in client], dtype=np.int64).reshape(-1)
    c0 = starts % duration_ms
    length = ends - starts
    by_start = np.argsort(c0, kind="stable")
    c0, length = c0[by_start], length[by_start]
    by_end = np.argsort(c0 + length, kind="stable").astype(np.int64)
    shifts = np.asarray(shifts, dtype=np.int64)
    first_wrap = np.searchsorted(c0, duration_ms - shifts, side="left").astype(np.int64)
    return _kernel("spans", _span_counts)(
        t_end, t_start, c0, length, by_end, shifts, first_wrap, int(duration_ms), int(tol)
    )


def _kernel(name: str, python_function: Callable[..., Any]) -> Callable[..., Any]:
    """The compiled kernel, from numba's on-disk cache when a process compiled it before.

    numba keeps the cache beside this file (ipr/__pycache__), in NUMBA_CACHE_DIR, or in the
    user's cache folder, whichever is writable; with none of them it compiles in memory only.
    """
    if name not in _compiled:
        import numba

        try:
            _compiled[name] = numba.njit(nogil=True, cache=True)(python_function)
        except RuntimeError:  # "no locator available": nowhere to write the cache
            _compiled[name] = numba.njit(nogil=True)(python_function)
    return _compiled[name]


def _point_counts(a, c_ext, shifts, first_kept, tol):  # pragma: no cover - compiled by numba
    """`ipr.timeline._greedy_count` of `a` against c_ext[w : w + m] + s, for every shift s."""
    n, m = a.size, c_ext.size // 2
    counts = np.zeros(shifts.size, dtype=np.int64)
    for k in range(shifts.size):
        shift, base = shifts[k], first_kept[k]
        i = j = count = 0
        while i < n and j < m:
            b = c_ext[base + j] + shift
            if b < a[i] - tol:
                j += 1
            elif b > a[i] + tol:
                i += 1
            else:
                count += 1
                i += 1
                j += 1
        counts[k] = count
    return counts


def _span_counts(
    t_end, t_start, c0, length, by_end, shifts, first_wrap, duration, tol
):  # pragma: no cover
    """Per shift: the span greedy, its open clients a bitset indexed by rank in end order.

    Client q (start order) wraps under shift s when q ≥ first_wrap[s]: its shifted start is
    c0[q] + s − duration, otherwise c0[q] + s; its end is that plus length[q]. Wrapped and kept
    clients each keep their unshifted end order, so the shifted end order is a merge of the two
    runs of `by_end`. The first open client at or after a rank is found word by word.
    """
    n, m = t_end.size, c0.size
    n_words = (m + 63) // 64
    one = np.uint64(1)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    counts = np.zeros(shifts.size, dtype=np.int64)
    rank = np.empty(m, dtype=np.int64)
    ends = np.empty(m, dtype=np.int64)
    wrapped_run = np.empty(m, dtype=np.int64)
    kept_run = np.empty(m, dtype=np.int64)
    words = np.empty(n_words, dtype=np.uint64)
    for k in range(shifts.size):
        shift, wrap = shifts[k], first_wrap[k]
        n_wrapped = n_kept = 0
        for r in range(m):
            q = by_end[r]
            if q >= wrap:
                wrapped_run[n_wrapped] = q
                n_wrapped += 1
            else:
                kept_run[n_kept] = q
                n_kept += 1
        u = v = 0
        for r in range(m):
            take_wrapped = False
            if u < n_wrapped:
                if v >= n_kept:
                    take_wrapped = True
                else:
                    qw, qk = wrapped_run[u], kept_run[v]
                    take_wrapped = c0[qw] + length[qw] - duration <= c0[qk] + length[qk]
            if take_wrapped:
                q = wrapped_run[u]
                u += 1
                ends[r] = c0[q] + length[q] + shift - duration
            else:
                q = kept_run[v]
                v += 1
                ends[r] = c0[q] + length[q] + shift
            rank[q] = r
        words[:] = 0
        p = count = 0
        for i in range(n):
            limit = t_end[i] + tol
            while p < m:
                q = wrap + p if wrap + p < m else wrap + p - m
                start = c0[q] + shift - (duration if q >= wrap else 0)
                if start > limit:
                    break
                r = rank[q]
                words[r >> 6] |= one << np.uint64(r & 63)
                p += 1
            # the first rank whose shifted end reaches t_start − τ
            low, high, target = 0, m, t_start[i] - tol
            while low < high:
                mid = (low + high) >> 1
                if ends[mid] < target:
                    low = mid + 1
                else:
                    high = mid
            if low >= m:
                continue
            w = low >> 6
            bits = words[w] & (full << np.uint64(low & 63))
            while bits == 0 and w + 1 < n_words:
                w += 1
                bits = words[w]
            if bits == 0:
                continue
            bit = 0  # index of the lowest set bit
            if bits & np.uint64(0xFFFFFFFF) == 0:
                bit += 32
                bits >>= np.uint64(32)
            if bits & np.uint64(0xFFFF) == 0:
                bit += 16
                bits >>= np.uint64(16)
            if bits & np.uint64(0xFF) == 0:
                bit += 8
                bits >>= np.uint64(8)
            if bits & np.uint64(0xF) == 0:
                bit += 4
                bits >>= np.uint64(4)
            if bits & np.uint64(0x3) == 0:
                bit += 2
                bits >>= np.uint64(2)
            if bits & one == 0:
                bit += 1
            words[w] &= ~(one << np.uint64(bit))
            count += 1
        counts[k] = count
    return counts
