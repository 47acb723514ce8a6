"""CSV export: one row per moment, long format, ready for a spreadsheet, R or SPSS.

The file starts with '# key: value' provenance lines (`ipr.exports.provenance.rows`), then the
header row. UTF-8 with a BOM and CRLF line ends so Excel opens it cleanly; text cells that a
spreadsheet would run as a formula are neutralised with a leading quote (OWASP CSV injection
guidance).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from ipr.exports import provenance
from ipr.exports.data import ExportStudy, format_timecode
from ipr.exports.table import columns, iter_table

COMMENT = "# "
"""Provenance lines before the header (read with pandas' comment="#" or R's comment.char="#")."""

# A cell that starts (after any quotes we added before) with one of these could run as a formula.
_DANGEROUS = re.compile(r"^'*[=+\-@\t\r]")


_FIRST = frozenset("'=+-@\t\r")
"""A cell can only match `_DANGEROUS` when it starts with one of these (most cells do not)."""


def escape_cell(text: str) -> str:
    """Prefix a formula-like cell with a quote; also quote an already-quoted one so it reverses."""
    if not text or text[0] not in _FIRST:
        return text
    return "'" + text if _DANGEROUS.match(text) else text


def unescape_cell(text: str) -> str:
    """Undo `escape_cell` exactly."""
    return text[1:] if text.startswith("'") and _DANGEROUS.match(text[1:]) else text


def _text(value: object) -> str:
    return escape_cell(str(value))


def _timecode(value: object) -> str:
    return format_timecode(int(value))  # type: ignore[call-overload]


_CONVERT = {"ms": _timecode, "int": str, "flag": str}
"""A cell's text by column kind, for a value that is not None (None is an empty cell)."""


def iter_csv(
    data: ExportStudy,
    *,
    include_text: bool = True,
    rows_per_chunk: int = 1000,
    rows: list[list[object]] | None = None,
) -> Iterator[bytes]:
    """The CSV in chunks of rows, in one pass (a study's export is streamed as it is written).

    `rows`: the table's values already made (`table.table_rows` with these columns)."""
    cols = columns(data, include_text=include_text)
    buffer = io.StringIO()
    buffer.write("\ufeff")  # the BOM opens the file, before the provenance lines
    for key, value in provenance.rows(data):
        buffer.write(f"{COMMENT}{key}: {value}\r\n")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in cols])
    convert = [_CONVERT.get(c.kind, _text) for c in cols]
    for n, row in enumerate(iter_table(data, cols) if rows is None else rows, 1):
        writer.writerow(
            ["" if value is None else f(value) for f, value in zip(convert, row, strict=True)]
        )
        if n % rows_per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def to_csv(
    data: ExportStudy, *, include_text: bool = True, rows: list[list[object]] | None = None
) -> bytes:
    """Every moment of `data` as CSV bytes; identical input gives identical bytes."""
    return b"".join(iter_csv(data, include_text=include_text, rows=rows))
