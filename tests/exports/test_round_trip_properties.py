"""Property tests: any text and times survive CSV, EAF and TextGrid round trips unchanged,
and export → import → export gives the same bytes in each of these formats."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.exports.csv_ import escape_cell, to_csv, unescape_cell
from ipr.exports.data import ExportMoment, ExportStudy
from ipr.exports.eaf import to_eaf
from ipr.exports.imports import ImportedMoment, import_csv
from ipr.exports.peers import import_eaf_lane
from ipr.exports.peers import moments as peer_moments
from ipr.exports.textgrid import to_textgrid
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
        end = None if span is None else t + span
        hi = end if end is not None else t
        # the span's ends often: a peak at the very end must come back exactly
        peaks = draw(st.lists(st.one_of(st.sampled_from([t, hi]), st.integers(t, hi)), max_size=3))
        out.append(
            ExportMoment(
                id=i + 1,
                lane=draw(st.sampled_from(["therapist", "client"])),
                participant_code="T05",
                t_ms=t,
                end_ms=end,
                peaks_ms=tuple(sorted(set(peaks))),
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
        imported = import_eaf_lane(data, lane)
        expected = sorted(
            (m for m in items if m.lane == lane), key=lambda m: (m.t_ms, m.end_ms or m.t_ms)
        )
        assert [(m.t_ms, m.end_ms, m.text, m.codes) for m in imported] == [
            (m.t_ms, m.end_ms, m.text, m.codes) for m in expected
        ]


def _rebuilt(study: ExportStudy, imported: list[ImportedMoment], key) -> ExportStudy:
    """The study with the imported moments in place of its own, each taking the id of the
    original it matches (`key` says what the format carries back), as the app would store it."""
    recording = study.only_recording().recording
    unused = list(recording.moments)
    moments = []
    for m in imported:
        original = next(o for o in unused if key(o) == key(m))
        unused.remove(original)
        moments.append(
            ExportMoment(
                id=original.id,
                lane=m.lane or original.lane,
                participant_code=original.participant_code,
                t_ms=m.t_ms,
                end_ms=m.end_ms,
                peaks_ms=m.peaks_ms,
                text=m.text,
                codes=m.codes,
                ratings=m.ratings,
            )
        )
    assert unused == []
    recording = replace(recording, moments=tuple(moments), pairs=())
    return replace(study, dyads=(replace(study.dyads[0], recordings=(recording,)),))


def _full(m):
    return (m.lane, m.t_ms, m.end_ms, m.peaks_ms, m.text, m.codes, dict(m.ratings))


@settings(max_examples=30, deadline=None)
@given(moments())
def test_csv_export_import_export_gives_the_same_bytes(items):
    study = make_study(moments=items, pairs=())
    first = to_csv(study)
    imported = import_csv(first, codebook=study.codebook, scales=study.scales)
    assert to_csv(_rebuilt(study, imported, _full)) == first


@settings(max_examples=30, deadline=None)
@given(moments())
def test_eaf_export_import_export_gives_the_same_bytes(items):
    """Overlapping moments of a lane sit on extra layers (`therapist 2`) and come back."""
    study = make_study(moments=items, pairs=())
    first = to_eaf(study.only_recording())
    imported = []
    for lane in ("therapist", "client"):
        imported += import_eaf_lane(first, lane, codebook=study.codebook, scales=study.scales)
    assert to_eaf(_rebuilt(study, imported, _full).only_recording()) == first


def _label(m):
    """What a TextGrid label keeps: lane, times, codes and the text on one line."""
    end = -1 if m.end_ms is None or m.end_ms == m.t_ms else m.end_ms
    return (m.lane, m.t_ms, end, " ".join(m.text.split()), m.codes)


@settings(max_examples=30, deadline=None)
@given(moments())
def test_textgrid_export_import_export_gives_the_same_bytes(items):
    # A label that itself starts with "[…]" would read back as codes: keep texts off that.
    items = tuple(replace(m, text=m.text.lstrip().lstrip("[")) for m in items)
    study = make_study(moments=items, pairs=())
    first = to_textgrid(study.only_recording())
    imported = []
    for lane in ("therapist", "client"):
        imported += peer_moments(first, "textgrid", lane, codebook=study.codebook)
    assert sorted(map(_label, imported)) == sorted(map(_label, items))
    assert to_textgrid(_rebuilt(study, imported, _label).only_recording()) == first
