"""Agreement between coders: hand-worked values, and the properties a methods section relies on."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.coders import ANY_CODE, Layer, coder_agreement, compare_layers
from ipr.timeline import Mark

DURATION = 60_000
CODES = ("Insight", "Rupture", "Repair")


def by_code(rows: list[dict]) -> dict[str, dict]:
    return {r["code"]: r for r in rows}


def test_hand_worked_two_coders_one_code_each():
    # Coder A: Insight at 10 s and 30 s. Coder B: Insight at 11 s (2 s tolerance), Rupture at 50 s.
    a = [Mark(1, 10_000, codes=("Insight",)), Mark(2, 30_000, codes=("Insight",))]
    b = [Mark(1, 11_000, codes=("Insight",)), Mark(3, 50_000, codes=("Rupture",))]
    rows = by_code(compare_layers(a, b, tolerance_ms=2000, duration_ms=DURATION, bin_ms=1000))
    insight = rows["Insight"]
    assert (insight["n_a"], insight["n_b"], insight["n_pairs"]) == (2, 1, 1)
    assert insight["co_marking_rate"] == 2 / 3
    # 60 bins; A marks bins 10 and 30, B bin 11: agree on 57 bins.
    k = insight["time_unit_kappa"]
    assert k["bin_ms"] == 1000 and k["n_bins"] == 60
    assert k["observed"] == 57 / 60
    p_a, p_b = 2 / 60, 1 / 60
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    assert abs(k["expected"] - expected) < 1e-12
    assert abs(k["kappa"] - (57 / 60 - expected) / (1 - expected)) < 1e-12
    rupture = rows["Rupture"]
    assert (rupture["n_a"], rupture["n_b"], rupture["n_pairs"]) == (0, 1, 0)
    assert rupture["co_marking_rate"] == 0.0
    any_code = rows[ANY_CODE]
    assert (any_code["n_a"], any_code["n_b"], any_code["n_pairs"]) == (2, 2, 1)


def test_a_code_nobody_used_has_null_figures_not_missing_ones():
    rows = by_code(compare_layers([], [], tolerance_ms=0, duration_ms=DURATION, codes=("Insight",)))
    assert rows["Insight"]["co_marking_rate"] is None
    assert rows["Insight"]["time_unit_kappa"]["kappa"] is None
    assert rows["Insight"]["time_unit_kappa"]["expected"] == 1.0


def test_layers_are_compared_within_a_lane_only():
    t = Layer("therapist", "participant", (Mark(1, 1000, codes=("Insight",)),))
    t1 = Layer("therapist", "ana@lab", (Mark(1, 1000, codes=("Insight",)),))
    t2 = Layer("therapist", "ben@lab", ())
    c1 = Layer("client", "ana@lab", (Mark(9, 5000, codes=("Rupture",)),))
    out = coder_agreement([t, t1, t2, c1], tolerance_ms=1000, duration_ms=DURATION, bin_ms=500)
    assert out["tolerance_ms"] == 1000 and out["bin_ms"] == 500
    assert [(c["lane"], c["a"], c["b"], c["kind"]) for c in out["comparisons"]] == [
        ("therapist", "participant", "ana@lab", "participant"),
        ("therapist", "participant", "ben@lab", "participant"),
        ("therapist", "ana@lab", "ben@lab", "coders"),
    ]
    first = by_code(out["comparisons"][0]["per_code"])["Insight"]
    assert first["co_marking_rate"] == 1.0 and first["time_unit_kappa"]["kappa"] == 1.0


# --- properties -------------------------------------------------------------------------------

moment = st.builds(
    lambda t, length, codes: (t, None if length == 0 else t + length, codes),
    st.integers(0, DURATION - 5000),
    st.sampled_from([0, 0, 500, 3000]),
    st.sets(st.sampled_from(CODES), min_size=1, max_size=2),
)


def to_marks(specs, start_id: int = 1) -> list[Mark]:
    return [
        Mark(start_id + k, t, end_ms=end, codes=tuple(sorted(codes)))
        for k, (t, end, codes) in enumerate(specs)
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(moment, min_size=1, max_size=8), st.integers(0, 5000))
def test_identical_codes_give_perfect_agreement(specs, tolerance):
    marks = to_marks(specs)
    for row in compare_layers(marks, marks, tolerance_ms=tolerance, duration_ms=DURATION):
        assert row["n_a"] == row["n_b"]
        if row["n_a"]:
            assert row["co_marking_rate"] == 1.0
            assert row["time_unit_kappa"]["observed"] == 1.0
            # Perfect unless every bin is marked (then kappa is undefined, never below 1).
            assert row["time_unit_kappa"]["kappa"] in (1.0, None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=6, unique=True), st.data())
def test_disjoint_codes_give_no_agreement(slots, data):
    # Moments on a 2.5-s grid; coder A takes some slots, coder B the others, far apart in time
    # (≥ 2.5 s, tolerance 1 s, 1-s bins): no pair and no shared bin, for every code.
    chosen = data.draw(st.lists(st.booleans(), min_size=len(slots), max_size=len(slots)))
    a = [
        Mark(k, s * 2500, codes=("Insight",))
        for k, (s, c) in enumerate(zip(slots, chosen, strict=True))
        if c
    ]
    b = [
        Mark(k, s * 2500, codes=("Insight",))
        for k, (s, c) in enumerate(zip(slots, chosen, strict=True))
        if not c
    ]
    rows = by_code(compare_layers(a, b, tolerance_ms=1000, duration_ms=DURATION, bin_ms=1000))
    insight = rows["Insight"]
    assert insight["n_pairs"] == 0
    assert insight["co_marking_rate"] == 0.0
    kappa = insight["time_unit_kappa"]["kappa"]
    assert kappa is not None and kappa <= 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(moment, max_size=6), st.lists(moment, max_size=6), st.lists(moment, max_size=6))
def test_adding_a_second_coder_never_changes_the_other_comparisons(own, first, second):
    participant = Layer("client", "participant", tuple(to_marks(own)))
    coder_a = Layer("client", "a@lab", tuple(to_marks(first)))
    coder_b = Layer("client", "b@lab", tuple(to_marks(second)))
    kwargs = {"tolerance_ms": 2000, "duration_ms": DURATION, "codes": CODES}
    alone = coder_agreement([participant, coder_a], **kwargs)["comparisons"]
    both = coder_agreement([participant, coder_a, coder_b], **kwargs)["comparisons"]
    assert both[0] == alone[0]
    assert [(c["a"], c["b"]) for c in both] == [
        ("participant", "a@lab"),
        ("participant", "b@lab"),
        ("a@lab", "b@lab"),
    ]
