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

from flask import Blueprint, current_app, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from ipr import interview, interview_takes
from ipr.access import get_or_404
from ipr.errors import IPRError, NotFound, Unauthorized
from ipr.models import Moment, RecallSession, Recording, User
from ipr.web import schemas as S
from ipr.web.api import api_user, token_required
from ipr.web.api_interview import MIMETYPES
from ipr.web.context import current_user, db, huey, storage
from ipr.web.limits import header_number
from ipr.web.media import serve
from ipr.web.openapi import ApiBlueprint, read

bp = Blueprint("interview_rec", __name__)
api_bp = ApiBlueprint(
    "api_interview_chunks", __name__, url_prefix="/api/v1", description="Interview recorder"
)


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
    return S.ErrorSchema().dump({"error": body}), exc.status, headers


def _too_large(exc: RequestEntityTooLarge) -> Any:
    db().rollback()
    mib = interview_takes.CHUNK_MAX_BYTES // 1024**2
    message = f"A chunk can be at most {mib} MiB."
    return S.ErrorSchema().dump({"error": {"code": "too_large", "message": message}}), 413


for _bp in (bp, api_bp):
    _bp.register_error_handler(IPRError, _error)
    _bp.register_error_handler(RequestEntityTooLarge, _too_large)


def _route(
    rule: str, method: str, *docs: Callable[[Any], Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the view on both doors: the recall page's (login cookie; Flask turns the dict
    a view returns into JSON) and the API's (behind its token check, documented and serialised
    by the schemas in ``docs``, which are ``api_bp`` decorators, outermost first)."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        bp.add_url_rule(rule, view.__name__, view, methods=[method])
        api_view = token_required(view)
        for decorate in reversed(docs):
            api_view = decorate(api_view)
        api_bp.route(rule, methods=[method], endpoint=view.__name__)(api_view)
        return view

    return register


def _events() -> list[Any] | None:
    """The optional ``events`` of a JSON body (an empty body: none); the domain checks each."""
    if not request.get_data():
        return None
    return read(S.TakeEventsIn).get("events")


# --- takes -------------------------------------------------------------------------------------

_TAKES = "/recall-sessions/<int:rs_id>/interview/takes"
_NOT_LED = "Not a researcher-led session"
_FINISHED = "The take is finished already (or empty)"


@_route(
    _TAKES, "POST",
    api_bp.errors(401, 403, 404, 409, c409=_NOT_LED),
    api_bp.response(201, S.Take, description="The new take"),
)  # fmt: skip
def start_take(rs_id: int) -> Any:
    """Start recording an interview of a researcher-led session

    A new, empty take to append chunks to (editor).
    """
    rs = _session(rs_id)
    return interview_takes.start(storage(), rs, _researcher()), 201


@_route(
    _TAKES, "GET",
    api_bp.errors(401, 403, 404),
    api_bp.response(200, S.TakeList, description="Open takes"),
)  # fmt: skip
def list_takes(rs_id: int) -> Any:
    """The session's takes not yet attached (recording, finishing, failed)"""
    rs = _session(rs_id)
    return {"takes": interview_takes.open_takes(storage(), rs)}


@_route(
    _TAKES + "/<take>", "GET",
    api_bp.errors(401, 403, 404),
    api_bp.response(200, S.Take, description="The take"),
)  # fmt: skip
def take_status(rs_id: int, take: str) -> Any:
    """A take's state; Upload-Offset is where the next chunk starts"""
    rs = _session(rs_id)
    info = interview_takes.take_dict(storage(), rs, take)
    return info, 200, {"Upload-Offset": str(info["offset"]), "Cache-Control": "no-store"}


@_route(
    _TAKES + "/<take>", "PATCH",
    api_bp.errors(
        400, 401, 403, 404, 409, 413,
        c400="Upload-Offset is not a byte offset",
        c409="A gap (resume from error.offset), or finished",
        c413="The chunk or the take is too large",
    ),
    api_bp.response(200, S.TakeOffset, description="Appended; the new length"),
    api_bp.input(S.UploadOffsetHeader, location="headers"),
    api_bp.doc(
        requestBody={
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    ),
)  # fmt: skip
def append_chunk(rs_id: int, take: str) -> Any:
    """Append a chunk of the interview audio at the byte Upload-Offset

    Raw bytes, at most 4 MiB. A chunk already received answers the current offset and stores
    nothing twice; a chunk past the end answers 409 offset_mismatch with the offset to resume
    from (in the body and the Upload-Offset header).
    """
    rs = _session(rs_id)
    offset = header_number("Upload-Offset", request.headers.get("Upload-Offset"))
    data = request.get_data(cache=False)
    cap = current_app.config["INTERVIEW_AUDIO_MAX_BYTES"]
    new = interview_takes.append(storage(), rs, take, offset, data, cap)
    return {"offset": new}, 200, {"Upload-Offset": str(new)}


@_route(
    _TAKES + "/<take>/events", "PUT",
    api_bp.errors(401, 403, 404, 409, 422, c409=_FINISHED),
    api_bp.response(200, S.TakeEventCount, description="Saved"),
    api_bp.input(S.TakeEventsIn),
)  # fmt: skip
def put_events(rs_id: int, take: str) -> Any:
    """Replace the take's player events

    ``[{"type": "play"|"pause"|"seek"|"mark"|"stop", "video_ms", "audio_ms", "moment_id"?}]``,
    checked fully when the take is attached.
    """
    rs = _session(rs_id)
    return {"events": interview_takes.save_events(storage(), rs, take, _events())}


@_route(
    _TAKES + "/<take>/finish", "POST",
    api_bp.errors(401, 403, 404, 409, 422, c409=_FINISHED),
    api_bp.response(202, S.Take, description="Queued"),
    api_bp.input(S.TakeEventsIn),
)  # fmt: skip
def finish_take(rs_id: int, take: str) -> Any:
    """The interview recording ended: attach the take

    Stores the final events (optional) and queues the worker that remuxes, probes and
    attaches the take as the session's interview audio (then GET /recall-sessions/{rs_id} has
    its segments).
    """
    rs = _session(rs_id)
    return interview_takes.finish(db(), huey(), storage(), rs, take, _events()), 202


@_route(
    _TAKES + "/<take>", "DELETE",
    api_bp.errors(401, 403, 404),
    api_bp.response(204, description="Discarded"),
)  # fmt: skip
def discard_take(rs_id: int, take: str) -> Any:
    """Discard a take and its bytes (editor)"""
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
