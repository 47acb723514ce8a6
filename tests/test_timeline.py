"""Matching and agreement on small hand-worked lanes, and optimality against brute force."""

from __future__ import annotations

import json
import random
from functools import cache
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.timeline import (
    Agreement,
    CodeAgreement,
    CodePairCount,
    InvalidMark,
    InvalidSetting,
    Mark,
    Matching,
    Pair,
    TimelineError,
    agreement,
    binned_kappa,
    chance_baseline,
    count_pairs,
    gap_ms,
    match_lanes,
)


def points(*times: int, start_id: int = 1) -> list[Mark]:
    return [Mark(id=start_id + k, t_ms=t) for k, t in enumerate(times)]


# --- hand-worked matchings -------------------------------------------------------------------


def test_pairs_carry_signed_lag_and_leftovers_are_listed_in_time_order():
    therapist = points(1000, 5000, 9000)
    client = points(1500, 8000, 20000, start_id=11)
    result = match_lanes(therapist, client, 1000)
    assert result == Matching(
        pairs=[Pair(1, 11, 500), Pair(3, 12, -1000)],
        therapist_only=[2],
        client_only=[13],
    )


def test_exactly_tolerance_apart_matches_one_ms_more_does_not():
    assert match_lanes(points(0), points(1000, start_id=9), 1000).pairs == [Pair(1, 9, 1000)]
    assert match_lanes(points(0), points(1001, start_id=9), 1000).pairs == []
    assert match_lanes(points(1000), points(0, start_id=9), 1000).pairs == [Pair(1, 9, -1000)]


def test_tolerance_zero_pairs_only_identical_times():
    result = match_lanes(points(100, 200), points(100, 201, start_id=5), 0)
    assert result.pairs == [Pair(1, 5, 0)]
    assert result.therapist_only == [2]
    assert result.client_only == [6]


def test_more_pairs_beat_a_smaller_lag():
    # Pairing the closest moments (2000–1900, 100 ms) would leave 1000 and 2900 unpairable.
    result = match_lanes(points(1000, 2000), points(1900, 2900, start_id=5), 1000)
    assert result.pairs == [Pair(1, 5, 900), Pair(2, 6, 900)]


def test_among_maximum_matchings_the_smallest_total_lag_wins():
    # (0→400, 1000→600) totals 800 ms; the crossed (0→600, 1000→400) totals 1200 ms.
    result = match_lanes(points(0, 1000), points(400, 600, start_id=5), 1000)
    assert result.pairs == [Pair(1, 5, 400), Pair(2, 6, -400)]


def test_tie_between_two_clients_goes_to_the_earlier_client():
    result = match_lanes(points(5000), points(4000, 6000, start_id=5), 1000)
    assert result.pairs == [Pair(1, 5, -1000)]
    assert result.client_only == [6]


def test_tie_between_two_therapist_moments_goes_to_the_earlier_one():
    result = match_lanes(points(4000, 6000), points(5000, start_id=5), 1000)
    assert result.pairs == [Pair(1, 5, 1000)]
    assert result.therapist_only == [2]


def test_duplicate_times_pair_by_id_order():
    therapist = [Mark(id=8, t_ms=1000), Mark(id=3, t_ms=1000)]
    client = [Mark(id=20, t_ms=1000), Mark(id=21, t_ms=1000), Mark(id=19, t_ms=1000)]
    result = match_lanes(therapist, client, 0)
    assert result.pairs == [Pair(3, 19, 0), Pair(8, 20, 0)]
    assert result.client_only == [21]


def test_spans_touching_match_at_tolerance_zero_and_lag_compares_starts():
    therapist = [Mark(id=1, t_ms=1000, end_ms=2000)]
    touching = [Mark(id=2, t_ms=2000, end_ms=3000)]
    apart = [Mark(id=3, t_ms=2001, end_ms=3000)]
    assert match_lanes(therapist, touching, 0).pairs == [Pair(1, 2, 1000)]
    assert match_lanes(therapist, apart, 0).pairs == []
    assert match_lanes(therapist, apart, 1).pairs == [Pair(1, 3, 1001)]


def test_point_inside_a_span_matches_with_the_lag_of_the_start():
    therapist = points(1500)
    client = [Mark(id=7, t_ms=1000, end_ms=5000, peaks_ms=(3000,))]
    assert match_lanes(therapist, client, 0).pairs == [Pair(1, 7, -500)]


def test_long_span_gives_way_so_that_both_points_find_a_partner():
    # The span overlaps both client points; the 10 s point only reaches the later client point.
    therapist = [Mark(id=1, t_ms=0, end_ms=9000), Mark(id=2, t_ms=10_000)]
    client = points(8500, 9500, start_id=5)
    result = match_lanes(therapist, client, 500)
    assert result.pairs == [Pair(1, 5, 8500), Pair(2, 6, -500)]


def test_empty_lanes():
    assert match_lanes([], [], 1000) == Matching([], [], [])
    assert match_lanes(points(5, 1), [], 1000) == Matching([], [2, 1], [])
    assert match_lanes([], points(7, start_id=4), 1000) == Matching([], [], [4])


def test_result_does_not_depend_on_input_order():
    rng = random.Random(7)
    therapist = points(*[rng.randrange(0, 60_000) for _ in range(40)])
    client = points(*[rng.randrange(0, 60_000) for _ in range(40)], start_id=100)
    reference = match_lanes(therapist, client, 2000)
    for _ in range(5):
        rng.shuffle(therapist)
        rng.shuffle(client)
        assert match_lanes(therapist, client, 2000) == reference


def test_numpy_and_python_rows_agree_on_dense_lanes():
    rng = random.Random(11)
    therapist = points(*[rng.randrange(0, 120_000) for _ in range(600)])
    client = points(*[rng.randrange(0, 120_000) for _ in range(500)], start_id=1000)
    with patch("ipr.timeline._WIDE_BAND", 0):
        in_numpy = match_lanes(therapist, client, 5000)
    with patch("ipr.timeline._WIDE_BAND", 10**9):
        in_python = match_lanes(therapist, client, 5000)
    assert in_numpy == in_python
    assert len(in_python.pairs) == count_pairs(therapist, client, 5000)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"id": 1, "t_ms": -1}, "≥ 0"),
        ({"id": 1, "t_ms": 1.5}, "whole number"),
        ({"id": 1, "t_ms": 10, "end_ms": 9}, "end_ms"),
        ({"id": 1, "t_ms": 10, "end_ms": 20, "peaks_ms": (25,)}, "peak 25"),
    ],
)
def test_impossible_marks_are_refused_with_a_named_error(kwargs, fragment):
    with pytest.raises(InvalidMark, match=fragment):
        Mark(**kwargs)


def test_bad_tolerance_and_duplicate_ids_are_refused():
    with pytest.raises(InvalidSetting, match="tolerance"):
        match_lanes(points(1), points(1), -1)
    with pytest.raises(InvalidMark, match="id 1 more than once"):
        match_lanes([Mark(1, 0), Mark(1, 5)], [], 10)
    assert issubclass(InvalidMark, TimelineError)


def test_gap_is_zero_for_overlap_and_touching():
    assert gap_ms(Mark(1, 0, 100), Mark(2, 50, 60)) == 0
    assert gap_ms(Mark(1, 0, 100), Mark(2, 100)) == 0
    assert gap_ms(Mark(1, 0, 100), Mark(2, 130)) == 30
    assert gap_ms(Mark(1, 500), Mark(2, 100, 200)) == 300


# --- brute force -----------------------------------------------------------------------------


def brute_force_best(therapist: list[Mark], client: list[Mark], tol: int) -> tuple[int, int]:
    """(most pairs, smallest Σ|lag|) over every one-to-one matching, crossing ones included."""
    best = (0, 0)

    def walk(i: int, used: frozenset[int], count: int, cost: int) -> None:
        nonlocal best
        if i == len(therapist):
            if (count, -cost) > (best[0], -best[1]):
                best = (count, cost)
            return
        walk(i + 1, used, count, cost)
        for j, c in enumerate(client):
            if j not in used and gap_ms(therapist[i], c) <= tol:
                lag = abs(c.t_ms - therapist[i].t_ms)
                walk(i + 1, used | {j}, count + 1, cost + lag)

    walk(0, frozenset(), 0, 0)
    return best


def reference_tiebreak(therapist: list[Mark], client: list[Mark], tol: int) -> list[Pair]:
    """The documented tie-break on a full (unbanded) DP table, for points only."""
    lane_t = sorted(therapist, key=lambda m: (m.t_ms, m.id))
    lane_c = sorted(client, key=lambda m: (m.t_ms, m.id))
    a, b = [m.t_ms for m in lane_t], [m.t_ms for m in lane_c]

    @cache
    def value(i: int, j: int) -> tuple[int, int]:
        if i == len(a) or j == len(b):
            return (0, 0)
        options = [value(i + 1, j), value(i, j + 1)]
        if abs(a[i] - b[j]) <= tol:
            count, neg_cost = value(i + 1, j + 1)
            options.append((count + 1, neg_cost - abs(a[i] - b[j])))
        return max(options)

    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if b[j] < a[i] - tol:
            j += 1
        elif b[j] > a[i] + tol and all(b[k] > a[i] + tol for k in range(j, len(b))):
            i += 1
        else:
            here = value(i, j)
            if abs(a[i] - b[j]) <= tol:
                count, neg_cost = value(i + 1, j + 1)
                if (count + 1, neg_cost - abs(a[i] - b[j])) == here:
                    pairs.append(Pair(lane_t[i].id, lane_c[j].id, b[j] - a[i]))
                    i, j = i + 1, j + 1
                    continue
            if value(i, j + 1) == here:
                j += 1
            else:
                i += 1
    return pairs


def check_valid(therapist: list[Mark], client: list[Mark], tol: int, result: Matching) -> None:
    by_t = {m.id: m for m in therapist}
    by_c = {m.id: m for m in client}
    paired_t = [p.therapist_id for p in result.pairs]
    paired_c = [p.client_id for p in result.pairs]
    assert sorted(paired_t + result.therapist_only) == sorted(by_t)
    assert sorted(paired_c + result.client_only) == sorted(by_c)
    for pair in result.pairs:
        assert gap_ms(by_t[pair.therapist_id], by_c[pair.client_id]) <= tol
        assert pair.lag_ms == by_c[pair.client_id].t_ms - by_t[pair.therapist_id].t_ms


@st.composite
def lanes(draw, spans: bool):
    def lane(first_id: int) -> list[Mark]:
        size = draw(st.integers(0, 6))
        marks = []
        for k in range(size):
            t = draw(st.integers(0, 40))
            end = t + draw(st.integers(0, 15)) if spans and draw(st.booleans()) else None
            marks.append(Mark(id=first_id + k, t_ms=t, end_ms=end))
        return marks

    return lane(1), lane(101), draw(st.integers(0, 12))


@settings(max_examples=400, deadline=None)
@given(lanes(spans=False), st.sampled_from([0, 10**9]))
def test_points_matching_is_optimal_against_brute_force(case, wide_band):
    therapist, client, tol = case
    with patch("ipr.timeline._WIDE_BAND", wide_band):  # 0: every DP row through NumPy
        result = match_lanes(therapist, client, tol)
    check_valid(therapist, client, tol, result)
    cost = sum(abs(p.lag_ms) for p in result.pairs)
    assert (len(result.pairs), cost) == brute_force_best(therapist, client, tol)
    assert result.pairs == reference_tiebreak(therapist, client, tol)
    assert count_pairs(therapist, client, tol) == len(result.pairs)


@settings(max_examples=400, deadline=None)
@given(lanes(spans=True))
def test_span_matching_is_optimal_against_brute_force(case):
    therapist, client, tol = case
    result = match_lanes(therapist, client, tol)
    check_valid(therapist, client, tol, result)
    cost = sum(abs(p.lag_ms) for p in result.pairs)
    assert (len(result.pairs), cost) == brute_force_best(therapist, client, tol)
    assert count_pairs(therapist, client, tol) == len(result.pairs)
    assert match_lanes(list(reversed(therapist)), list(reversed(client)), tol) == result


# --- agreement -------------------------------------------------------------------------------


def coded_lanes() -> tuple[list[Mark], list[Mark]]:
    therapist = [
        Mark(1, 1000, codes=("a",)),
        Mark(2, 5000, codes=("b",)),
        Mark(3, 9000, codes=("a",)),
    ]
    client = [
        Mark(11, 1500, codes=("a",)),
        Mark(12, 8000, codes=("a", "c")),
        Mark(13, 20_000, codes=("b",)),
    ]
    return therapist, client


def test_agreement_figures_on_a_hand_worked_dyad():
    therapist, client = coded_lanes()
    result = agreement(therapist, client, 1000, duration_ms=30_000, bin_ms=1000, n_shifts=50)
    assert result.n_pairs == 2
    assert result.co_marking_rate == pytest.approx(4 / 6)
    assert result.therapist_matched_share == pytest.approx(2 / 3)
    assert (result.therapist_first, result.client_first, result.simultaneous) == (1, 1, 0)
    # lags +500 and −1000: signed median −250; |lag| 500, 1000: median 750, IQR 875−625, MAD 250
    assert result.lag_median_ms == -250
    assert (result.abs_lag_median_ms, result.abs_lag_iqr_ms, result.abs_lag_mad_ms) == (
        750,
        250,
        250,
    )
    assert result.per_code == [
        CodeAgreement("a", 2, 2, 2),
        CodeAgreement("b", 1, 1, 0),
        CodeAgreement("c", 0, 1, 0),
    ]
    assert result.code_cooccurrence == [CodePairCount("a", "a", 2), CodePairCount("a", "c", 1)]
    # bins marked: therapist {1, 5, 9}, client {1, 8, 20} of 30 → po 26/30, pe 0.82, κ = 7/27
    assert result.kappa is not None
    assert result.kappa.n_bins == 30
    assert result.kappa.observed == pytest.approx(26 / 30)
    assert result.kappa.expected == pytest.approx(0.82)
    assert result.kappa.kappa == pytest.approx(7 / 27)


def test_agreement_is_json_serialisable_and_deterministic_for_a_seed():
    therapist, client = coded_lanes()
    first = agreement(therapist, client, 1000, duration_ms=30_000, n_shifts=200, seed=3)
    again = agreement(therapist, client, 1000, duration_ms=30_000, n_shifts=200, seed=3)
    other = agreement(therapist, client, 1000, duration_ms=30_000, n_shifts=200, seed=4)
    text = json.dumps(first.to_dict())
    assert json.loads(text)["matching"]["pairs"][0] == {
        "therapist_id": 1,
        "client_id": 11,
        "lag_ms": 500,
    }
    assert first.to_dict() == again.to_dict()
    assert first.chance != other.chance


def test_chance_baseline_matches_its_known_distribution():
    # One moment each at 0 ms, τ = 999 ms, 10 s recording: a shift s pairs them iff s ≤ 999,
    # so the shifted rate is 1 with probability 0.1 and 0 otherwise.
    base = chance_baseline(points(0), points(0, start_id=2), 999, duration_ms=10_000, n_shifts=4000)
    assert base is not None
    hits = round(base.expected_rate * 4000)
    assert base.expected_rate == pytest.approx(hits / 4000)
    assert 0.085 < base.expected_rate < 0.115
    assert base.p_value == pytest.approx((1 + hits) / 4001)
    assert base.sd_rate == pytest.approx((base.expected_rate * (1 - base.expected_rate)) ** 0.5)


def test_well_aligned_lanes_beat_chance_and_shuffled_lanes_do_not():
    rng = random.Random(1)
    times = sorted(rng.sample(range(0, 3_600_000, 1000), 40))
    therapist = points(*times)
    aligned = points(*[t + rng.randrange(-800, 800) for t in times], start_id=100)
    result = agreement(therapist, aligned, 1000, duration_ms=3_601_000, n_shifts=999)
    assert result.co_marking_rate == 1.0
    assert result.chance is not None
    assert result.chance.p_value == pytest.approx(1 / 1000)
    assert result.chance.expected_rate < 0.1
    unrelated = points(*sorted(rng.sample(range(0, 3_600_000, 1000), 40)), start_id=200)
    baseline = agreement(therapist, unrelated, 1000, duration_ms=3_601_000, n_shifts=999)
    assert baseline.chance is not None and baseline.chance.p_value > 0.05


def test_span_lanes_get_a_chance_baseline_too():
    therapist = [Mark(1, 1000, 4000), Mark(2, 20_000)]
    client = [Mark(3, 3000, 5000), Mark(4, 20_500)]
    result = agreement(therapist, client, 1000, duration_ms=60_000, n_shifts=100, seed=1)
    assert result.n_pairs == 2
    assert result.chance is not None
    assert result.chance.expected_rate < 1.0
    assert result.kappa is not None
    # bins: therapist {1, 2, 3, 20}, client {3, 4, 20} of 60
    assert result.kappa.observed == pytest.approx(57 / 60)


def test_agreement_with_empty_lanes_reports_undefined_figures_as_none():
    empty = agreement([], [], 1000, duration_ms=10_000)
    assert empty.co_marking_rate is None
    assert empty.chance is None
    assert empty.kappa is not None and empty.kappa.kappa is None
    assert empty.abs_lag_median_ms is None
    one_sided = agreement(points(100, 200), [], 1000, duration_ms=10_000)
    assert one_sided.co_marking_rate == 0.0
    assert one_sided.client_matched_share is None
    assert one_sided.chance is None
    assert one_sided.kappa is not None and one_sided.kappa.kappa == 0.0
    assert isinstance(one_sided, Agreement)


def test_agreement_refuses_moments_after_the_end_and_bad_settings():
    with pytest.raises(InvalidMark, match="after the recording's end"):
        agreement(points(50_000), [], 1000, duration_ms=10_000)
    with pytest.raises(InvalidSetting, match="duration_ms"):
        agreement([], [], 1000, duration_ms=0)
    with pytest.raises(InvalidSetting, match="bin_ms"):
        binned_kappa([], [], duration_ms=1000, bin_ms=0)


def test_kappa_is_one_for_identical_lanes_and_a_span_ending_on_a_boundary_stays_in_its_bins():
    lane = [Mark(1, 0, 2000), Mark(2, 5500)]
    kappa = binned_kappa(lane, lane, duration_ms=10_000, bin_ms=1000)
    assert kappa.kappa == 1.0
    other = [Mark(1, 0, 2001)]
    assert binned_kappa(lane, other, duration_ms=10_000).observed == pytest.approx(8 / 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 20_000))
def test_span_pair_count_greedy_agrees_with_the_exact_matching_on_larger_lanes(seed, tol):
    """The chance baseline counts pairs greedily; on spans that must equal the exact optimum."""
    rng = np.random.default_rng(seed)

    def lane(n: int, first_id: int) -> list[Mark]:
        out = []
        for i in range(n):
            t = int(rng.integers(0, 600_000))
            end = t + int(rng.integers(0, 30_000)) if rng.random() < 0.6 else None
            out.append(Mark(first_id + i, t, end))
        return out

    therapist, client = lane(int(rng.integers(0, 80)), 0), lane(int(rng.integers(0, 80)), 1000)
    assert count_pairs(therapist, client, tol) == len(match_lanes(therapist, client, tol).pairs)
