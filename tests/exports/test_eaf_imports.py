"""ELAN export (XSD + pympi), and the CSV/EAF imports with their round trips."""

from __future__ import annotations

import io
from dataclasses import replace

import pympi
import pytest
from lxml import etree

from ipr.exports.csv_ import to_csv
from ipr.exports.data import ExportMoment, ExportStudy
from ipr.exports.eaf import to_eaf
from ipr.exports.imports import (
    ImportedMoment,
    ImportValidationError,
    eaf_tier_names,
    import_csv,
    import_eaf,
)
from tests.exports.conftest import make_study

XSD = "annotation_formats/elan/EAFv3.0.xsd"


@pytest.fixture
def xsd(corpus):
    return etree.XMLSchema(etree.parse(str(corpus / XSD)))


def _with_imported(study: ExportStudy, imported: list[ImportedMoment]) -> ExportStudy:
    """Put imported moments back into the study, keeping ids by order (as the app would)."""
    original = study.only_recording().recording
    ids = {(m.lane, m.t_ms): m.id for m in original.moments}
    moments = tuple(
        ExportMoment(
            id=ids[(m.lane, m.t_ms)],
            lane=m.lane,
            participant_code=m.participant_code,
            t_ms=m.t_ms,
            end_ms=m.end_ms,
            peaks_ms=m.peaks_ms,
            text=m.text,
            codes=m.codes,
            ratings=m.ratings,
            researcher_codes=m.researcher_codes,
            researcher_note=m.researcher_note,
        )
        for m in imported
    )
    recording = replace(original, moments=moments, pairs=())
    return replace(study, dyads=(replace(study.dyads[0], recordings=(recording,)),))


def _stripped(study: ExportStudy) -> ExportStudy:
    """What EAF and CSV imports do not carry back: pairs, match ids, voice-note flags."""
    recording = study.only_recording().recording
    moments = tuple(
        replace(m, matched_moment_id=None, lag_ms=None, voice_note=False) for m in recording.moments
    )
    recording = replace(recording, moments=moments, pairs=())
    return replace(study, dyads=(replace(study.dyads[0], recordings=(recording,)),))


@pytest.mark.corpus
def test_eaf_validates_against_xsd(ctx, xsd):
    for include_text in (True, False):
        document = etree.parse(io.BytesIO(to_eaf(ctx, include_text=include_text)))
        assert xsd.validate(document), xsd.error_log


def test_eaf_exact_time_slots_and_links(ctx):
    root = etree.fromstring(to_eaf(ctx))
    slots = [(s.get("TIME_SLOT_ID"), int(s.get("TIME_VALUE"))) for s in root.iter("TIME_SLOT")]
    assert slots == [
        ("ts1", 1500),
        ("ts2", 1501),
        ("ts3", 1750),
        ("ts4", 1751),
        ("ts5", 62000),
        ("ts6", 70000),
        ("ts7", 70001),
        ("ts8", 75500),
        ("ts9", 3600000),
        ("ts10", 3601000),
    ]
    media = root.find("HEADER/MEDIA_DESCRIPTOR")
    assert media.get("RELATIVE_MEDIA_URL") == "./d05-s3.mp4"
    assert media.get("MEDIA_URL") == "./d05-s3.mp4"
    assert media.get("MIME_TYPE") == "video/mp4"
    entries = [
        (e.get("CVE_ID"), e.findtext("CVE_VALUE"), e.find("CVE_VALUE").get("DESCRIPTION"))
        for e in root.iter("CV_ENTRY_ML")
    ]
    assert entries == [
        ("cve_insight", "insight", "Insight"),
        ("cve_stuck", "stuck", "Feeling stuck"),
    ]
    code_type = root.find("LINGUISTIC_TYPE[@LINGUISTIC_TYPE_ID='code']")
    assert code_type.get("CONTROLLED_VOCABULARY_REF") == "codebook"


def test_eaf_loads_in_pympi(ctx, tmp_path):
    path = tmp_path / "d05.eaf"
    path.write_bytes(to_eaf(ctx))
    eaf = pympi.Elan.Eaf(str(path))
    assert eaf.get_annotation_data_for_tier("therapist") == [
        (1500, 1501, "She went quiet, I felt stuck"),
        (62000, 75500, "=SUM(A1:A2) tried a reframe"),
    ]
    assert eaf.get_annotation_data_for_tier("client") == [
        (1750, 1751, 'He "got" me, finally\nI relaxed'),
        (3600000, 3601000, "-just tired"),
    ]
    assert [a[2] for a in eaf.get_annotation_data_for_tier("therapist codes")] == [
        "stuck",
        "insight",
        "stuck",
    ]
    assert eaf.get_parameters_for_tier("therapist")["PARTICIPANT"] == "T05"
    assert eaf.get_parameters_for_tier("client researcher codes")["PARENT_REF"] == "client"
    assert list(eaf.get_cv_entries("codebook")) == ["cve_insight", "cve_stuck"]
    assert eaf.get_annotation_data_for_tier("therapist peaks") == [
        (70000, 70001, "peak 00:01:10.000")
    ]


def test_eaf_without_text_has_no_free_text(ctx):
    data = to_eaf(ctx, include_text=False)
    assert b"went quiet" not in data and b"classic reframe" not in data
    assert b"researcher note" not in data


def test_eaf_round_trip_gives_the_same_moments_and_bytes(study):
    first = to_eaf(study.only_recording())
    imported = import_eaf(first, "therapist") + import_eaf(first, "client")
    assert [(m.t_ms, m.end_ms, m.peaks_ms, m.codes, dict(m.ratings)) for m in imported] == [
        (1500, None, (), ("stuck",), {"hat": 3}),
        (62000, 75500, (70000,), ("insight", "stuck"), {"hat": 8, "intensity": 4}),
        (1750, None, (), ("insight",), {"hat": 9}),
        (3600000, 3601000, (), (), {"intensity": 2}),
    ]
    assert imported[1].researcher_codes == ("insight",)
    assert imported[1].researcher_note == "classic reframe"
    assert imported[0].source == "annotation m11"
    again = to_eaf(_with_imported(study, imported).only_recording())
    assert again == first


@pytest.mark.corpus
def test_eaf_import_of_a_real_elan_file(corpus):
    data = (corpus / "annotation_formats/elan/sample_3.0.eaf").read_bytes()
    assert "gestures" in eaf_tier_names(data)
    moments = import_eaf(data, "gestures")
    reference = pympi.Elan.Eaf(str(corpus / "annotation_formats/elan/sample_3.0.eaf"))
    expected = sorted(reference.get_annotation_data_for_tier("gestures"))
    assert [(m.t_ms, m.end_ms, m.text) for m in moments] == [
        (start, end, value) for start, end, value in expected
    ]


def test_eaf_import_names_missing_tier_and_bad_annotations(study):
    data = to_eaf(study.only_recording())
    with pytest.raises(ImportValidationError, match="there is no tier 'observer'"):
        import_eaf(data, "observer")
    # a symbolic subdivision tier imports at the times ELAN shows: the parent split evenly
    codes = import_eaf(data, "therapist codes")
    assert [(m.t_ms, m.end_ms, m.text) for m in codes] == [
        (1500, None, "stuck"),
        (62000, 68750, "insight"),
        (68750, 75500, "stuck"),
    ]
    small = make_study().codebook[:1]
    with pytest.raises(ImportValidationError) as caught:
        import_eaf(data, "therapist", codebook=small)
    assert caught.value.problems == [
        "annotation m11: code 'stuck' is not in the study's codebook",
        "annotation m12: code 'stuck' is not in the study's codebook",
    ]
    broken = data.replace(b'TIME_SLOT_ID="ts8" TIME_VALUE="75500"', b'TIME_SLOT_ID="ts8"')
    with pytest.raises(ImportValidationError, match="annotation m12: its time slots"):
        import_eaf(broken, "therapist")
    with pytest.raises(ImportValidationError, match="line 1: not well-formed XML"):
        import_eaf(b"<ANNOTATION_DOCUMENT", "therapist")


def test_csv_round_trip_gives_the_same_moments_and_bytes(study):
    plain = _stripped(study)
    first = to_csv(plain)
    imported = import_csv(first, codebook=study.codebook, scales=study.scales)
    assert [(m.lane, m.participant_code, m.t_ms, m.end_ms) for m in imported] == [
        ("therapist", "T05", 1500, None),
        ("client", "C05", 1750, None),
        ("therapist", "T05", 62000, 75500),
        ("client", "C05", 3600000, 3601000),
    ]
    assert imported[2].text == "=SUM(A1:A2) tried a reframe"
    assert imported[3].text == "-just tired"
    assert imported[1].text == 'He "got" me, finally\nI relaxed'
    comments = first.decode("utf-8-sig").count("\r\n#") + 1  # the provenance lines
    assert imported[2].source == f"line {comments + 5}"
    assert to_csv(_with_imported(plain, imported)) == first


def test_csv_import_of_a_paper_form_with_timecodes():
    sheet = (
        "start_tc,end_tc,text,codes,rating_hat\n"
        "01:02.5,,felt heard,insight,7\n"
        "1:00:00,1:00:04.25,,,\n"
    )
    moments = import_csv(sheet.encode())
    assert [(m.t_ms, m.end_ms, m.text, m.codes, dict(m.ratings)) for m in moments] == [
        (62500, None, "felt heard", ("insight",), {"hat": 7}),
        (3600000, 3604250, "", (), {}),
    ]
    assert moments[0].lane is None


def test_csv_import_lists_every_problem_with_its_line(study):
    sheet = (
        "start_ms,end_ms,codes,rating_hat,lane\r\n"
        "1000,,insight,5,therapist\r\n"
        "abc,,,,client\r\n"
        "5000,4000,,,client\r\n"
        "\r\n"
        "6000,,nope,12,observer\r\n"
        "7000,8000\r\n"
    )
    with pytest.raises(ImportValidationError) as caught:
        import_csv(sheet.encode(), codebook=study.codebook, scales=study.scales)
    assert caught.value.problems == [
        "line 3: start_ms 'abc' is not a whole number of milliseconds",
        "line 4: end 4000 ms is before start 5000 ms",
        "line 6: rating hat=12 is outside 1–9",
        "line 6: lane 'observer' is not one of therapist, client",
        "line 6: code 'nope' is not in the study's codebook",
        "line 7: 2 cells where the header has 5",
    ]


def test_csv_import_refuses_files_it_cannot_read():
    with pytest.raises(ImportValidationError, match="line 1: the header needs a start_ms"):
        import_csv(b"time,text\n1,a\n")
    with pytest.raises(ImportValidationError, match="not UTF-8"):
        import_csv("start_ms,text\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ImportValidationError, match="empty"):
        import_csv(b"")
