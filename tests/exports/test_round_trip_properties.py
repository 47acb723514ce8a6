"""Property tests: any text and times survive CSV and EAF round trips unchanged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.exports.csv_ import escape_cell, to_csv, unescape_cell
from ipr.exports.data import ExportMoment
from ipr.exports.eaf import to_eaf
from ipr.exports.imports import import_csv, import_eaf
from tests.exports.conftest import make_study

# Text a participant could type or paste: any printable character, newlines, tabs, quotes.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\n\t\"',;=+-@"),
    max_size=40,
)


@given(st.text(max_size=30))
def test_escape_then_unescape_is_identity(text):
    assert unescape_cell(escape_cell(text)) == text


@st.composite
def moments(draw):
    count = draw(st.integers(1, 6))
    out = []
    for i in range(count):
        t = draw(st.integers(0, 3_600_000))
        span = draw(st.one_of(st.none(), st.integers(2, 60_000)))
        out.append(
            ExportMoment(
                id=i + 1,
                lane=draw(st.sampled_from(["therapist", "client"])),
                participant_code="T05",
                t_ms=t,
                end_ms=None if span is None else t + span,
                text=draw(TEXT),
                codes=tuple(draw(st.lists(st.sampled_from(["insight", "stuck"]), max_size=2))),
                ratings={"hat": draw(st.integers(1, 9))},
            )
        )
    return tuple(out)


@settings(max_examples=40, deadline=None)
@given(moments())
def test_csv_round_trip_keeps_every_moment(items):
    study = make_study(moments=items, pairs=())
    imported = import_csv(to_csv(study), codebook=study.codebook, scales=study.scales)
    expected = sorted(items, key=lambda m: (m.t_ms, m.lane != "therapist", m.id))
    assert [(m.t_ms, m.end_ms, m.text, m.codes, dict(m.ratings)) for m in imported] == [
        (m.t_ms, m.end_ms, m.text, m.codes, dict(m.ratings)) for m in expected
    ]


@settings(max_examples=40, deadline=None)
@given(moments())
def test_eaf_round_trip_keeps_every_moment(items):
    study = make_study(moments=items, pairs=())
    data = to_eaf(study.only_recording())
    for lane in ("therapist", "client"):
        imported = import_eaf(data, lane)
        expected = sorted(
            (m for m in items if m.lane == lane), key=lambda m: (m.t_ms, m.end_ms or m.t_ms)
        )
        assert [(m.t_ms, m.end_ms, m.text, m.codes) for m in imported] == [
            (m.t_ms, m.end_ms, m.text, m.codes) for m in expected
        ]
