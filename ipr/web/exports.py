"""Exports and imports in the app: pages, the `export.<fmt>` API routes and API-token management.

Permission: exporting is reading, so every member of a study, viewers included, may export it;
a non-member gets 404. Importing moments changes data and needs the editor role. Every export
writes an audit event (`ipr.dataset.export`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from ipr import audit, auth, dataset, studies
from ipr.access import get_or_404, role_in
from ipr.errors import NotFound, ValidationError
from ipr.exports import peers
from ipr.exports.data import LANES
from ipr.exports.moment_clips import (
    APP_KEYFRAME_SLACK_MS,
    DEFAULT_POST_ROLL_MS,
    DEFAULT_PRE_ROLL_MS,
    MAX_ROLL_MS,
)
from ipr.models import ApiToken, Dyad, Participant, Recording, Study, User, utcnow
from ipr.web import schemas as S
from ipr.web.api import api_user, token_required
from ipr.web.context import client_ip, db, huey, login_required, render, storage, user
from ipr.web.openapi import ApiBlueprint, read

bp = Blueprint("exports", __name__)

FORMAT_LABELS = {
    "csv": "CSV — one row per moment (Excel, R, SPSS)",
    "xlsx": "Excel workbook — moments, pairs, figures, codebook",
    "json": "JSON — the whole data set (schema v1)",
    "eaf": "ELAN .eaf — tiers per lane",
    "textgrid": "Praat TextGrid",
    "vtt": "WebVTT subtitles — moments over the video",
    "srt": "SRT subtitles",
    "svg": "Timeline figure (SVG)",
    "png": "Timeline figure (PNG)",
    "bundle": "Study bundle — every format in one ZIP",
    "methods": "Methods paragraph — what was measured, parameters, definitions, version to cite",
    "zip": "Moment clips — a short video per moment (ZIP)",
    "motion_csv": "Motion energy — each region's series at its frame rate (CSV)",
    "motion_txt": "Motion energy for rMEA — two columns that readMEA reads (text)",
    "synchrony_csv": "Synchrony — windowed series, summary figures and their parameters (CSV)",
}
MODELS: dict[str, type] = {"recording": Recording, "dyad": Dyad, "study": Study}


# --- shared: options, the file response -------------------------------------------------------


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError("Use true or false for include_text.", field="include_text")


def _ms(source: Any, name: str, default: int, *, scale: int = 1) -> int:
    raw = source.get(name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = round(float(raw) * scale)
    except ValueError:
        raise ValidationError(f"{name} must be a number.", field=name) from None
    if not 0 <= value <= MAX_ROLL_MS:
        raise ValidationError(f"{name} must be between 0 and {MAX_ROLL_MS} ms.", field=name)
    return value


def _send(result: dataset.ExportResult) -> Response:
    """The export as a download; a moment-clips ZIP is streamed from its temporary file."""
    if result.path is not None:
        path = result.path

        def chunks() -> Iterator[bytes]:
            try:
                with path.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        yield chunk
            finally:
                if not result.keep:
                    path.unlink(missing_ok=True)

        resp = Response(chunks())
        resp.headers["Content-Length"] = str(path.stat().st_size)
        if not result.keep:
            resp.call_on_close(lambda: path.unlink(missing_ok=True))  # also if never read
    elif result.chunks is not None:
        resp = Response(iter(result.chunks))  # plain data by now: no database while streaming
    else:
        resp = Response(result.content or b"")
    resp.headers["Content-Type"] = result.media_type
    # File names come from safe_name(): letters, digits, '.', '_' and '-' only, never quoted.
    resp.headers["Content-Disposition"] = f"attachment; filename={result.filename}"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _export(
    obj: Study | Dyad | Recording, fmt: str, options: Any, who: User, *, seconds: bool
) -> Response:
    """Parse the options (form: seconds, a checkbox; API: milliseconds), export, audit, send."""
    scale = 1000 if seconds else 1
    suffix = "_s" if seconds else "_ms"
    try:
        result = _make(obj, fmt, options, who, scale, suffix, seconds)
    except dataset.ExportPending as pending:
        # moment clips are cut by a worker: answer 202 and let the caller ask again
        if not seconds:
            body = {"status": pending.status, "job_id": pending.job_id, "retry_after_s": 3}
            return (
                jsonify(S.ExportQueued().dump(body)),
                202,
                {"Retry-After": "3", "Cache-Control": "no-store"},
            )
        return render_template("exports/pending.html", job_id=pending.job_id), 202
    return _send(result)


def _make(
    obj: Study | Dyad | Recording,
    fmt: str,
    options: Any,
    who: User,
    scale: int,
    suffix: str,
    seconds: bool,
) -> dataset.ExportResult:
    result = dataset.export(
        db(),
        storage(),
        obj,
        fmt,
        include_text=_flag(options.get("include_text"), not seconds),
        pre_roll_ms=_ms(options, "pre_roll" + suffix, DEFAULT_PRE_ROLL_MS, scale=scale),
        post_roll_ms=_ms(options, "post_roll" + suffix, DEFAULT_POST_ROLL_MS, scale=scale),
        keyframe_slack_ms=_ms(
            options, "keyframe_slack" + suffix, 0 if seconds else APP_KEYFRAME_SLACK_MS, scale=scale
        ),
        user=who,
        ip=client_ip(),
        queue=huey(),
        stream=True,
    )
    db().commit()
    return result


# --- pages --------------------------------------------------------------------------------------


def _page(scope: str, obj: Any, status: int = 200, **extra: Any) -> Any:
    study = obj if scope == "study" else obj.dyad.study if scope == "recording" else obj.study
    role = role_in(db(), user(), study.id)
    return render(
        "exports/export.html",
        status=status,
        scope=scope,
        obj=obj,
        study=study,
        formats=FORMAT_LABELS,
        can_edit=studies.can(role, "editor"),
        pre_roll_s=DEFAULT_PRE_ROLL_MS / 1000,
        post_roll_s=DEFAULT_POST_ROLL_MS / 1000,
        **extra,
    )


def _export_page(scope: str, obj_id: int) -> Any:
    """The form; submitted (a GET: exporting changes nothing but the audit trail) it downloads."""
    obj = get_or_404(db(), MODELS[scope], obj_id, user())
    if "format" not in request.args:
        return _page(scope, obj)
    return _export(obj, request.args["format"], request.args, user(), seconds=True)


@bp.get("/recordings/<int:recording_id>/export")
@login_required
def recording_export(recording_id: int) -> Any:
    return _export_page("recording", recording_id)


@bp.get("/dyads/<int:dyad_id>/export")
@login_required
def dyad_export(dyad_id: int) -> Any:
    return _export_page("dyad", dyad_id)


@bp.get("/studies/<int:study_id>/export")
@login_required
def study_export(study_id: int) -> Any:
    return _export_page("study", study_id)


@bp.get("/recordings/<int:recording_id>/import")
@login_required
def import_form(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    return _import_page(rec)


def _import_page(rec: Recording, status: int = 200, **extra: Any) -> Any:
    return render(
        "exports/import.html",
        status=status,
        rec=rec,
        dyad=rec.dyad,
        study=rec.dyad.study,
        participants=rec.dyad.participants,
        lanes=LANES,
        **extra,
    )


@bp.post("/recordings/<int:recording_id>/import/preview")
@login_required
def import_preview(recording_id: int) -> Any:
    """Step 1: what the file would create (tiers or subjects → lane, counts, time range).
    Nothing is written; the file is kept under a token until the researcher confirms."""
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Choose a file to import.", field="file")
    limit = current_app.config["IMPORT_MAX_BYTES"]
    try:
        if _part_size(upload) > limit:
            raise dataset.ImportTooLarge(
                [f"the file is larger than {limit} bytes, the most one import may read "
                 "(setting IPR_IMPORT_MAX_BYTES); split it into smaller files"]
            )  # fmt: skip
        data = upload.read()
        kind = dataset.import_kind(data, upload.filename)
        found = dataset.preview_import(data, kind)
    except dataset.ImportProblems as exc:
        return _import_page(rec, exc.status, problems=exc.problems, filename=upload.filename)
    token = uuid.uuid4().hex
    path = storage().staged_import(token)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return _import_page(
        rec, preview=found, token=token, filename=upload.filename, kind=kind,
        format_name=peers.NAMES[kind],
    )  # fmt: skip


@bp.post("/recordings/<int:recording_id>/import")
@login_required
def import_post(recording_id: int) -> Any:
    """Moments from a CSV or an ELAN tier into one participant's lane: all of them or none.

    Either a file (`file`) or, after the preview, the staged file's `token` with its
    `filename`; the kind is recognised from the content (`dataset.import_kind`)."""
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    participant = get_or_404(
        db(), Participant, request.form.get("participant_id", type=int), user()
    )
    token = request.form.get("token", "").strip()
    cfg = current_app.config
    staged = None
    filename = ""
    try:
        if token:
            staged = storage().staged_import(token)
            if not staged.is_file():
                raise ValidationError(
                    "The previewed file has expired; choose it again.", field="file"
                )
            filename = request.form.get("filename", "").strip() or "import"
            size = staged.stat().st_size
            data: Any = staged.read_bytes() if size <= cfg["IMPORT_MAX_BYTES"] else b""
        else:
            upload = request.files.get("file")
            if upload is None or not upload.filename:
                raise ValidationError("Choose a CSV or ELAN (.eaf) file to import.", field="file")
            filename, data, size = upload.filename, upload.stream, _part_size(upload)
        if size > cfg["IMPORT_MAX_BYTES"]:
            raise dataset.ImportTooLarge(
                [f"the file is larger than {cfg['IMPORT_MAX_BYTES']} bytes, the most one import "
                 "may read (setting IPR_IMPORT_MAX_BYTES); split it into smaller files"]
            )  # fmt: skip
        kind = dataset.import_kind(data, filename)
        found = dataset.read_import(
            rec.dyad.study,
            data,
            kind,
            tier=request.form.get("tier", "").strip(),
            source_lane=request.form.get("source_lane", "").strip(),
            max_rows=cfg["IMPORT_MAX_ROWS"],
        )
        rs = dataset.import_moments(
            db(), rec, participant, found, user=user(), fmt=kind, ip=client_ip(),
            filename=filename,
        )  # fmt: skip
    except dataset.ImportProblems as exc:
        db().rollback()
        return _import_page(rec, exc.status, problems=exc.problems, filename=filename)
    if staged is not None:
        staged.unlink(missing_ok=True)
    return _import_page(rec, imported=len(found), into=participant, rs=rs)


def _part_size(upload: Any) -> int:
    """Bytes in an uploaded part, already spooled by the form parser (seek, never read)."""
    stream = upload.stream
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size


# --- API tokens ---------------------------------------------------------------------------------


def _tokens_page(status: int = 200, **extra: Any) -> Any:
    rows = db().scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user().id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return render("account/tokens.html", "account/_tokens.html", status, tokens=list(rows), **extra)


@bp.get("/account/tokens")
@login_required
def tokens() -> Any:
    return _tokens_page()


@bp.post("/account/tokens")
@login_required
def create_token() -> Any:
    name = request.form.get("name", "").strip()
    if not name:
        return _tokens_page(422, error="Give the token a name, e.g. the script that uses it.")
    row, plain = auth.create_api_token(db(), user(), name)
    audit.record(
        db(), "api_token_created", user=user(), obj=("api_token", row.id), ip=client_ip(),
        details={"name": row.name, "prefix": row.prefix},
    )  # fmt: skip
    db().commit()
    return _tokens_page(201, new_token=plain, new_name=row.name)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Any:
    row = db().get(ApiToken, token_id)
    if row is None or row.user_id != user().id or row.revoked_at is not None:
        raise NotFound()
    row.revoked_at = utcnow()
    audit.record(
        db(), "api_token_revoked", user=user(), obj=("api_token", row.id), ip=client_ip(),
        details={"name": row.name, "prefix": row.prefix},
    )  # fmt: skip
    db().commit()
    if request.htmx:
        return _tokens_page()
    return redirect(url_for("exports.tokens"), 303)


# --- the API ------------------------------------------------------------------------------------


api_bp = ApiBlueprint("api_exports", __name__, url_prefix="/api/v1", description="Exports")
FMT = {
    "in": "path",
    "name": "fmt",
    "schema": {"enum": list(dataset.EXPORT_FORMATS)},
    "description": "csv, xlsx, json, bundle, methods (study-wide files; methods is a Markdown "
    "Methods paragraph); eaf, textgrid, vtt, srt, svg, png (per recording: a ZIP with one per "
    "recording for a dyad or study); zip (moment clips: one MP4 per moment, and clips.csv)",
}


def exported(scope: str) -> Any:
    """The documentation the three export routes share (the file types cannot be derived)."""

    def decorate(view: Any) -> Any:
        view = api_bp.doc(
            responses={"200": {"description": "The file", "content": S.EXPORT_MEDIA}}
        )(view)
        view = api_bp.alt_response(
            202, schema=S.ExportQueued, success=True,
            description="Moment clips (zip) are being cut by a worker: ask the same URL again "
            "after Retry-After seconds",
        )(view)  # fmt: skip
        view = api_bp.errors(401, 404, 422)(view)
        view = api_bp.input(S.ExportQuery, location="query")(view)
        return api_bp.doc(
            summary=f"Export a {scope} (any member may; audited). Sent as an attachment with a "
            "pseudonymous file name."
        )(view)

    return decorate


def _api_export(model: Any, object_id: int, fmt: str) -> Any:
    obj = get_or_404(db(), model, object_id, api_user())
    read(S.ExportQuery, "query")  # checked here; _export reads the options as the page does
    return _export(obj, fmt, request.args, api_user(), seconds=False)


@api_bp.get("/recordings/<int:recording_id>/export.<fmt>", parameters=[FMT])
@exported("recording")
@token_required
def api_recording_export(recording_id: int, fmt: str) -> Any:
    return _api_export(Recording, recording_id, fmt)


@api_bp.get("/dyads/<int:dyad_id>/export.<fmt>", parameters=[FMT])
@exported("dyad")
@token_required
def api_dyad_export(dyad_id: int, fmt: str) -> Any:
    return _api_export(Dyad, dyad_id, fmt)


@api_bp.get("/studies/<int:study_id>/export.<fmt>", parameters=[FMT])
@exported("study")
@token_required
def api_study_export(study_id: int, fmt: str) -> Any:
    return _api_export(Study, study_id, fmt)
