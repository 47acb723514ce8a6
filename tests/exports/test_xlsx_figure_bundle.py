"""XLSX types, the timeline figure (SVG parsed, PNG decoded) and the reproducible bundle."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import cv2
import numpy as np
import openpyxl
from lxml import etree

from ipr.exports.bundle import to_bundle
from ipr.exports.figure import PNG_SCALE, WIDTH, to_png, to_svg
from ipr.exports.sample import synthetic_study
from ipr.exports.xlsx import SHEETS, to_xlsx
from tests.exports.conftest import make_study


def test_xlsx_opens_with_real_types(study):
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(study)))
    assert book.sheetnames == list(SHEETS)
    sheet = book["moments"]
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert [r["moment_id"] for r in rows] == [11, 21, 12, 22]
    assert [r["recording_id"] for r in rows] == [7, 7, 7, 7]  # a number, as in the other sheets
    spans = rows[2]
    assert spans["start_ms"] == 62000 and spans["end_ms"] == 75500
    assert spans["start_tc"] == timedelta(seconds=62)
    assert spans["end_tc"] == timedelta(seconds=75, milliseconds=500)
    assert sheet.cell(row=4, column=header.index("start_tc") + 1).number_format == "[h]:mm:ss.000"
    assert spans["rating_hat"] == 8 and spans["voice_note"] == 0
    # A text starting with '=' is a string cell, never a formula.
    cell = sheet.cell(row=4, column=header.index("text") + 1)
    assert (cell.data_type, cell.value) == ("s", "=SUM(A1:A2) tried a reframe")
    assert rows[0]["end_ms"] is None and rows[0]["lag_ms"] == 250
    pairs = list(book["pairs"].iter_rows(min_row=2, values_only=True))
    assert pairs == [("D05", "session 3", 7, 11, 21, 1500, 1750, 250)]
    figures = list(book["figures"].iter_rows(min_row=2, values_only=True))
    assert figures == [
        ("D05", "session 3", 7, "chance_kappa", None),
        ("D05", "session 3", 7, "kappa", 0.5),
        ("D05", "session 3", 7, "matched", 1),
    ]
    scales = list(book["scales"].iter_rows(min_row=2, values_only=True))
    assert scales[0] == ("hat", "Helpful Aspects of Therapy", 1, 9, 1, "extremely hindering")
    assert len(scales) == 9 + 5


def test_xlsx_is_byte_identical_for_the_same_data(study):
    assert to_xlsx(study) == to_xlsx(make_study())


def test_xlsx_without_text(study):
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(study, include_text=False)))
    header = [c.value for c in book["moments"][1]]
    assert "text" not in header and "researcher_note" not in header


def test_svg_is_wellformed_and_pseudonymous(ctx):
    data = to_svg(ctx)
    root = etree.fromstring(data)
    assert root.get("width") == str(WIDTH)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[:2] == [
        "D05 · session 3",
        "T05 (therapist) 2 moments · C05 (client) 2 moments · 1 matched",
    ]
    assert "T05" in texts and "C05" in texts
    assert "0:00" in texts and "1:00:00" in texts
    circles = list(root.iter("{http://www.w3.org/2000/svg}circle"))
    # 4 moments + 3 legend entries (insight, stuck, client without code)
    assert len(circles) == 7
    assert b"went quiet" not in data and b"d05-s3.mp4" not in data


def test_png_renders_the_lanes(ctx):
    data = to_png(ctx)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    height = int(etree.fromstring(to_svg(ctx)).get("height"))
    assert image.shape == (height * PNG_SCALE, WIDTH * PNG_SCALE, 3)
    # The therapist moment at 1.5 s is drawn in the 'stuck' colour (#d95f02, BGR 2,95,217).
    x = round((120 + (WIDTH - 170) * 1500 / 3_605_000) * PNG_SCALE)
    y = round((70 + 32) * PNG_SCALE)
    assert np.abs(image[y, x].astype(int) - [2, 95, 217]).max() <= 3
    assert data == to_png(ctx)


def test_bundle_holds_every_file_and_is_reproducible():
    study = synthetic_study(3, 20)
    data = to_bundle(study)
    assert data == to_bundle(synthetic_study(3, 20))
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert names[:6] == [
        "README.md",
        "moments.csv",
        "study.xlsx",
        "study.json",
        "schema_v1.json",
        "provenance.json",
    ]
    for folder, stem in (("D01/session_3", "D01_session_3"), ("D02/session_3", "D02_session_3")):
        for ext in (".eaf", ".TextGrid", ".vtt", ".srt", ".svg", ".png"):
            assert f"recordings/{folder}/{stem}{ext}" in names
    assert len(names) == 6 + 3 * 6
    assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    readme = archive.read("README.md").decode()
    for column in ("rating_hat", "lag_ms", "researcher_codes", "start_tc", "clip"):
        assert f"| `{column}` |" in readme
    assert json.loads(archive.read("study.json"))["schema_version"] == 1
    assert not any(n.startswith("/") or ".." in n for n in names)


def test_bundle_without_text_leaves_free_text_out_everywhere():
    study = make_study()
    archive = zipfile.ZipFile(io.BytesIO(to_bundle(study, include_text=False)))
    for name in archive.namelist():
        content = archive.read(name)
        if name.endswith(".xlsx"):
            content = b"".join(
                zipfile.ZipFile(io.BytesIO(content)).read(n)
                for n in zipfile.ZipFile(io.BytesIO(content)).namelist()
            )
        for secret in (b"went quiet", b"classic reframe", b"just tired", b"SUM(A1"):
            assert secret not in content, (name, secret)
    assert "LEFT OUT" in archive.read("README.md").decode()
