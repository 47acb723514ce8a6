"""The interview recorder's routes: takes recorded in the browser, uploaded in chunks.

Two doors to the same views (domain: ``ipr.interview_takes``):

- ``/recall-sessions/<id>/interview/...`` for the recall page of a researcher-led session:
  the researcher's login cookie and the CSRF header, answered in JSON;
- ``/api/v1/recall-sessions/<id>/interview/...`` for a lab's own recorder: the API token.

Both need an editor of the study. ``GET /recall-sessions/<id>/interview.audio`` serves the
attached interview audio to the researcher's pages (the timeline's *Play the interview here*).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from ipr import interview, interview_takes
from ipr.access import get_or_404
from ipr.errors import IPRError, NotFound, Unauthorized, ValidationError
from ipr.models import Moment, RecallSession, Recording, User
from ipr.web.api import api_user, token_required
from ipr.web.api_interview import MIMETYPES
from ipr.web.context import current_user, db, huey, storage
from ipr.web.limits import header_number
from ipr.web.media import serve
from ipr.web.openapi import _errors, _id, _json, _ref

bp = Blueprint("interview_rec", __name__)
api_bp = Blueprint("api_interview_chunks", __name__, url_prefix="/api/v1")


def _researcher() -> User:
    if request.blueprint == api_bp.name:
        return api_user()
    user = current_user()
    if user is None:
        raise Unauthorized("Log in again: your login has ended.")
    return user


def _session(rs_id: int, role: str = "editor") -> RecallSession:
    return get_or_404(db(), RecallSession, rs_id, _researcher(), role)


def _error(exc: IPRError) -> Any:
    db().rollback()
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, interview_takes.OffsetMismatch):
        body["offset"] = exc.offset
        headers["Upload-Offset"] = str(exc.offset)
    if exc.field:
        body["field"] = exc.field
    return jsonify({"error": body}), exc.status, headers


def _too_large(exc: RequestEntityTooLarge) -> Any:
    db().rollback()
    mib = interview_takes.CHUNK_MAX_BYTES // 1024**2
    message = f"A chunk can be at most {mib} MiB."
    return jsonify({"error": {"code": "too_large", "message": message}}), 413


for _bp in (bp, api_bp):
    _bp.register_error_handler(IPRError, _error)
    _bp.register_error_handler(RequestEntityTooLarge, _too_large)


def _route(rule: str, methods: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the view on both doors (the API's behind its token check)."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        bp.add_url_rule(rule, view.__name__, view, methods=methods)
        api_bp.add_url_rule(rule, view.__name__, token_required(view), methods=methods)
        return view

    return register


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and not request.get_data():
        return {}
    if not isinstance(data, dict):
        raise ValidationError("Send a JSON object.")
    return data


# --- takes -------------------------------------------------------------------------------------

_TAKES = "/recall-sessions/<int:rs_id>/interview/takes"


@_route(_TAKES, ["POST"])
def start_take(rs_id: int) -> Any:
    rs = _session(rs_id)
    return jsonify(interview_takes.start(storage(), rs, _researcher())), 201


@_route(_TAKES, ["GET"])
def list_takes(rs_id: int) -> Any:
    rs = _session(rs_id)
    return jsonify({"takes": interview_takes.open_takes(storage(), rs)})


@_route(_TAKES + "/<take>", ["GET"])
def take_status(rs_id: int, take: str) -> Any:
    rs = _session(rs_id)
    info = interview_takes.take_dict(storage(), rs, take)
    return jsonify(info), 200, {"Upload-Offset": str(info["offset"]), "Cache-Control": "no-store"}


@_route(_TAKES + "/<take>", ["PATCH"])
def append_chunk(rs_id: int, take: str) -> Any:
    """Raw bytes (any content type; application/octet-stream) at ``Upload-Offset``."""
    rs = _session(rs_id)
    offset = header_number("Upload-Offset", request.headers.get("Upload-Offset"))
    data = request.get_data(cache=False)
    cap = current_app.config["INTERVIEW_AUDIO_MAX_BYTES"]
    new = interview_takes.append(storage(), rs, take, offset, data, cap)
    return jsonify({"offset": new}), 200, {"Upload-Offset": str(new)}


@_route(_TAKES + "/<take>/events", ["PUT"])
def put_events(rs_id: int, take: str) -> Any:
    rs = _session(rs_id)
    n = interview_takes.save_events(storage(), rs, take, _json_body().get("events"))
    return jsonify({"events": n})


@_route(_TAKES + "/<take>/finish", ["POST"])
def finish_take(rs_id: int, take: str) -> Any:
    rs = _session(rs_id)
    events = _json_body().get("events")
    return jsonify(interview_takes.finish(db(), huey(), storage(), rs, take, events)), 202


@_route(_TAKES + "/<take>", ["DELETE"])
def discard_take(rs_id: int, take: str) -> Any:
    rs = _session(rs_id)
    interview_takes.discard(storage(), rs, take)
    return "", 204


# --- the attached audio, for the researcher's pages ------------------------------------------


@bp.get("/recall-sessions/<int:rs_id>/interview.audio")
def audio(rs_id: int) -> Any:
    rs = _session(rs_id, "viewer")
    found = interview.get_audio(db(), rs)
    if found is None:
        raise NotFound("This recall session has no interview audio.")
    ext = found.storage_name.rpartition(".")[2]
    return serve(interview.audio_path(storage(), rs, found), MIMETYPES[ext])


def recording_interviews(rec: Recording) -> list[dict[str, Any]]:
    """For the timeline: each recall session of ``rec`` with interview audio, its audio URL
    (cookie door) and each stop's segment."""
    out = []
    sessions = db().scalars(
        select(RecallSession).where(RecallSession.recording_id == rec.id).order_by(RecallSession.id)
    )
    for rs in sessions:
        found = interview.get_audio(db(), rs)
        if found is None:
            continue
        segs = interview.segments(found.events, found.duration_ms)
        rows = db().execute(
            select(Moment.id, Moment.t_ms).where(
                Moment.id.in_([s.moment_id for s in segs]), Moment.deleted_at.is_(None)
            )
        )
        t_ms = {mid: t for mid, t in rows}
        out.append(
            {
                "recall_session_id": rs.id,
                "participant": rs.participant.code,
                "audio_url": url_for("interview_rec.audio", rs_id=rs.id),
                "duration_ms": found.duration_ms,
                "segments": [
                    {**s.to_dict(), "t_ms": t_ms[s.moment_id]} for s in segs if s.moment_id in t_ms
                ],
            }
        )
    return out


# --- OpenAPI -----------------------------------------------------------------------------------

_TAKE = {
    "type": "object",
    "required": ["take", "offset", "status"],
    "properties": {
        "take": {"type": "string"},
        "offset": {"type": "integer", "minimum": 0},
        "status": {"enum": list(interview_takes.STATES)},
        "events": {"type": "integer"},
        "error": {"type": ["string", "null"]},
        "job_id": {"type": ["integer", "null"]},
    },
}
_EVENTS_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"events": {"type": "array", "items": {"type": "object"}}},
            }
        }
    }
}


def chunk_paths() -> dict[str, Any]:
    """The OpenAPI description of the API door's routes (merged into ipr.web.openapi)."""
    rs = [_id("rs_id")]
    take = [*rs, {"name": "take", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/recall-sessions/{rs_id}/interview/takes": {
            "parameters": rs,
            "post": {
                "summary": "Start recording an interview of a researcher-led session (editor): "
                "a new, empty take to append chunks to.",
                "responses": {
                    "201": _json(_TAKE, "The new take"),
                    "409": _json(_ref("Error"), "Not a researcher-led session"),
                    **_errors(401, 403, 404),
                },
            },
            "get": {
                "summary": "The session's takes not yet attached (recording, finishing, failed).",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"takes": {"type": "array", "items": _TAKE}},
                        },
                        "Open takes",
                    ),
                    **_errors(401, 403, 404),
                },
            },
        },
        "/recall-sessions/{rs_id}/interview/takes/{take}": {
            "parameters": take,
            "get": {
                "summary": "A take's state; Upload-Offset is where the next chunk starts.",
                "responses": {"200": _json(_TAKE, "The take"), **_errors(401, 403, 404)},
            },
            "patch": {
                "summary": "Append a chunk (raw bytes, at most 4 MiB) at the byte Upload-Offset. "
                "A chunk already received answers the current offset and stores nothing twice; "
                "a chunk past the end answers 409 offset_mismatch with the offset to resume "
                "from (in the body and the Upload-Offset header).",
                "parameters": [
                    {
                        "name": "Upload-Offset",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],  # fmt: skip
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"offset": {"type": "integer"}}},
                        "Appended; the new length",
                    ),
                    "409": _json(_ref("Error"), "A gap (resume from error.offset), or finished"),
                    "413": _json(_ref("Error"), "The chunk or the take is too large"),
                    "400": _json(_ref("Error"), "Upload-Offset is not a byte offset"),
                    **_errors(401, 403, 404),
                },
            },
            "delete": {
                "summary": "Discard a take and its bytes (editor).",
                "responses": {"204": {"description": "Discarded"}, **_errors(401, 403, 404)},
            },
        },
        "/recall-sessions/{rs_id}/interview/takes/{take}/events": {
            "parameters": take,
            "put": {
                "summary": "Replace the take's player events, "
                '[{"type": "play"|"pause"|"seek"|"mark"|"stop", "video_ms", "audio_ms", '
                '"moment_id"?}], checked fully when the take is attached.',
                "requestBody": _EVENTS_BODY,
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"events": {"type": "integer"}}},
                        "Saved",
                    ),
                    "409": _json(_ref("Error"), "The take is finished already (or empty)"),
                    **_errors(401, 403, 404, 422),
                },
            },
        },
        "/recall-sessions/{rs_id}/interview/takes/{take}/finish": {
            "parameters": take,
            "post": {
                "summary": "The recording ended: store the final events (optional) and queue "
                "the worker that remuxes, probes and attaches the take as the session's "
                "interview audio (then GET /recall-sessions/{rs_id} has its segments).",
                "requestBody": _EVENTS_BODY,
                "responses": {
                    "202": _json(_TAKE, "Queued"),
                    "409": _json(_ref("Error"), "The take is finished already (or empty)"),
                    **_errors(401, 403, 404, 422),
                },
            },
        },
    }
