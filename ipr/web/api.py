"""The JSON API under /api/v1: Bearer tokens only, the same permission rule as the pages."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy import select

from ipr import auth, door, recall, recordings, studies
from ipr.access import get_or_404, role_in, scoped
from ipr.errors import Conflict, NotFound, Unauthorized, ValidationError
from ipr.models import Dyad, Participant, RecallSession, Recording, Study, User
from ipr.web import recall_admin
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
from ipr.web.openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")


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


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("Send a JSON object with Content-Type: application/json.")
    return data


def study_json(study: Study) -> dict[str, Any]:
    return {
        "id": study.id,
        "name": study.name,
        "description": study.description,
        "role": role_in(db(), api_user(), study.id),
        "alignment_tolerance_ms": study.alignment_tolerance_ms,
        "segmentation": {
            "strategy": study.segmentation_strategy,
            "fixed_ms": study.segment_fixed_ms,
            "min_ms": study.segment_min_ms,
            "max_ms": study.segment_max_ms,
        },
        "instructions": study.instructions,
        "language": study.language,
        "participants_can_code": study.participants_can_code,
        "allow_early_reveal": study.allow_early_reveal,
        "codebook": [
            {
                "id": c.id,
                "name": c.name,
                "colour": c.colour,
                "shortcut": c.shortcut,
                "description": c.description,
            }
            for c in study.codes
        ],
        "scales": [
            {
                "id": s.id,
                "key": s.key,
                "name": s.name,
                "min": s.min_value,
                "max": s.max_value,
                "labels": s.labels,
                "required": s.required,
            }
            for s in study.scales
        ],
    }


def participant_json(p: Participant) -> dict[str, Any]:
    return {"id": p.id, "code": p.code, "role": p.role, "dyad_id": p.dyad_id}


def dyad_json(dyad: Dyad) -> dict[str, Any]:
    t, c = dyad.participant("therapist"), dyad.participant("client")
    return {
        "id": dyad.id,
        "study_id": dyad.study_id,
        "code": dyad.code,
        "notes": dyad.notes,
        "therapist": participant_json(t) if t else None,
        "client": participant_json(c) if c else None,
    }


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document())


@bp.get("/studies")
@token_required
def list_studies() -> Any:
    rows = db().scalars(scoped(select(Study), Study, api_user()).order_by(Study.id)).all()
    return jsonify({"studies": [study_json(s) for s in rows]})


@bp.post("/studies")
@token_required
def create_study() -> Any:
    data = body()
    study = studies.create_study(db(), api_user(), str(data.get("name", "")), ip=client_ip())
    rest = {k: v for k, v in data.items() if k != "name"}
    if rest:
        studies.update_study(db(), study, api_user(), rest, ip=client_ip())
    db().commit()
    return jsonify(study_json(study)), 201


@bp.get("/studies/<int:study_id>")
@token_required
def get_study(study_id: int) -> Any:
    return jsonify(study_json(get_or_404(db(), Study, study_id, api_user())))


@bp.patch("/studies/<int:study_id>")
@token_required
def update_study(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    studies.update_study(db(), study, api_user(), body(), ip=client_ip())
    db().commit()
    return jsonify(study_json(study))


@bp.get("/studies/<int:study_id>/dyads")
@token_required
def list_dyads(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, api_user())
    return jsonify({"dyads": [dyad_json(d) for d in study.dyads]})


@bp.post("/studies/<int:study_id>/dyads")
@token_required
def create_dyad(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    data = body()
    code = data.get("code") or studies.next_dyad_code(db(), study)
    dyad = studies.create_dyad(
        db(),
        study,
        api_user(),
        str(code),
        therapist_code=data.get("therapist_code"),
        client_code=data.get("client_code"),
        ip=client_ip(),
    )
    db().commit()
    return jsonify(dyad_json(dyad)), 201


@bp.get("/dyads/<int:dyad_id>")
@token_required
def get_dyad(dyad_id: int) -> Any:
    return jsonify(dyad_json(get_or_404(db(), Dyad, dyad_id, api_user())))


@bp.patch("/dyads/<int:dyad_id>")
@token_required
def update_dyad(dyad_id: int) -> Any:
    dyad = get_or_404(db(), Dyad, dyad_id, api_user(), "editor")
    data = body()
    studies.update_dyad(
        db(), dyad, api_user(), {k: v for k, v in data.items() if k in ("code", "notes")}
    )
    db().commit()
    return jsonify(dyad_json(dyad))


@bp.get("/studies/<int:study_id>/participants")
@token_required
def list_participants(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, api_user())
    rows = db().scalars(
        select(Participant).where(Participant.study_id == study.id).order_by(Participant.id)
    )
    return jsonify({"participants": [participant_json(p) for p in rows]})


@bp.get("/participants/<int:participant_id>")
@token_required
def get_participant(participant_id: int) -> Any:
    return jsonify(participant_json(get_or_404(db(), Participant, participant_id, api_user())))


@bp.patch("/participants/<int:participant_id>")
@token_required
def update_participant(participant_id: int) -> Any:
    p = get_or_404(db(), Participant, participant_id, api_user(), "editor")
    data = body()
    if "code" in data:
        studies.rename_participant(db(), p, api_user(), str(data["code"]), ip=client_ip())
    db().commit()
    return jsonify(participant_json(p))


# --- recordings ---------------------------------------------------------------------------------


def recording_json(rec: Recording) -> dict[str, Any]:
    ready = rec.status == "ready"
    info = rec.media_info or {}
    analysis: dict[str, Any] | None = None
    if ready:
        stored = recordings.analysis(storage(), rec)
        analysis = {
            "scene_cuts_ms": stored.get("scene_cuts_ms", info.get("scene_cuts_ms", [])),
            "silences_ms": stored.get("silences_ms", info.get("silences_ms", [])),
            "motion_energy": stored.get("motion_energy", {"rate_hz": 0, "left": [], "right": []}),
        }
    job = recordings.latest_job(db(), rec)
    return {
        "id": rec.id,
        "dyad_id": rec.dyad_id,
        "study_id": rec.study_id,
        "session_label": rec.session_label,
        "original_name": rec.original_name,
        "size_bytes": rec.size_bytes,
        "sha256": rec.sha256,
        "status": rec.status,
        "error": rec.error,
        "error_code": rec.error_code,
        "stage": job.stage if job and rec.status in ("queued", "processing") else None,
        "progress": job.progress if job and rec.status in ("queued", "processing") else None,
        "duration_ms": rec.duration_ms,
        "width": rec.width,
        "height": rec.height,
        "fps": round(rec.fps, 6) if rec.fps else None,
        "has_audio": rec.has_audio,
        "media_url": url_for("media.derived", recording_id=rec.id, name="playable.mp4")
        if ready
        else None,
        "clips": [
            {
                "index": c.index,
                "start_ms": c.start_ms,
                "end_ms": c.end_ms,
                "url": url_for("media.clip", recording_id=rec.id, index=c.index, ext="mp4"),
            }
            for c in rec.clips
        ]
        if ready
        else [],
        "analysis": analysis,
    }


@bp.get("/recordings/<int:recording_id>")
@token_required
def get_recording(recording_id: int) -> Any:
    return jsonify(recording_json(get_or_404(db(), Recording, recording_id, api_user())))


@bp.delete("/recordings/<int:recording_id>")
@token_required
def delete_recording(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    recordings.delete_recording(db(), storage(), rec, api_user(), ip=client_ip())
    return "", 204


@bp.get("/dyads/<int:dyad_id>/recordings")
@token_required
def list_recordings(dyad_id: int) -> Any:
    dyad = get_or_404(db(), Dyad, dyad_id, api_user())
    return jsonify({"recordings": [recording_json(r) for r in dyad.recordings]})


@bp.post("/dyads/<int:dyad_id>/recordings")
@token_required
def upload_recording(dyad_id: int) -> Any:
    """A whole file in one multipart request (scripts); browsers use the resumable tus upload."""
    dyad = get_or_404(db(), Dyad, dyad_id, api_user(), "editor")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError(
            "Send the recording as multipart/form-data field 'file'.", field="file"
        )
    label = recordings.clean_label(request.form.get("session_label", ""))
    with tempfile.TemporaryDirectory(dir=storage().root) as tmp:
        path = Path(tmp) / "upload"
        save_bounded(upload, path, current_app.config["UPLOAD_MAX_BYTES"], "recording")
        rec = recordings.add_recording(
            db(), storage(), huey(), dyad, api_user(), label, path, upload.filename,
            move=True, ip=client_ip(),
        )  # fmt: skip
    return jsonify(recording_json(rec)), 201


# --- recall ------------------------------------------------------------------------------------


def recall_session_json(rs: RecallSession, token: str | None = None) -> dict[str, Any]:
    if rs.mode == "self":
        url = recall_admin.invitation_url(token) if token else None  # IPR_BASE_URL when set
    else:
        url = url_for("recall.page", rs_id=rs.id, _external=True)
    out = {
        "id": rs.id,
        "recording_id": rs.recording_id,
        "participant_id": rs.participant_id,
        "participant_code": rs.participant.code,
        "role": rs.participant.role,
        "mode": rs.mode,
        "status": rs.status,
        "url": url,
        "expires_at": rs.token_expires_at.isoformat(timespec="seconds") + "Z"
        if rs.token_expires_at
        else None,
        "revoked": rs.revoked_at is not None,
    }
    if token:
        out["token"] = token  # shown once, here, and never again
    return out


@bp.post("/recordings/<int:recording_id>/recall-sessions")
@token_required
def create_recall_session(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    data = body()
    participant = get_or_404(db(), Participant, data.get("participant_id"), api_user())
    rs, token = recall.create_session(
        db(),
        rec,
        participant,
        str(data.get("mode", "self")),
        api_user(),
        days=current_app.config["INVITATION_DAYS"],
        pin=data.get("pin"),
        ip=client_ip(),
    )
    db().commit()
    return jsonify(recall_session_json(rs, token)), 201


@bp.get("/recordings/<int:recording_id>/recall-sessions")
@token_required
def list_recall_sessions(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, api_user())
    rows = db().scalars(
        select(RecallSession).where(RecallSession.recording_id == rec.id).order_by(RecallSession.id)
    )
    return jsonify({"recall_sessions": [recall_session_json(rs) for rs in rows]})


@bp.post("/recordings/<int:recording_id>/reveal")
@token_required
def reveal(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    recall.reveal(db(), rec, api_user(), ip=client_ip())
    return jsonify({"recording_id": rec.id, "revealed": True})


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
def recall_device() -> Any:
    """Exchange an invitation token (and its PIN) for a device token, counted like the page."""
    rs = recall.session_for_token(db(), _bearer("Send your invitation token as Bearer."))
    if rs.pin_hash:
        pin = body().get("pin")
        if not isinstance(pin, str) or not door.prove_pin(
            db(), rs, pin, pin_policy(), ip=client_ip()
        ):
            raise Unauthorized("That PIN is not right.")
    device = door.open_device(db(), rs, kind="token", ip=client_ip())
    return jsonify({"device_token": device, "recall_session_id": rs.id}), 201


@bp.get("/recall-sessions/<int:rs_id>/moments")
def recall_moments(rs_id: int) -> Any:
    rs, researcher = recall_caller(rs_id, write=False)
    moments = [recall.moment_dict(m) for m in recall.own_moments(db(), rs)]
    revealed = None
    if researcher is None and rs.recording.revealed_at is not None:
        revealed = [recall.moment_dict(m) for m in recall.revealed_moments(db(), rs)]
    return jsonify({"moments": moments, "revealed": revealed})


@bp.post("/recall-sessions/<int:rs_id>/moments")
def recall_create_moment(rs_id: int) -> Any:
    rs, researcher = recall_caller(rs_id, write=True)
    m, created = recall.create_moment(
        db(),
        rs,
        body(),
        idempotency_key=request.headers.get("Idempotency-Key"),
        user=researcher,
        limits=moment_limits(),
    )
    return jsonify(recall.moment_dict(m)), 201 if created else 200


@bp.patch("/recall-sessions/<int:rs_id>/moments/<int:moment_id>")
def recall_update_moment(rs_id: int, moment_id: int) -> Any:
    rs, researcher = recall_caller(rs_id, write=True)
    m = recall.own_moment(db(), rs, moment_id)
    data = body()
    if "version" not in data:
        data["version"] = m.version  # a script without a version: last write wins
    try:
        recall.update_moment(db(), rs, m, data, user=researcher, limits=moment_limits())
    except Conflict as exc:
        db().rollback()
        current = recall.own_moment(db(), rs, moment_id)
        return jsonify(
            {
                "error": {"code": exc.code, "message": exc.message},
                "moment": recall.moment_dict(current),
            }
        ), 409
    return jsonify(recall.moment_dict(m))


@bp.delete("/recall-sessions/<int:rs_id>/moments/<int:moment_id>")
def recall_delete_moment(rs_id: int, moment_id: int) -> Any:
    rs, researcher = recall_caller(rs_id, write=True)
    m = recall.own_moment(db(), rs, moment_id)
    recall.delete_moment(db(), rs, m, storage(), user=researcher)
    return "", 204


@bp.delete("/dyads/<int:dyad_id>")
@token_required
def delete_dyad(dyad_id: int) -> Any:
    dyad = get_or_404(db(), Dyad, dyad_id, api_user(), "editor")
    studies.delete_dyad(db(), storage(), dyad, api_user(), ip=client_ip())
    return "", 204
