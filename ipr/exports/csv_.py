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


def to_csv(data: ExportStudy, *, include_text: bool = True) -> bytes:
    """Every moment of `data` as CSV bytes; identical input gives identical bytes."""
    cols = columns(data, include_text=include_text)
    buffer = io.StringIO()
    for key, value in provenance.rows(data):
        buffer.write(f"{COMMENT}{key}: {value}\r\n")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in cols])
    for ctx, moment in iter_rows(data):
        values = moment_values(ctx, moment)
        writer.writerow([_cell(c.kind, values[c.name]) for c in cols])
    return buffer.getvalue().encode("utf-8-sig")
