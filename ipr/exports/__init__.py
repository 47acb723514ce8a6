"""Every export format and the imports, as pure functions of the plain data in `data.py`.

Study-wide formats take an `ExportStudy`; per-recording formats take a `RecordingContext`
(`study.only_recording()` or `study.recording(id)`). All return bytes, identical for identical
input. `docs/exports.md` describes every file and column.
"""

from ipr.exports.bundle import to_bundle
from ipr.exports.csv_ import to_csv
from ipr.exports.data import (
    Clip,
    Code,
    ExportDataError,
    ExportDyad,
    ExportError,
    ExportMoment,
    ExportRecording,
    ExportStudy,
    Pair,
    RecordingContext,
    Scale,
)
from ipr.exports.eaf import to_eaf
from ipr.exports.figure import to_png, to_svg
from ipr.exports.imports import ImportedMoment, ImportValidationError, import_csv, import_eaf
from ipr.exports.json_ import to_json
from ipr.exports.methods import to_methods
from ipr.exports.textgrid import to_textgrid
from ipr.exports.vtt import to_srt, to_vtt
from ipr.exports.xlsx import to_xlsx

# Format name (as in `ipr export --format` and `/export.<fmt>`) → (exporter, scope, media type).
FORMATS = {
    "csv": (to_csv, "study", "text/csv; charset=utf-8"),
    "xlsx": (to_xlsx, "study", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "json": (to_json, "study", "application/json"),
    "bundle": (to_bundle, "study", "application/zip"),
    "methods": (to_methods, "study", "text/markdown; charset=utf-8"),
    "eaf": (to_eaf, "recording", "application/xml"),
    "textgrid": (to_textgrid, "recording", "text/plain; charset=utf-8"),
    "vtt": (to_vtt, "recording", "text/vtt; charset=utf-8"),
    "srt": (to_srt, "recording", "application/x-subrip"),
    "svg": (to_svg, "recording", "image/svg+xml"),
    "png": (to_png, "recording", "image/png"),
}

__all__ = [
    "FORMATS",
    "Clip",
    "Code",
    "ExportDataError",
    "ExportDyad",
    "ExportError",
    "ExportMoment",
    "ExportRecording",
    "ExportStudy",
    "ImportValidationError",
    "ImportedMoment",
    "Pair",
    "RecordingContext",
    "Scale",
    "import_csv",
    "import_eaf",
    "to_bundle",
    "to_csv",
    "to_eaf",
    "to_json",
    "to_methods",
    "to_png",
    "to_srt",
    "to_svg",
    "to_textgrid",
    "to_vtt",
    "to_xlsx",
]
