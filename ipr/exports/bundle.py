"""The study bundle: every export for every recording in one ZIP, with a README.

The ZIP is reproducible: entries in a fixed order with a fixed date, so two exports of the same
data are byte-identical and can be checksummed in a data-management plan.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from ipr.exports import provenance
from ipr.exports.csv_ import to_csv
from ipr.exports.data import ExportStudy, RecordingContext, safe_name
from ipr.exports.eaf import POINT_MS, to_eaf, to_interview_eaf
from ipr.exports.figure import Scene, png_of, scene, svg_of, to_png, to_svg
from ipr.exports.json_ import SCHEMA_VERSION, to_json
from ipr.exports.table import columns, table_rows
from ipr.exports.textgrid import to_textgrid
from ipr.exports.vtt import POINT_CAPTION_MS, to_srt, to_vtt
from ipr.exports.xlsx import SHEETS, ZIP_DATE, to_xlsx

PerRecording = Callable[..., bytes]

RECORDING_FILES: tuple[tuple[str, PerRecording, str], ...] = (
    (".eaf", to_eaf, "ELAN 3.0 annotation document (one tier per lane plus child tiers)."),
    (".TextGrid", to_textgrid, "Praat TextGrid: point and interval tiers per lane."),
    (".vtt", to_vtt, "WebVTT captions: each moment plays over the video."),
    (".srt", to_srt, "SubRip captions (same content as the WebVTT file)."),
    (".svg", to_svg, "The dyad timeline as a vector figure."),
    (".png", to_png, "The dyad timeline as a 2400 px wide image."),
)


def recording_folders(data: ExportStudy) -> list[tuple[RecordingContext, str]]:
    """`recordings/<dyad>/<session>` per recording, made unique with the id when names clash."""
    seen: set[str] = set()
    out = []
    for ctx in data.recordings():
        folder = f"recordings/{safe_name(ctx.dyad.code)}/{safe_name(ctx.recording.session_label)}"
        if folder in seen:
            folder += f"_{safe_name(str(ctx.recording.id))}"
        seen.add(folder)
        out.append((ctx, folder))
    return out


def readme(data: ExportStudy, *, include_text: bool = True) -> str:
    """The bundle's README.md: what every file and every column holds."""
    lines = [
        f"# IPR annotator export: {data.name}",
        "",
        "Times are integer milliseconds from the start of the recording's playable copy;",
        "timecodes are HH:MM:SS.mmm. Participants appear only by their pseudonymous codes.",
        "Free text (moment text, researcher notes) is "
        + ("included." if include_text else "LEFT OUT of every file in this bundle."),
        "",
        "## Files",
        "",
        "| file | what it holds |",
        "|---|---|",
        "| `moments.csv` | One row per moment, long format (columns below); UTF-8 BOM, CRLF. |",
        f"| `study.xlsx` | Sheets {', '.join(SHEETS)}; Excel times and real numbers. |",
        f"| `study.json` | Everything, JSON schema version {SCHEMA_VERSION} (`schema_v1.json`). |",
        "| `schema_v1.json` | The JSON Schema that `study.json` validates against. |",
        "| `provenance.json` | Software, parameters, definitions, codebook, recall, figures. |",
    ]
    for ext, _, what in RECORDING_FILES:
        lines.append(f"| `recordings/<dyad>/<session>/<dyad>_<session>{ext}` | {what} |")
    if include_text and any(ctx.recording.interviews for ctx in data.recordings()):
        lines.append(
            "| `recordings/<dyad>/<session>/<dyad>_<session>_<participant>_interview.<ext>` | "
            "A participant's recall interview audio (researcher-led sessions); the EAF links it "
            "as a second medium. Times on it are `interview_audio_start_ms` / `_end_ms`. |"
        )
        lines.append(
            "| `recordings/<dyad>/<session>/<dyad>_<session>_<participant>_interview.eaf` | "
            "The interview on its own time axis: the audio as ELAN's master medium, a `stops` "
            "tier (each stop's stretch of conversation) and a `transcript` tier. |"
        )
    lines += [
        "",
        f"In the EAF a point moment is an annotation {POINT_MS} ms long; in the captions a point",
        f"moment shows for {POINT_CAPTION_MS // 1000} s. The EAF links to the media by file name:",
        "put the session video next to the .eaf file.",
        "",
        "## Columns of moments.csv and the `moments` sheet",
        "",
        "| column | meaning |",
        "|---|---|",
    ]
    for col in columns(data, include_text=include_text):
        lines.append(f"| `{col.name}` | {col.description} |")
    lines += [
        "",
        "Cells starting with = + - @ tab or carriage return are prefixed with a single quote in",
        "the CSV so a spreadsheet never runs them as formulas; numeric columns are unchanged.",
        "",
        "## Recordings",
        "",
        "| folder | dyad | session | media file | duration_ms | moments |",
        "|---|---|---|---|---|---|",
    ]
    for ctx, folder in recording_folders(data):
        rec = ctx.recording
        lines.append(
            f"| `{folder}` | {ctx.dyad.code} | {rec.session_label} | {rec.media_filename} | "
            f"{rec.duration_ms} | {len(rec.moments)} |"
        )
    return "\n".join(lines + _provenance_section(data)) + "\n"


def _provenance_section(data: ExportStudy) -> list[str]:
    """Software to cite, every parameter and every definition (also in provenance.json)."""
    doc = provenance.document(data)
    sw = doc["software"]
    lines = [
        "",
        "## Provenance",
        "",
        f"Made by {sw['name']} {sw['version']} (commit {sw['commit']}) at {doc['exported_at']}.",
        "Every figure's parameters and values, the codebook with definitions and shortcut keys,",
        "the participants' instructions and scales and each participant's recall mode are in",
        "`provenance.json`, the `provenance` sheet of `study.xlsx`, the `#` lines at the top of",
        "`moments.csv`, the `provenance` block of `study.json` and the EAF header properties.",
        "",
        "| parameter | value |",
        "|---|---|",
    ]
    for group, params in doc["parameters"].items():
        lines += [f"| {group}.{k} | {_cell(v)} |" for k, v in params.items()]
    lines += ["", "### Definitions", ""]
    lines += [f"- **{name}**: {text}" for name, text in doc["definitions"].items()]
    return lines


def _cell(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value.replace("|", "\\|")


_ALREADY_COMPRESSED = (".png", ".xlsx")
DEFLATE_LEVEL = 3
"""zlib's level for the text files: half the CPU of its default (6) for ~18 % more compressed
text (docs/benchmarks.md, "Study scale"); the files themselves are the same bytes."""


def _entry(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    # Deflating a PNG or XLSX again costs time and saves nothing.
    stored = name.endswith(_ALREADY_COMPRESSED)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, content, compresslevel=None if stored else DEFLATE_LEVEL)


def to_bundle(
    data: ExportStudy,
    *,
    include_text: bool = True,
    figures: bool = True,
    png: Callable[[RecordingContext, Scene], bytes] | None = None,
) -> bytes:
    """The study bundle as ZIP bytes; `figures=False` skips the SVG/PNG for a quicker export.

    `png` gives a recording's PNG for its scene: the app passes one that reads the figures its
    worker drew already (`ipr.figure_files`, the same bytes); by default each is drawn here.
    """
    schema = resources.files("ipr.exports").joinpath("schema_v1.json").read_bytes()
    folders = recording_folders(data)
    buffer = io.BytesIO()
    # Each figure's scene is made once, for the SVG and the PNG. OpenCV releases the GIL while
    # drawing and encoding, so the PNGs render on a worker thread while this one writes the
    # other files; results are taken in order (reproducible).
    scenes = [scene(ctx) for ctx, _ in folders] if figures else []
    with ThreadPoolExecutor(max_workers=1) as pool, zipfile.ZipFile(buffer, "w") as archive:
        draw = png or (lambda _ctx, drawn: png_of(drawn))
        pngs = pool.map(draw, [ctx for ctx, _ in folders] if figures else [], scenes)
        _entry(archive, "README.md", readme(data, include_text=include_text).encode())
        rows = table_rows(data, columns(data, include_text=include_text))  # for both tables
        _entry(archive, "moments.csv", to_csv(data, include_text=include_text, rows=rows))
        _entry(archive, "study.xlsx", to_xlsx(data, include_text=include_text, rows=rows))
        del rows
        _entry(archive, "study.json", to_json(data, include_text=include_text))
        _entry(archive, "schema_v1.json", schema)
        document = provenance.document(data)
        _entry(archive, "provenance.json", json.dumps(document, indent=2).encode() + b"\n")
        for k, (ctx, folder) in enumerate(folders):
            stem = f"{safe_name(ctx.dyad.code)}_{safe_name(ctx.recording.session_label)}"
            for ext, export, _ in RECORDING_FILES:
                if ext == ".png":
                    content = next(pngs) if figures else None
                elif ext == ".svg":
                    content = svg_of(ctx, scenes[k]) if figures else None
                else:
                    content = export(ctx, include_text=include_text)
                if content is not None:
                    _entry(archive, f"{folder}/{stem}{ext}", content)
            if include_text:  # the audio it plays is added beside it (ipr.dataset.export)
                for lane, media in sorted(ctx.recording.interviews.items()):
                    name = media.media_filename.rsplit(".", 1)[0] + ".eaf"
                    _entry(archive, f"{folder}/{name}", to_interview_eaf(ctx, lane))
    return buffer.getvalue()
