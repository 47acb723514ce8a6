"""XLSX export: moments, pairs, figures, codebook and scales as real numbers and times.

Written directly as SpreadsheetML (inline strings, one number format for times) rather than
through openpyxl: openpyxl's per-cell objects made a 24-recording study take over a second,
most of the bundle's time budget. The tests read every file back with openpyxl.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterable
from xml.sax.saxutils import escape

from ipr.exports import provenance
from ipr.exports.data import ExportStudy
from ipr.exports.table import columns, iter_table

TIME_FORMAT = "[h]:mm:ss.000"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SHEETS = ("moments", "pairs", "figures", "coders", "codebook", "scales", "provenance")
MS_PER_DAY = 86_400_000

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_SPECIAL = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""What `_cell` escapes or drops in a text cell; most cells hold none of it."""
_PRESERVE = '<t xml:space="preserve">'
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_BOLD, _TIME = 1, 2  # indexes into cellXfs below


def _letters(n: int) -> str:
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def _cell(ref: str, value: object, style: int = 0) -> str:
    kind = type(value)
    if kind is int:  # the common case first: this runs once per cell
        return f'<c r="{ref}"><v>{value}</v></c>' if not style else _cell_styled(ref, value, style)
    if value is None or value == "":
        return ""
    if kind is str:
        text = escape(_ILLEGAL_XML.sub("", value))  # type: ignore[arg-type]
        s = f' s="{style}"' if style else ""
        return f'<c r="{ref}" t="inlineStr"{s}><is><t xml:space="preserve">{text}</t></is></c>'
    return _cell_styled(ref, value, style)


def _cell_styled(ref: str, value: object, style: int) -> str:
    """Numbers other than plain ints, and anything styled."""
    s = f' s="{style}"' if style else ""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return f'<c r="{ref}"{s}><v>{value}</v></c>'
    if isinstance(value, float):
        return f'<c r="{ref}"{s}><v>{value!r}</v></c>' if math.isfinite(value) else ""
    text = escape(_ILLEGAL_XML.sub("", str(value)))
    return f'<c r="{ref}" t="inlineStr"{s}><is><t xml:space="preserve">{text}</t></is></c>'


def _sheet_xml(
    header: list[str], rows: Iterable[list[object]], times: list[bool] | None = None
) -> bytes:
    """A worksheet; `times` marks the columns whose values are times in ms, written as Excel
    times: a fraction of a day, shown as [h]:mm:ss.000 (the moments sheet's *_tc columns)."""
    refs = [_letters(i + 1) for i in range(len(header))]
    timed = set(refs[i] for i, is_time in enumerate(times or ()) if is_time)
    parts = [
        _HEAD,
        f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">',
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        "</sheetView></sheetViews><sheetData>",
        '<row r="1">',
        *(_cell(f"{r}1", name, _BOLD) for r, name in zip(refs, header, strict=True)),
        "</row>",
    ]
    # `_cell` inlined for the unstyled cells of the data rows (a study's moments sheet has
    # millions): the same strings, without a call and a reference string per empty cell.
    append = parts.append
    for number, row in enumerate(rows, start=2):
        append(f'<row r="{number}">')
        for r, value in zip(refs, row, strict=True):
            kind = type(value)
            if kind is int:
                if r in timed:
                    days = value / MS_PER_DAY  # type: ignore[operator]
                    append(f'<c r="{r}{number}" s="{_TIME}"><v>{days!r}</v></c>')
                else:
                    append(f'<c r="{r}{number}"><v>{value}</v></c>')
            elif value is None or value == "":
                continue
            elif kind is str:
                if _XML_SPECIAL.search(value) is not None:  # type: ignore[arg-type]
                    value = escape(_ILLEGAL_XML.sub("", value))  # type: ignore[arg-type]
                append(f'<c r="{r}{number}" t="inlineStr"><is>{_PRESERVE}{value}</t></is></c>')
            else:
                append(_cell_styled(f"{r}{number}", value, 0))
        append("</row>")
    parts.append("</sheetData></worksheet>")
    return "".join(parts).encode("utf-8")


def _moment_rows(
    data: ExportStudy, include_text: bool, rows: list[list[object]] | None
) -> tuple[list[str], Iterable[list[object]], list[bool]]:
    """The moments sheet: header, rows, and which columns are times (kind "ms")."""
    cols = columns(data, include_text=include_text)
    table = iter_table(data, cols) if rows is None else rows
    return [c.name for c in cols], table, [c.kind == "ms" for c in cols]


def _sheets(
    data: ExportStudy, include_text: bool, rows: list[list[object]] | None = None
) -> list[tuple]:
    """Each sheet: (name, header, rows), the moments sheet also which columns are times."""
    pairs, figures = [], []
    for ctx in data.recordings():
        rec = ctx.recording
        where = [ctx.dyad.code, rec.session_label, rec.id]
        start = {m.id: m.t_ms for m in rec.moments}
        for p in rec.pairs:
            pairs.append(
                [*where, p.therapist_moment_id, p.client_moment_id]
                + [start.get(p.therapist_moment_id), start.get(p.client_moment_id), p.lag_ms]
            )
        for name, value in sorted(rec.figures.items()):
            figures.append([*where, name, value])
    coders = []
    for ctx in data.recordings():
        rec = ctx.recording
        where = [ctx.dyad.code, rec.session_label, rec.id]
        found = rec.coder_agreement
        for cmp in found.get("comparisons", ()):  # type: ignore[union-attr]
            for r in cmp["per_code"]:
                k = r["time_unit_kappa"]
                coders.append(
                    [*where, cmp["lane"], cmp["a"], cmp["b"], r["code"], r["n_a"], r["n_b"]]
                    + [r["n_pairs"], r["co_marking_rate"], found["tolerance_ms"]]
                    + [k["kappa"], k["observed"], k["expected"], k["bin_ms"]]
                )
    scales = [
        [s.key, s.name, s.min, s.max, point, s.labels.get(point)]
        for s in data.scales
        for point in range(s.min, s.max + 1)
    ]
    return [
        ("moments", *_moment_rows(data, include_text, rows)),  # with its time columns
        (
            "pairs",
            ["dyad", "session", "recording_id", "therapist_moment_id", "client_moment_id"]
            + ["therapist_start_ms", "client_start_ms", "lag_ms"],
            pairs,
        ),
        ("figures", ["dyad", "session", "recording_id", "figure", "value"], figures),
        (
            "coders",
            ["dyad", "session", "recording_id", "lane", "coder_a", "coder_b", "code", "n_a"]
            + ["n_b", "n_pairs", "co_marking_rate", "tolerance_ms", "time_unit_kappa"]
            + ["observed_agreement", "expected_agreement", "bin_ms"],
            coders,
        ),
        (
            "codebook",
            ["key", "name", "colour", "shortcut", "description"],
            [[c.key, c.name, c.colour, c.shortcut, c.description] for c in data.codebook],
        ),
        ("scales", ["key", "name", "min", "max", "point", "label"], scales),
        ("provenance", ["key", "value"], [list(row) for row in provenance.rows(data)]),
    ]


_STYLES = (
    f'{_HEAD}<styleSheet xmlns="{_MAIN}">'
    f'<numFmts count="1"><numFmt numFmtId="164" formatCode="{TIME_FORMAT}"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _package_parts(data: ExportStudy, count: int) -> list[tuple[str, str]]:
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
        f'ContentType="{sheet_type}.worksheet+xml"/>'
        for i in range(1, count + 1)
    )
    content_types = (
        f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{sheet_type}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{sheet_type}.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-'
        'package.core-properties+xml"/>'
        '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.extended-properties+xml"/>'
        f"{overrides}</Types>"
    )
    doc_rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    root_rels = (
        f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{doc_rel}/officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
        'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        f'<Relationship Id="rId3" Type="{doc_rel}/extended-properties" '
        'Target="docProps/app.xml"/></Relationships>'
    )
    sheets = "".join(
        f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>'
        for i, name in enumerate(SHEETS[:count], start=1)
    )
    workbook = (
        f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        f"<bookViews><workbookView/></bookViews><sheets>{sheets}</sheets></workbook>"
    )
    workbook_rels = (
        f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="{doc_rel}/worksheet" '
            f'Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, count + 1)
        )
        + f'<Relationship Id="rId{count + 1}" Type="{doc_rel}/styles" Target="styles.xml"/>'
        "</Relationships>"
    )
    stamp = data.exported_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    core = (
        f'{_HEAD}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
        'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{escape(data.name)}</dc:title><dc:creator>IPR annotator</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>'
        "</cp:coreProperties>"
    )
    app = (
        f'{_HEAD}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
        'extended-properties"><Application>IPR annotator</Application></Properties>'
    )
    return [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", root_rels),
        ("docProps/core.xml", core),
        ("docProps/app.xml", app),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", workbook_rels),
        ("xl/styles.xml", _STYLES),
    ]


def to_xlsx(
    data: ExportStudy, *, include_text: bool = True, rows: list[list[object]] | None = None
) -> bytes:
    """A workbook with the sheets in `SHEETS`; identical input gives identical bytes.

    `rows`: the moments table's values already made (`table.table_rows`, these columns)."""
    sheets = _sheets(data, include_text, rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:

        def put(name: str, content: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content, compresslevel=1)

        for name, text in _package_parts(data, len(sheets)):
            put(name, text.encode("utf-8"))
        for i, (_, header, rows, *times) in enumerate(sheets, start=1):
            put(f"xl/worksheets/sheet{i}.xml", _sheet_xml(header, rows, *times))
    return buffer.getvalue()
