"""The fast paths (all shifts at once, graph in NumPy, surrogates) against the previous code.

tests/reference_algorithms.py holds the implementations as they were before; every fast path
must give the same result, bit for bit, on random lanes and series.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.shift_counts import shifted_point_counts, shifted_span_counts
from ipr.synchrony import read_mea_txt, surrogate_baseline
from ipr.timeline import Mark, _match_general, _sorted_lane, chance_baseline
from tests import reference_algorithms as ref

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@st.composite
def lanes_and_shifts(draw, spans: bool):
    """Two lanes on a short recording, so that many moments wrap; shifts include 0, 1, D − 1."""
    duration = draw(st.integers(1, 300))

    def lane(first_id: int) -> list[Mark]:
        marks = []
        for k in range(draw(st.integers(1, 12))):
            t = draw(st.integers(0, 2 * duration))  # on the very end, or past it
            length = draw(st.integers(0, duration)) if spans and draw(st.booleans()) else None
            marks.append(Mark(first_id + k, t, None if length is None else t + length))
        return marks

    edges = [0, 1, duration - 1, duration // 2]
    shifts = edges + draw(st.lists(st.integers(0, duration - 1), max_size=6))
    tol = draw(st.integers(0, 60))
    return lane(1), lane(1001), np.array([s % duration for s in shifts]), duration, tol


@settings(max_examples=200, deadline=None)
@given(lanes_and_shifts(spans=False))
def test_point_counts_for_every_shift_equal_the_greedy_on_the_shifted_lane(case):
    therapist, client, shifts, duration, tol = case
    expected = [
        ref._greedy_count(
            sorted(m.t_ms for m in therapist),
            sorted((m.t_ms + int(s)) % duration for m in client),
            tol,
        )
        for s in shifts
    ]
    counts = shifted_point_counts(
        [m.t_ms for m in therapist], [m.t_ms for m in client], shifts, duration, tol
    )
    assert counts.tolist() == expected


@settings(max_examples=200, deadline=None)
@given(lanes_and_shifts(spans=True))
def test_span_counts_for_every_shift_equal_the_greedy_on_the_shifted_lane(case):
    # Spans may run past the end, before or after the shift (a moved span keeps its length).
    therapist, client, shifts, duration, tol = case
    expected = [
        ref.count_pairs(therapist, ref._shift_lane(client, int(s), duration), tol) for s in shifts
    ]
    counts = shifted_span_counts(
        [(m.t_ms, m.end) for m in therapist],
        [(m.t_ms, m.end) for m in client],
        shifts,
        duration,
        tol,
    )
    assert counts.tolist() == expected


@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.integers(0, 2**32 - 1), st.integers(0, 30))
def test_chance_baseline_is_the_same_as_before(spans, seed, n_shifts):
    rng = np.random.default_rng(seed)
    duration = int(rng.integers(1, 50_000))

    def lane(first_id: int) -> list[Mark]:
        out = []
        for k in range(int(rng.integers(0, 40))):
            t = int(rng.integers(0, duration + 1))
            end = (
                min(duration, t + int(rng.integers(0, 5000)))
                if spans and rng.random() < 0.5
                else None
            )
            out.append(Mark(first_id + k, t, end))
        return out

    therapist, client, tol = lane(1), lane(1001), int(rng.integers(0, 3000))
    kwargs = dict(duration_ms=duration, n_shifts=n_shifts, seed=seed)
    assert chance_baseline(therapist, client, tol, **kwargs) == ref.chance_baseline(
        therapist, client, tol, **kwargs
    )


def seeded_lane(rng: np.random.Generator, size: int, first_id: int, duration: int) -> list[Mark]:
    """Half points, half spans of 1–20 s, as in bench/algorithms.py."""
    marks = []
    for k in range(size):
        t = int(rng.integers(0, duration - 20_000))
        end = t + int(rng.integers(1000, 20_000)) if k % 2 else None
        marks.append(Mark(first_id + k, t, end))
    return marks


@pytest.mark.parametrize("spans", [False, True])
def test_chance_baseline_on_a_dense_session_is_the_same_as_before(spans):
    rng = np.random.default_rng(12)
    duration = 600_000
    therapist = seeded_lane(rng, 200, 1, duration)
    client = seeded_lane(rng, 200, 1001, duration)
    if not spans:
        therapist = [Mark(m.id, m.t_ms) for m in therapist]
        client = [Mark(m.id, m.t_ms) for m in client]
    new = chance_baseline(therapist, client, 5000, duration_ms=duration, n_shifts=200, seed=5)
    old = ref.chance_baseline(therapist, client, 5000, duration_ms=duration, n_shifts=200, seed=5)
    assert new == old
    assert new is not None and 0 < new.expected_rate < 1


@st.composite
def span_lanes(draw):
    def lane(first_id: int) -> list[Mark]:
        marks = []
        for k in range(draw(st.integers(0, 15))):
            t = draw(st.integers(0, 200))
            end = t + draw(st.integers(0, 40)) if draw(st.booleans()) else None
            marks.append(Mark(first_id + k, t, end))
        return marks

    return lane(1), lane(101), draw(st.integers(0, 30))


@settings(max_examples=200, deadline=None)
@given(span_lanes(), st.sampled_from([3, 1 << 22]))
def test_span_matching_returns_the_same_pairs_as_before(case, chunk):
    therapist, client, tol = case
    lane_t, lane_c = _sorted_lane(therapist, "therapist"), _sorted_lane(client, "client")
    with patch("ipr.timeline._CANDIDATE_CHUNK", chunk):  # 3: candidates built in many chunks
        assert _match_general(lane_t, lane_c, tol) == ref.match_general(lane_t, lane_c, tol)


def test_span_matching_of_a_long_session_returns_the_same_pairs_as_before():
    rng = np.random.default_rng(3)
    lane_t = _sorted_lane(seeded_lane(rng, 1500, 1, 3_600_000), "therapist")
    lane_c = _sorted_lane(seeded_lane(rng, 1500, 5001, 3_600_000), "client")
    pairs = _match_general(lane_t, lane_c, 5000)
    assert pairs == ref.match_general(lane_t, lane_c, 5000)
    assert len(pairs) > 1000


def test_one_span_as_long_as_the_session_reaches_every_moment_and_pairs_once():
    therapist = [Mark(k, 1000 * k) for k in range(1, 2001)]
    client = [Mark(9000, 0, 2_100_000), *[Mark(10_000 + k, 1000 * k + 7) for k in range(1, 1001)]]
    lane_t, lane_c = _sorted_lane(therapist, "therapist"), _sorted_lane(client, "client")
    with patch("ipr.timeline._CANDIDATE_CHUNK", 10_000):
        pairs = _match_general(lane_t, lane_c, 10)
    assert pairs == ref.match_general(lane_t, lane_c, 10)
    assert len(pairs) == 1001  # every client point with its therapist point, the span with one more


def gappy_series(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    left = rng.gamma(2.0, 50.0, size=size)
    right = 0.6 * np.roll(left, 7) + rng.gamma(2.0, 50.0, size=size)
    left[100:260] = np.nan  # a gap in one series
    right[900:1000] = 5.0  # a flat stretch in the other
    left[2000:2500] = np.nan  # a window mostly missing
    return left, right


@pytest.mark.parametrize(
    "statistic", ["grand_mean", "peak_mean", "lag_zero_mean", "left_leads_mean"]
)
@pytest.mark.parametrize("fisher_z", [True, False])
def test_surrogates_are_the_same_as_one_synchrony_per_surrogate(statistic, fisher_z):
    left, right = gappy_series(4, 3000)
    kwargs = dict(
        n=15,
        seed=9,
        segment_s=20,
        statistic=statistic,
        window_s=30,
        step_s=10,
        max_lag_s=3,
        fisher_z=fisher_z,
        absolute=fisher_z,
    )
    new = surrogate_baseline(left, right, 10.0, **kwargs)
    assert new == ref.surrogate_baseline(left, right, 10.0, **kwargs)
    assert new.n == 15 and len(set(new.surrogates)) == 15


@pytest.mark.corpus
def test_surrogates_of_a_real_session_are_the_same_as_before():
    path = CORPUS / "motion_energy" / "rMEA_extdata" / "normal" / "200_01.txt"
    if not path.is_file():
        pytest.skip("../shared/corpus not present")
    patient, therapist = read_mea_txt(path)
    new = surrogate_baseline(patient, therapist, 25.0, n=10, seed=0)
    assert new == ref.surrogate_baseline(patient, therapist, 25.0, n=10, seed=0)


def test_importing_the_timeline_does_not_load_numba():
    """The web process imports ipr.timeline; only a chance baseline compiles the kernels."""
    code = "import sys, ipr.timeline, ipr.synchrony; print('numba' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
