"""The JSON API under /api/v1: Bearer tokens only, the same permission rule as the pages."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
from flask import Response, current_app, g, jsonify, make_response, request
from sqlalchemy import select

from ipr import auth, door, recall, recordings, studies
from ipr.access import get_or_404, scoped
from ipr.errors import Conflict, NotFound, Unauthorized
from ipr.models import Dyad, Participant, RecallSession, Recording, Study, User
from ipr.web import schemas as S
from ipr.web.context import (
    client_ip,
    db,
    huey,
    moment_limits,
    pin_policy,
    rate_limiter,
    storage,
)
from ipr.web.limits import save_bounded
from ipr.web.openapi import ApiBlueprint, openapi_document, read

bp = ApiBlueprint(
    "api", __name__, url_prefix="/api/v1", description="Studies, dyads, recordings, recall"
)


def no_content() -> Response:
    return Response(status=204)


def api_user() -> User:
    return g.api_user


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """No valid Bearer token -> 401; cookies are never accepted here (so no CSRF exposure)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send an API token as 'Authorization: Bearer <token>'.")
        found = auth.user_for_api_token(db(), token.strip())
        if found is None:
            raise Unauthorized("This API token is not valid or has been revoked.")
        g.api_user = found
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            rate_limiter().hit(f"user:{found.id}")
        return view(*args, **kwargs)

    return wrapped


def openapi() -> Any:
    return jsonify(openapi_document())


# not a documented operation itself: added past flask-smorest's route registry
flask.Blueprint.add_url_rule(bp, "/openapi.json", "openapi", openapi, methods=["GET"])


@bp.get("/studies")
@bp.errors(401)
@bp.response(200, S.StudyList, description="Studies you are a member of")
@token_required
def list_studies() -> Any:
    """Studies you are a member of"""
    rows = db().scalars(scoped(select(Study), Study, api_user()).order_by(Study.id)).all()
    return {"studies": rows}


@bp.post("/studies")
@bp.errors(401, 422)
@bp.response(201, S.StudySchema, description="Created; you are its owner")
@token_required
@bp.input(S.StudyCreateIn)
def create_study() -> Any:
    """Create a study (you become its owner)"""
    data = read(S.StudyCreateIn)
    study = studies.create_study(db(), api_user(), data.pop("name"), ip=client_ip())
    if data:
        studies.update_study(db(), study, api_user(), data, ip=client_ip())
    db().commit()
    return study


@bp.get("/studies/<int:study_id>")
@bp.errors(401, 404)
@bp.response(200, S.StudySchema)
@token_required
def get_study(study_id: int) -> Any:
    """One study with its codebook and scales"""
    return get_or_404(db(), Study, study_id, api_user())


@bp.patch("/studies/<int:study_id>")
@bp.errors(401, 403, 404, 422)
@bp.response(200, S.StudySchema)
@token_required
@bp.input(S.StudyIn)
def update_study(study_id: int) -> Any:
    """Change a study's settings (editor or owner)"""
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    data = read(S.StudyIn)
    studies.update_study(db(), study, api_user(), data, ip=client_ip())
    db().commit()
    return study


@bp.get("/studies/<int:study_id>/dyads")
@bp.errors(401, 404)
@bp.response(200, S.DyadList)
@token_required
def list_dyads(study_id: int) -> Any:
    """The study's dyads"""
    return {"dyads": get_or_404(db(), Study, study_id, api_user()).dyads}


@bp.post("/studies/<int:study_id>/dyads")
@bp.errors(401, 403, 404, 422)
@bp.response(201, S.DyadSchema, description="Created")
@token_required
@bp.input(S.DyadCreateIn)
def create_dyad(study_id: int) -> Any:
    """Create a dyad with its therapist and client (codes T<n>/C<n>)"""
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    data = read(S.DyadCreateIn)
    dyad = studies.create_dyad(
        db(),
        study,
        api_user(),
        data.get("code") or studies.next_dyad_code(db(), study),
        therapist_code=data.get("therapist_code"),
        client_code=data.get("client_code"),
        ip=client_ip(),
    )
    db().commit()
    return dyad


@bp.get("/dyads/<int:dyad_id>")
@bp.errors(401, 404)
@bp.response(200, S.DyadSchema)
@token_required
def get_dyad(dyad_id: int) -> Any:
    """One dyad"""
    return get_or_404(db(), Dyad, dyad_id, api_user())


@bp.patch("/dyads/<int:dyad_id>")
@bp.errors(401, 403, 404, 422)
@bp.response(200, S.DyadSchema)
@token_required
@bp.input(S.DyadIn)
def update_dyad(dyad_id: int) -> Any:
    """Change a dyad's code or notes"""
    dyad = get_or_404(db(), Dyad, dyad_id, api_user(), "editor")
    data = read(S.DyadIn)
    studies.update_dyad(db(), dyad, api_user(), data)
    db().commit()
    return dyad


@bp.delete("/dyads/<int:dyad_id>")
@bp.errors(401, 403, 404)
@bp.response(204, description="Deleted")
@token_required
def delete_dyad(dyad_id: int) -> Any:
    """Delete a dyad with its participants, recordings, moments and files"""
    dyad = get_or_404(db(), Dyad, dyad_id, api_user(), "editor")
    studies.delete_dyad(db(), storage(), dyad, api_user(), ip=client_ip())
    return no_content()


@bp.get("/studies/<int:study_id>/participants")
@bp.errors(401, 404)
@bp.response(200, S.ParticipantList)
@token_required
def list_participants(study_id: int) -> Any:
    """The study's participants (pseudonymous codes only)"""
    study = get_or_404(db(), Study, study_id, api_user())
    rows = db().scalars(
        select(Participant).where(Participant.study_id == study.id).order_by(Participant.id)
    )
    return {"participants": rows}


@bp.get("/participants/<int:participant_id>")
@bp.errors(401, 404)
@bp.response(200, S.ParticipantSchema)
@token_required
def get_participant(participant_id: int) -> Any:
    """One participant"""
    return get_or_404(db(), Participant, participant_id, api_user())


@bp.patch("/participants/<int:participant_id>")
@bp.errors(401, 403, 404, 422)
@bp.response(200, S.ParticipantSchema)
@token_required
@bp.input(S.ParticipantIn)
def update_participant(participant_id: int) -> Any:
    """Change a participant's code"""
    p = get_or_404(db(), Participant, participant_id, api_user(), "editor")
    data = read(S.ParticipantIn)
    if "code" in data:
        studies.rename_participant(db(), p, api_user(), data["code"], ip=client_ip())
    db().commit()
    return p


# --- recordings ---------------------------------------------------------------------------------


@bp.get("/recordings/<int:recording_id>")
@bp.errors(401, 404)
@bp.response(200, S.RecordingSchema)
@token_required
def get_recording(recording_id: int) -> Any:
    """A recording: status, facts, clips and analysis"""
    return get_or_404(db(), Recording, recording_id, api_user())


@bp.delete("/recordings/<int:recording_id>")
@bp.errors(401, 403, 404)
@bp.response(204, description="Deleted")
@token_required
def delete_recording(recording_id: int) -> Any:
    """Delete a recording with every derived file and row"""
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    recordings.delete_recording(db(), storage(), rec, api_user(), ip=client_ip())
    return no_content()


@bp.get("/dyads/<int:dyad_id>/recordings")
@bp.errors(401, 404)
@bp.response(200, S.RecordingList)
@token_required
def list_recordings(dyad_id: int) -> Any:
    """The dyad's session recordings"""
    return {"recordings": get_or_404(db(), Dyad, dyad_id, api_user()).recordings}


@bp.post("/dyads/<int:dyad_id>/recordings")
@bp.errors(401, 403, 404, 413, 422)
@bp.response(201, S.RecordingSchema, description="Queued")
@token_required
@bp.input(S.RecordingUploadIn, location="files")
def upload_recording(dyad_id: int) -> Any:
    """Upload a whole recording

    Multipart: file, session_label; processing is queued. Browsers use the resumable tus
    endpoint /dyads/{dyad_id}/uploads.
    """
    dyad = get_or_404(db(), Dyad, dyad_id, api_user(), "editor")
    form = read(S.RecordingUploadIn, "files")
    upload = form["file"]
    label = recordings.clean_label(form["session_label"])
    with tempfile.TemporaryDirectory(dir=storage().root) as tmp:
        path = Path(tmp) / "upload"
        save_bounded(upload, path, current_app.config["UPLOAD_MAX_BYTES"], "recording")
        return recordings.add_recording(
            db(), storage(), huey(), dyad, api_user(), label, path, upload.filename,
            move=True, ip=client_ip(),
        )  # fmt: skip


# --- recall ------------------------------------------------------------------------------------


@bp.post("/recordings/<int:recording_id>/recall-sessions")
@bp.errors(401, 403, 404, 422)
@bp.response(201, S.NewRecallSession, description="Created")
@token_required
@bp.input(S.RecallSessionIn)
def create_recall_session(recording_id: int) -> Any:
    """Start recall for one participant

    A self-guided session gets its link and token in this answer only.
    """
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    data = read(S.RecallSessionIn)
    participant = get_or_404(db(), Participant, data["participant_id"], api_user())
    rs, token = recall.create_session(
        db(),
        rec,
        participant,
        data["mode"],
        api_user(),
        days=current_app.config["INVITATION_DAYS"],
        pin=data.get("pin"),
        ip=client_ip(),
    )
    db().commit()
    return S.WithToken(rs, token)


@bp.get("/recordings/<int:recording_id>/recall-sessions")
@bp.errors(401, 404)
@bp.response(200, S.RecallSessionList)
@token_required
def list_recall_sessions(recording_id: int) -> Any:
    """The recording's recall sessions (no tokens)"""
    rec = get_or_404(db(), Recording, recording_id, api_user())
    rows = db().scalars(
        select(RecallSession).where(RecallSession.recording_id == rec.id).order_by(RecallSession.id)
    )
    return {"recall_sessions": rows}


@bp.post("/recordings/<int:recording_id>/reveal")
@bp.errors(401, 403, 404, 422)
@bp.response(200, S.Revealed)
@token_required
def reveal(recording_id: int) -> Any:
    """Reveal: let each participant see the other's moments

    Audited; only after both have finished unless the study allows earlier.
    """
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    recall.reveal(db(), rec, api_user(), ip=client_ip())
    return {"recording_id": rec.id, "revealed": True}


def _bearer(message: str) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(message)
    return token


def recall_caller(rs_id: int, *, write: bool) -> tuple[RecallSession, User | None]:
    """A participant with a device token (or the link itself when it has no PIN), or a
    researcher with an API token.

    A participant's credential opens exactly its own recall session: any other id is 404. A
    PIN-protected link is refused here until the PIN is proved at ``POST /recall/devices``. A
    researcher may read any session of their studies, and write only researcher-led ones.
    """
    token = _bearer("Send your device or invitation token as 'Authorization: Bearer <token>'.")
    if token.startswith("ipr_"):
        researcher = auth.user_for_api_token(db(), token)
        if researcher is None:
            raise Unauthorized("This API token is not valid or has been revoked.")
        rs = get_or_404(db(), RecallSession, rs_id, researcher, "editor" if write else "viewer")
        if write and rs.mode != "researcher":
            raise NotFound()
        if write:
            rate_limiter().hit(f"user:{researcher.id}")
        return rs, researcher
    rs = door.check_token(db(), rs_id, token)
    if write:
        rate_limiter().hit(f"rs:{rs.id}")
    return rs, None


@bp.post("/recall/devices")
@bp.errors(401, 422, 429, c429="Wait, or locked after too many wrong PINs (Retry-After)")
@bp.response(201, S.Device, description="Created")
@bp.input(S.DeviceIn, required=False)
def recall_device() -> Any:
    """Exchange an invitation for a device token

    The invitation token as Bearer and, when the link has one, its PIN buy a device token (shown
    once). Wrong PINs are counted per invitation and per address with growing waits (429,
    Retry-After) and lock the invitation after a number of failures until a researcher unlocks
    it. Stop, revoke and a new link end every device token.
    """
    rs = recall.session_for_token(db(), _bearer("Send your invitation token as Bearer."))
    if rs.pin_hash:
        pin = read(S.DeviceIn).get("pin")
        if not isinstance(pin, str) or not door.prove_pin(
            db(), rs, pin, pin_policy(), ip=client_ip()
        ):
            raise Unauthorized("That PIN is not right.")
    device = door.open_device(db(), rs, kind="token", ip=client_ip())
    return {"device_token": device, "recall_session_id": rs.id}


PARTICIPANT_NOTE = (
    " Participants send a device token from POST /recall/devices (or, for a link without a "
    "PIN, the invitation token itself) as the Bearer token and reach only their own recall "
    "session; a PIN-protected invitation token alone answers 401 pin_required. Researchers "
    "may read any and write researcher-led ones. Writes beyond the per-minute limit answer "
    "429 (Retry-After); a session at its moment limit answers 400 limit_reached."
)


@bp.get("/recall-sessions/<int:rs_id>/moments")
@bp.errors(401, 404)
@bp.response(200, S.MomentList)
@bp.doc(description="Your own moments (and the other's, once revealed)." + PARTICIPANT_NOTE)
def recall_moments(rs_id: int) -> Any:
    """A recall session's moments"""
    rs, researcher = recall_caller(rs_id, write=False)
    moments = [recall.moment_dict(m) for m in recall.own_moments(db(), rs)]
    revealed = None
    if researcher is None and rs.recording.revealed_at is not None:
        revealed = [recall.moment_dict(m) for m in recall.revealed_moments(db(), rs)]
    return {"moments": moments, "revealed": revealed}


@bp.post("/recall-sessions/<int:rs_id>/moments")
@bp.errors(401, 404, 409, 422, c409="Finished before the reveal: locked until reopened")
@bp.alt_response(200, schema=S.MomentSchema, description="Already saved (a retry)", success=True)
@bp.response(201, S.MomentSchema, description="Created")
@bp.input(S.MomentCreateIn)
@bp.input(S.IdempotencyHeader, location="headers")
@bp.doc(
    description="Mark a moment. Send an Idempotency-Key header: a retry with the same key "
    "returns the first moment (200) instead of a duplicate." + PARTICIPANT_NOTE
)
def recall_create_moment(rs_id: int) -> Any:
    """Mark a moment"""
    rs, researcher = recall_caller(rs_id, write=True)
    data, headers = read(S.MomentCreateIn), read(S.IdempotencyHeader, "headers")
    m, created = recall.create_moment(
        db(),
        rs,
        data,
        idempotency_key=headers.get("idempotency_key"),
        user=researcher,
        limits=moment_limits(),
    )
    return recall.moment_dict(m), 201 if created else 200


@bp.patch("/recall-sessions/<int:rs_id>/moments/<int:moment_id>")
@bp.errors(401, 404, 422)
@bp.alt_response(
    409,
    schema=S.StaleMoment,
    description="Changed elsewhere, locked, or a blind moment frozen by the reveal",
)
@bp.response(200, S.MomentSchema)
@bp.input(S.MomentIn)
def recall_update_moment(rs_id: int, moment_id: int) -> Any:
    """Change a moment; a stale version answers 409 with the current one"""
    rs, researcher = recall_caller(rs_id, write=True)
    m = recall.own_moment(db(), rs, moment_id)
    data = read(S.MomentIn)
    data.setdefault("version", m.version)  # a script without a version: last write wins
    try:
        recall.update_moment(db(), rs, m, data, user=researcher, limits=moment_limits())
    except Conflict as exc:
        db().rollback()
        current = recall.moment_dict(recall.own_moment(db(), rs, moment_id))
        stale = {"error": {"code": exc.code, "message": exc.message}, "moment": current}
        return make_response(S.StaleMoment().dump(stale), 409)
    return recall.moment_dict(m)


@bp.delete("/recall-sessions/<int:rs_id>/moments/<int:moment_id>")
@bp.errors(401, 404, 409, c409="Locked, or a blind moment frozen by the reveal")
@bp.response(204, description="Deleted")
def recall_delete_moment(rs_id: int, moment_id: int) -> Any:
    """Delete a moment (kept in the edit history, gone from every view)"""
    rs, researcher = recall_caller(rs_id, write=True)
    m = recall.own_moment(db(), rs, moment_id)
    recall.delete_moment(db(), rs, m, storage(), user=researcher)
    return no_content()
