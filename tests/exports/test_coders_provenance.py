"""One layer per coder in every table and EAF, and the provenance every export carries."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import replace

import openpyxl
import pympi
import pytest
import webvtt
from lxml import etree

from ipr.coders import Layer, coder_agreement
from ipr.exports.bundle import to_bundle
from ipr.exports.csv_ import to_csv
from ipr.exports.data import Coding, ExportStudy, Provenance
from ipr.exports.eaf import to_eaf
from ipr.exports.figure import to_svg
from ipr.exports.imports import import_csv, import_eaf
from ipr.exports.json_ import schema, to_json
from ipr.exports.methods import to_methods
from ipr.exports.vtt import to_vtt
from ipr.exports.xlsx import to_xlsx
from ipr.timeline import Mark
from tests.exports.conftest import make_study
from tests.exports.test_csv_json import _validate, table_text
from tests.exports.test_eaf_imports import XSD

SOFTWARE = {"name": "IPR annotator", "version": "9.9.9", "commit": "abc1234"}
PARAMETERS = {
    "matching": {"tolerance_ms": 5000},
    "chance_baseline": {"n_shifts": 1000, "seed": 0},
    "time_unit_kappa": {"bin_ms": 1000},
}
AGREEMENT = coder_agreement(
    [
        Layer("therapist", "ana@lab.org", (Mark(12, 62_000, 75_500, codes=("insight",)),)),
        Layer("therapist", "ben@lab.org", (Mark(12, 62_000, 75_500, codes=("insight",)),)),
    ],
    tolerance_ms=5000,
    duration_ms=3_605_000,
    codes=("insight", "stuck"),
)


def coded_study() -> ExportStudy:
    """The hand-made study, with moment 12 coded by two researchers and full provenance."""
    base = make_study(
        recall={
            "client": {"participant_code": "C05", "mode": "self", "status": "submitted"},
            "therapist": {"participant_code": "T05", "mode": "researcher", "status": "submitted"},
        },
        coder_agreement=AGREEMENT,
    )
    rec = base.dyads[0].recordings[0]
    codings = (
        Coding("ben@lab.org", ("insight", "stuck"), "second look"),
        Coding("ana@lab.org", ("insight",), "classic reframe"),
    )
    moments = tuple(replace(m, codings=codings) if m.id == 12 else m for m in rec.moments)
    rec = replace(rec, moments=moments)
    return replace(
        base,
        dyads=(replace(base.dyads[0], recordings=(rec,)),),
        provenance=Provenance(
            software=SOFTWARE,
            parameters=PARAMETERS,
            instructions="Stop the video\nwherever something mattered.",
            language="en",
        ),
    )


def test_csv_has_one_row_per_coder_and_provenance_lines():
    data = to_csv(coded_study()).decode("utf-8-sig")
    head = [line for line in data.split("\r\n") if line.startswith("#")]
    assert head[:4] == [
        "# software.name: IPR annotator",
        "# software.version: 9.9.9",
        "# software.commit: abc1234",
        "# exported_at: 2000-01-01T00:00:00+00:00",
    ]
    assert "# parameters.chance_baseline.n_shifts: 1000" in head
    assert "# parameters.time_unit_kappa.bin_ms: 1000" in head
    assert '# study.instructions: "Stop the video\\nwherever something mattered."' in head
    assert '# codebook.insight: {"description": "", "name": "Insight", "shortcut": "i"}' in head
    assert (
        '# recording.D05/session 3.recall.therapist: {"mode": "researcher", '
        '"participant_code": "T05", "status": "submitted"}'
    ) in head
    assert "# recording.D05/session 3.figure.chance_kappa: null" in head
    assert any(line.startswith("# definition.time_unit_kappa: Cohen's kappa") for line in head)
    rows = list(csv.DictReader(io.StringIO(table_text(to_csv(coded_study())))))
    coded = [
        (r["moment_id"], r["coder"], r["researcher_codes"], r["researcher_note"]) for r in rows
    ]
    assert coded == [
        ("11", "", "", ""),
        ("21", "", "", ""),
        ("12", "ana@lab.org", "insight", "classic reframe"),
        ("12", "ben@lab.org", "insight;stuck", "second look"),
        ("22", "", "", ""),
    ]


def test_csv_import_reads_the_coder_rows_back_as_one_moment():
    study = coded_study()
    imported = import_csv(to_csv(study), codebook=study.codebook, scales=study.scales)
    assert [m.t_ms for m in imported] == [1500, 1750, 62_000, 3_600_000]
    assert imported[2].researcher_codes == ("insight", "stuck")
    assert imported[2].researcher_note == "classic reframe\n\nsecond look"


def test_eaf_has_a_tier_per_coder_with_its_annotator_and_header_properties(tmp_path):
    study = coded_study()
    data = to_eaf(study.only_recording())
    path = tmp_path / "d05.eaf"
    path.write_bytes(data)
    eaf = pympi.Elan.Eaf(str(path))
    ana = "therapist researcher codes: ana@lab.org"
    ben = "therapist researcher codes: ben@lab.org"
    assert eaf.get_parameters_for_tier(ana)["ANNOTATOR"] == "ana@lab.org"
    assert eaf.get_parameters_for_tier(ben)["ANNOTATOR"] == "ben@lab.org"
    assert eaf.get_parameters_for_tier(ben)["PARENT_REF"] == "therapist"
    assert [a[2] for a in eaf.get_annotation_data_for_tier(ana)] == ["insight"]
    assert [a[2] for a in eaf.get_annotation_data_for_tier(ben)] == ["insight", "stuck"]
    assert "therapist researcher codes" not in eaf.get_tier_names()
    properties = dict(eaf.get_properties())
    assert properties["ipr:software.version"] == "9.9.9"
    assert properties["ipr:software.commit"] == "abc1234"
    assert properties["ipr:parameters.matching.tolerance_ms"] == "5000"
    assert properties["ipr:recording.D05/session 3.figure.kappa"] == "0.5"
    # the importer reads both coders' tiers into the imported moment's researcher layer
    moments = import_eaf(data, "therapist")
    assert moments[1].researcher_codes == ("insight", "stuck")
    assert moments[1].researcher_note == "classic reframe\n\nsecond look"


def test_eaf_with_coders_and_provenance_is_valid_against_the_xsd(corpus):
    xsd = etree.XMLSchema(etree.parse(str(corpus / XSD)))
    document = etree.fromstring(to_eaf(coded_study().only_recording()))
    assert xsd.validate(document), xsd.error_log


@pytest.fixture
def corpus():
    from tests.exports.conftest import CORPUS

    if not (CORPUS / XSD).is_file():
        pytest.skip("../shared/corpus not present")
    return CORPUS


def test_json_carries_codings_and_a_provenance_block_with_nulls():
    doc = json.loads(to_json(coded_study()))
    moment = doc["study"]["dyads"][0]["recordings"][0]["moments"][2]
    assert moment["codings"] == [
        {"coder": "ana@lab.org", "codes": ["insight"], "note": "classic reframe"},
        {"coder": "ben@lab.org", "codes": ["insight", "stuck"], "note": "second look"},
    ]
    prov = doc["provenance"]
    assert prov["software"] == SOFTWARE
    assert prov["exported_at"] == "2000-01-01T00:00:00+00:00"
    assert prov["parameters"] == PARAMETERS
    assert prov["study"]["instructions"] == "Stop the video\nwherever something mattered."
    assert prov["study"]["codebook"][1] == {
        "key": "stuck",
        "name": "Feeling stuck",
        "description": "",
        "shortcut": "s",
    }
    rec = prov["recordings"][0]
    assert rec["recall"]["therapist"]["mode"] == "researcher"
    assert rec["figures"] == {"chance_kappa": None, "kappa": 0.5, "matched": 1}
    assert rec["coder_agreement"]["comparisons"][0]["a"] == "ana@lab.org"
    assert "ELAN" in prov["definitions"]["time_unit_kappa"]  # named only to say it is not theirs
    without_text = json.loads(to_json(coded_study(), include_text=False))
    note = without_text["study"]["dyads"][0]["recordings"][0]["moments"][2]["codings"][0]["note"]
    assert note is None


@pytest.mark.parametrize("include_text", [True, False])
def test_json_with_coders_and_provenance_validates_against_the_schema(include_text):
    doc = json.loads(to_json(coded_study(), include_text=include_text))
    assert _validate(doc, schema(), schema()) == []


def test_xlsx_has_coders_and_provenance_sheets():
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(coded_study())))
    assert book.sheetnames == [
        "moments",
        "pairs",
        "figures",
        "coders",
        "codebook",
        "scales",
        "provenance",
    ]
    header, *rows = list(book["coders"].iter_rows(values_only=True))
    assert header[:8] == (
        "dyad", "session", "recording_id", "lane", "coder_a", "coder_b", "code", "n_a"
    )  # fmt: skip
    insight = [r for r in rows if r[6] == "insight"][0]
    assert insight[3:13] == (
        "therapist",
        "ana@lab.org",
        "ben@lab.org",
        "insight",
        1,
        1,
        1,
        1,
        5000,
        1,
    )
    provenance = dict(book["provenance"].iter_rows(min_row=2, values_only=True))
    assert provenance["software.commit"] == "abc1234"
    assert provenance["parameters.chance_baseline.seed"] == "0"
    moments = list(book["moments"].iter_rows(values_only=True))
    coder_col = moments[0].index("coder")
    assert [r[coder_col] for r in moments[1:]] == [
        None,
        None,
        "ana@lab.org",
        "ben@lab.org",
        None,
    ]


def test_bundle_readme_and_provenance_json():
    archive = zipfile.ZipFile(io.BytesIO(to_bundle(coded_study(), figures=False)))
    readme = archive.read("README.md").decode()
    assert "Made by IPR annotator 9.9.9 (commit abc1234) at 2000-01-01T00:00:00+00:00." in readme
    assert "| matching.tolerance_ms | 5000 |" in readme
    assert "- **time_unit_kappa**: Cohen's kappa on time units" in readme
    document = json.loads(archive.read("provenance.json"))
    assert document["software"] == SOFTWARE


def test_methods_paragraph_states_parameters_definitions_and_version():
    text = to_methods(coded_study()).decode()
    assert text.startswith("# Methods: S1\n\nTherapist and client each watched")
    para = text.split("\n")[2]
    assert "1 session recording of 1 dyad" in para
    assert "(1 researcher-led recall session and 1 self-guided recall session)" in para
    assert "2 therapist moments and 2 client moments" in para
    assert "coded with a codebook of 2 codes (Insight, Feeling stuck)" in para
    assert "rated on Helpful Aspects of Therapy (1-9), Intensity (1-5)" in para
    assert "at most 5 s" in para
    assert "(1,000 shifts, seed 0)" in para
    assert "time-unit kappa (Cohen's kappa on marked versus unmarked time bins" in para
    assert "with 1 s bins" in para
    assert "Researcher codes were kept per coder (2 coders)" in para
    assert para.endswith(
        "All figures were computed with IPR annotator version 9.9.9 (commit abc1234); the "
        "export of 2000-01-01T00:00:00+00:00 lists every parameter and figure."
    )
    assert "ELAN" not in para and "BORIS" not in para
    assert "- **time_unit_kappa**: Cohen's kappa on time units" in text
    assert "| D05 | session 3 | n/a/n/a | n/a | n/a | n/a (n/a) | 0.500 (n/a/n/a) |" in text


def test_vtt_note_and_svg_metadata_carry_the_provenance():
    ctx = coded_study().only_recording()
    text = to_vtt(ctx).decode()
    note = text.split("\n\n")[1].split("\n")
    assert note[:4] == [
        "NOTE provenance (ipr.exports.provenance)",
        "software.name: IPR annotator",
        "software.version: 9.9.9",
        "software.commit: abc1234",
    ]
    assert "parameters.time_unit_kappa.bin_ms: 1000" in note
    assert [c.identifier for c in webvtt.from_string(text)][:1] == ["therapist-11"]
    svg = etree.fromstring(to_svg(ctx))
    metadata = svg.find("{http://www.w3.org/2000/svg}metadata")
    document = json.loads(metadata.text)
    assert document["software"] == SOFTWARE
    assert document["recordings"][0]["figures"]["kappa"] == 0.5


def test_a_version_1_document_written_before_provenance_still_validates():
    doc = json.loads(to_json(coded_study()))
    del doc["provenance"]
    for code in doc["study"]["codebook"]:
        del code["description"]
    for moment in doc["study"]["dyads"][0]["recordings"][0]["moments"]:
        del moment["codings"], moment["imported_from"]
    assert _validate(doc, schema(), schema()) == []
