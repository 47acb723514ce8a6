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
from ipr.exports.table import columns, iter_rows, moment_values

COMMENT = "# "
"""Provenance lines before the header (read with pandas' comment="#" or R's comment.char="#")."""

# A cell that starts (after any quotes we added before) with one of these could run as a formula.
_DANGEROUS = re.compile(r"^'*[=+\-@\t\r]")


def escape_cell(text: str) -> str:
    """Prefix a formula-like cell with a quote; also quote an already-quoted one so it reverses."""
    return "'" + text if _DANGEROUS.match(text) else text


def unescape_cell(text: str) -> str:
    """Undo `escape_cell` exactly."""
    return text[1:] if text.startswith("'") and _DANGEROUS.match(text[1:]) else text


def _cell(kind: str, value: object) -> str:
    if value is None:
        return ""
    if kind == "ms":
        return format_timecode(int(value))  # type: ignore[call-overload]
    if kind in ("int", "flag"):
        return str(value)
    return escape_cell(str(value))


def iter_csv(
    data: ExportStudy, *, include_text: bool = True, rows_per_chunk: int = 1000
) -> Iterator[bytes]:
    """The CSV in chunks of rows, in one pass (a study's export is streamed as it is written)."""
    cols = columns(data, include_text=include_text)
    buffer = io.StringIO()
    buffer.write("\ufeff")  # the BOM opens the file, before the provenance lines
    for key, value in provenance.rows(data):
        buffer.write(f"{COMMENT}{key}: {value}\r\n")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in cols])
    for n, (ctx, moment) in enumerate(iter_rows(data), 1):
        values = moment_values(ctx, moment)
        writer.writerow([_cell(c.kind, values[c.name]) for c in cols])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def to_csv(data: ExportStudy, *, include_text: bool = True) -> bytes:
    """Every moment of `data` as CSV bytes; identical input gives identical bytes."""
    return b"".join(iter_csv(data, include_text=include_text))
