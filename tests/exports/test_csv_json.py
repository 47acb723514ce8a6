"""CSV and JSON exports: exact content on hand-made data, injection safety, schema validity."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from ipr.exports.csv_ import escape_cell, iter_csv, to_csv, unescape_cell
from ipr.exports.data import ExportDataError, ExportMoment, ExportRecording, format_timecode
from ipr.exports.json_ import iter_json, schema, to_document, to_json
from tests.exports.conftest import make_study

HEADER = (
    "study,dyad,session,recording_id,lane,participant,moment_id,start_ms,end_ms,start_tc,end_tc,"
    "peaks_ms,text,codes,rating_hat,rating_intensity,coder,researcher_codes,researcher_note,"
    "voice_note,imported_from,matched_moment_id,lag_ms,clip,phase,responds_to_id,corrected_at,"
    "interview_audio_start_ms,interview_audio_end_ms,interview_transcript"
)


def table_text(data: bytes) -> str:
    """The CSV after its '#' provenance lines."""
    lines = data.decode("utf-8-sig").split("\r\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\r\n".join(lines)


def test_csv_is_exact_long_format_with_bom_and_crlf(study):
    data = to_csv(study)
    assert data.startswith(b"\xef\xbb\xbf# software.name: IPR annotator\r\n")
    lines = table_text(data).split("\r\n")
    assert lines[0] == HEADER
    assert lines[1] == (
        'S1,D05,session 3,7,therapist,T05,11,1500,,00:00:01.500,,,"She went quiet, I felt stuck",'
        "stuck,3,,,,,0,,21,250,1,blind,,,,,"
    )
    # A newline inside the text stays a bare LF inside the quoted cell; records end in CRLF.
    assert lines[2] == (
        'S1,D05,session 3,7,client,C05,21,1750,,00:00:01.750,,,"He ""got"" me, finally\n'
        'I relaxed",insight,9,,,,,1,,11,250,1,blind,,,,,'
    )
    assert lines[3] == (
        "S1,D05,session 3,7,therapist,T05,12,62000,75500,00:01:02.000,00:01:15.500,70000,"
        "'=SUM(A1:A2) tried a reframe,insight;stuck,8,4,,insight,classic reframe,0,,,,2,blind,,,,,"
    )
    assert lines[4] == (
        "S1,D05,session 3,7,client,C05,22,3600000,3601000,01:00:00.000,01:00:01.000,,"
        "'-just tired,,,2,,,,0,,,,2,blind,,,,,"
    )
    assert lines[5] == ""
    assert len(lines) == 6


def test_csv_numeric_columns_stay_numeric_even_when_negative():
    study = make_study(
        moments=(
            ExportMoment(1, "client", "C05", 2000, matched_moment_id=2, lag_ms=-400),
            ExportMoment(2, "therapist", "T05", 2400, matched_moment_id=1, lag_ms=-400),
        )
    )
    rows = list(csv.DictReader(io.StringIO(table_text(to_csv(study)))))
    assert [r["lag_ms"] for r in rows] == ["-400", "-400"]
    assert [r["moment_id"] for r in rows] == ["1", "2"]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("+31 6", "'+31 6"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("'=already", "''=already"),
        ("plain", "plain"),
        ("'quoted but safe", "'quoted but safe"),
        ("", ""),
    ],
)
def test_escape_cell_neutralises_formulas_and_reverses_exactly(raw, escaped):
    assert escape_cell(raw) == escaped
    assert unescape_cell(escaped) == raw


def test_csv_without_text_drops_free_text_columns(study):
    text = table_text(to_csv(study, include_text=False))
    header = text.split("\r\n")[0].split(",")
    assert "text" not in header and "researcher_note" not in header
    assert "went quiet" not in text and "classic reframe" not in text
    assert len(header) == 27  # the interview offsets stay; its transcript is free text


def test_csv_is_deterministic(study):
    assert to_csv(study) == to_csv(make_study())


def test_timecode_formatting():
    assert format_timecode(0) == "00:00:00.000"
    assert format_timecode(3_723_004) == "01:02:03.004"
    assert format_timecode(100 * 3_600_000) == "100:00:00.000"


def test_media_path_is_refused():
    with pytest.raises(ExportDataError, match="bare file name"):
        ExportRecording(1, "s1", "/srv/recordings/abc/proxy.mp4", 1000)


def test_unknown_rating_scale_is_refused():
    with pytest.raises(ExportDataError, match="moment 1: rating scale"):
        make_study(moments=(ExportMoment(1, "client", "C05", 0, ratings={"mood": 3}),))


def test_json_document_holds_everything(study):
    doc = json.loads(to_json(study))
    assert doc["format"] == "ipr-annotator-export"
    assert doc["schema_version"] == 1
    recording = doc["study"]["dyads"][0]["recordings"][0]
    assert [m["id"] for m in recording["moments"]] == [11, 21, 12, 22]
    assert recording["moments"][2] == {
        "id": 12,
        "lane": "therapist",
        "participant_code": "T05",
        "t_ms": 62000,
        "end_ms": 75500,
        "peaks_ms": [70000],
        "text": "=SUM(A1:A2) tried a reframe",
        "codes": ["insight", "stuck"],
        "ratings": {"hat": 8, "intensity": 4},
        "researcher_codes": ["insight"],
        "researcher_note": "classic reframe",
        "codings": [],
        "voice_note": False,
        "imported_from": None,
        "matched_moment_id": None,
        "lag_ms": None,
        "phase": "blind",
        "responds_to_id": None,
        "corrected_at": None,
        "interview_transcript": [],
        "interview_audio_start_ms": None,
        "interview_audio_end_ms": None,
    }
    assert recording["interviews"] == {}
    assert recording["figures"] == {"chance_kappa": None, "kappa": 0.5, "matched": 1}
    assert recording["pairs"] == [
        {"therapist_moment_id": 11, "client_moment_id": 21, "lag_ms": 250}
    ]
    assert doc["study"]["scales"][0]["labels"] == {"1": "extremely hindering"}


def test_json_without_text_nulls_free_text(study):
    doc = json.loads(to_json(study, include_text=False))
    moments = doc["study"]["dyads"][0]["recordings"][0]["moments"]
    assert doc["include_text"] is False
    assert {m["text"] for m in moments} == {None}
    assert {m["researcher_note"] for m in moments} == {None}


# A validator for exactly the JSON Schema keywords schema_v1.json uses (jsonschema is not a
# dependency); the keyword test below fails if the schema ever grows a keyword it ignores.
KEYWORDS = {
    "$schema", "$id", "title", "description", "type", "additionalProperties", "required",
    "properties", "$defs", "$ref", "items", "minimum", "enum", "const",
}  # fmt: skip
TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "number": (int, float),
    "integer": int,
}


def _validate(value, rule, root, path="$"):
    if "$ref" in rule:
        return _validate(value, root["$defs"][rule["$ref"].split("/")[-1]], root, path)
    errors = []
    if "type" in rule:
        kinds = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        is_bool = isinstance(value, bool)
        if not any(isinstance(value, TYPES[k]) and (k == "boolean" or not is_bool) for k in kinds):
            return [f"{path}: {value!r} is not {kinds}"]
    if "const" in rule and value != rule["const"]:
        errors.append(f"{path}: {value!r} != {rule['const']!r}")
    if "enum" in rule and value not in rule["enum"]:
        errors.append(f"{path}: {value!r} not in {rule['enum']}")
    if "minimum" in rule and isinstance(value, int | float) and value < rule["minimum"]:
        errors.append(f"{path}: {value} < {rule['minimum']}")
    if isinstance(value, dict):
        for key in rule.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing {key}")
        props = rule.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += _validate(item, props[key], root, f"{path}.{key}")
            elif rule.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {key}")
            elif isinstance(rule.get("additionalProperties"), dict):
                errors += _validate(item, rule["additionalProperties"], root, f"{path}.{key}")
    if isinstance(value, list) and "items" in rule:
        for i, item in enumerate(value):
            errors += _validate(item, rule["items"], root, f"{path}[{i}]")
    return errors


def _keywords(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("properties", "$defs"):
                yield key
            children = value.values() if key in ("properties", "$defs") else [value]
            for child in children:
                yield from _keywords(child)
    elif isinstance(node, list):
        for item in node:
            yield from _keywords(item)


def test_schema_uses_only_keywords_the_test_validator_checks():
    assert set(_keywords(schema())) <= KEYWORDS


@pytest.mark.parametrize("include_text", [True, False])
def test_json_validates_against_schema_v1(study, include_text):
    doc = json.loads(to_json(study, include_text=include_text))
    assert _validate(doc, schema(), schema()) == []


def test_schema_validator_catches_a_broken_document(study):
    doc = to_document(study)
    doc["study"]["dyads"][0]["recordings"][0]["moments"][0]["lane"] = "observer"
    del doc["study"]["name"]
    assert _validate(json.loads(json.dumps(doc)), schema(), schema()) == [
        "$.study: missing name",
        "$.study.dyads[0].recordings[0].moments[0].lane: 'observer' not in ['therapist', 'client']",
    ]


@pytest.mark.parametrize("include_text", [True, False])
def test_streamed_csv_and_json_are_the_same_bytes_in_chunks(study, include_text):
    """The app streams study exports chunk by chunk; the bytes are exactly the file's."""
    rows = list(iter_csv(study, include_text=include_text, rows_per_chunk=2))
    assert len(rows) > 2 and b"".join(rows) == to_csv(study, include_text=include_text)
    parts = list(iter_json(study, include_text=include_text))
    assert len(parts) == len(study.dyads) + 2
    assert b"".join(parts) == to_json(study, include_text=include_text)
    empty = list(iter_json(replace(study, dyads=()), include_text=include_text))
    assert b"".join(empty) == to_json(replace(study, dyads=()), include_text=include_text)
