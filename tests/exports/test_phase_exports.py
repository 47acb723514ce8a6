"""Every export format says which phase a moment belongs to and what a response answers."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pympi
import pytest
from lxml import etree

from ipr.exports.csv_ import to_csv
from ipr.exports.data import ExportDataError, ExportMoment
from ipr.exports.eaf import to_eaf
from ipr.exports.figure import to_png, to_svg
from ipr.exports.json_ import schema, to_json
from ipr.exports.textgrid import to_textgrid
from ipr.exports.vtt import to_srt, to_vtt
from ipr.exports.xlsx import to_xlsx
from tests.exports.conftest import make_study
from tests.exports.test_csv_json import _validate
from tests.exports.test_eaf_imports import XSD

BLIND = (
    ExportMoment(11, "therapist", "T05", 1500, text="She went quiet"),
    ExportMoment(21, "client", "C05", 4000, text="Stuck", corrected_at="2026-11-30T01:00:00Z"),
)
RESPONSES = (
    ExportMoment(31, "client", "C05", 1500, text="I saw that", phase="response", responds_to_id=11),
    ExportMoment(32, "client", "C05", 9000, end_ms=9500, text="Only now", phase="response"),
    ExportMoment(41, "therapist", "T05", 4000, phase="response", responds_to_id=21),
)


@pytest.fixture
def study():
    return make_study(moments=BLIND + RESPONSES, pairs=(), figures={})


def test_csv_and_xlsx_carry_phase_answer_and_correction(study) -> None:
    rows = list(
        csv.DictReader(
            line
            for line in io.StringIO(to_csv(study).decode("utf-8-sig"))
            if not line.startswith("#")
        )
    )
    got = [(r["moment_id"], r["phase"], r["responds_to_id"], r["corrected_at"]) for r in rows]
    assert got == [
        ("11", "blind", "", ""),
        ("31", "response", "11", ""),
        ("41", "response", "21", ""),
        ("21", "blind", "", "2026-11-30T01:00:00Z"),
        ("32", "response", "", ""),
    ]
    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(study)))["moments"]
    header = [c.value for c in sheet[1]]
    cells = [
        dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=2, values_only=True)
    ]
    assert [(r["moment_id"], r["phase"], r["responds_to_id"]) for r in cells] == [
        (11, "blind", None),
        (31, "response", 11),
        (41, "response", 21),
        (21, "blind", None),
        (32, "response", None),
    ]


def test_json_carries_phase_and_validates(study) -> None:
    doc = json.loads(to_json(study))
    moments = doc["study"]["dyads"][0]["recordings"][0]["moments"]
    assert [(m["id"], m["phase"], m["responds_to_id"], m["corrected_at"]) for m in moments] == [
        (11, "blind", None, None),
        (31, "response", 11, None),
        (41, "response", 21, None),
        (21, "blind", None, "2026-11-30T01:00:00Z"),
        (32, "response", None, None),
    ]
    assert _validate(doc, schema(), schema()) == []
    moments[0]["phase"] = "late"
    assert _validate(doc, schema(), schema()) == [
        "$.study.dyads[0].recordings[0].moments[0].phase: 'late' not in ['blind', 'response']"
    ]


def test_eaf_puts_responses_on_their_own_tiers_read_by_pympi(study, tmp_path) -> None:
    path = tmp_path / "d05.eaf"
    path.write_bytes(to_eaf(study.only_recording()))
    eaf = pympi.Elan.Eaf(str(path))
    assert eaf.get_annotation_data_for_tier("therapist") == [(1500, 1501, "She went quiet")]
    assert eaf.get_annotation_data_for_tier("client") == [(4000, 4001, "Stuck")]
    assert eaf.get_annotation_data_for_tier("client responses") == [
        (1500, 1501, "I saw that"),
        (9000, 9500, "Only now"),
    ]
    assert eaf.get_annotation_data_for_tier("therapist responses") == [(4000, 4001, "")]
    assert [a[2] for a in eaf.get_ref_annotation_data_for_tier("client responses answers")] == [
        "m11 (therapist 00:00:01.500)"
    ]
    params = eaf.get_parameters_for_tier("client responses")
    assert (params["PARTICIPANT"], params["LINGUISTIC_TYPE_REF"]) == ("C05", "moment")
    assert eaf.get_parameters_for_tier("client responses answers")["PARENT_REF"] == (
        "client responses"
    )


def test_eaf_with_responses_validates_against_xsd(study, corpus) -> None:
    xsd = etree.XMLSchema(etree.parse(str(corpus / XSD)))
    document = etree.fromstring(to_eaf(study.only_recording()))
    assert xsd.validate(document), xsd.error_log


def test_eaf_without_responses_has_no_response_tiers() -> None:
    data = to_eaf(make_study(moments=BLIND, pairs=(), figures={}).only_recording())
    assert b"responses" not in data


def test_textgrid_and_captions_mark_responses(study) -> None:
    grid = to_textgrid(study.only_recording()).decode()
    names = [line.split('"')[1] for line in grid.splitlines() if line.strip().startswith("name =")]
    assert names == [
        "therapist points",
        "therapist spans",
        "client points",
        "client spans",
        "therapist responses points",
        "therapist responses spans",
        "client responses points",
        "client responses spans",
    ]
    assert 'mark = "re m11 I saw that"' in grid
    assert 'text = "Only now"' in grid
    vtt = to_vtt(study.only_recording()).decode()
    assert (
        "client-31\n00:00:01.500 --> 00:00:04.500\n<v C05>C05 · response to T05 at 00:00:01.500</v>"
        in vtt
    )
    assert "<v C05>C05 · after the reveal</v>" in vtt
    srt = to_srt(study.only_recording()).decode()
    assert "{\\an8}T05 · response to C05 at 00:00:04.000" in srt


def test_an_unknown_phase_is_refused() -> None:
    with pytest.raises(ExportDataError, match="moment 1: phase 'late'"):
        ExportMoment(1, "client", "C05", 0, phase="late")


def test_figure_draws_responses_as_threaded_violet_diamonds(study) -> None:
    svg = to_svg(study.only_recording()).decode()
    assert svg.count('fill="#7c3aed"/>') == 4  # three responses and the legend's marker
    assert svg.count('stroke="#7c3aed"') == 2  # threads: 31 → 11 and 41 → 21
    assert "response after the reveal (not counted)" in svg
    assert to_png(study.only_recording()).startswith(b"\x89PNG")
