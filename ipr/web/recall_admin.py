"""The researcher's side of recall: invitations, reopening, the reveal, and coding moments."""

from __future__ import annotations

from typing import Any

import segno
from flask import Blueprint, current_app, request
from markupsafe import Markup
from sqlalchemy import select

from ipr import door, interview, invitations, recall, studies, study_texts
from ipr.access import get_or_404, role_in
from ipr.errors import Conflict, NotFound, ValidationError
from ipr.models import (
    Moment,
    Participant,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    VoiceNote,
)
from ipr.web import ranges
from ipr.web.context import client_ip, db, huey, login_required, render, storage, user

bp = Blueprint("recall_admin", __name__)


def base_url() -> str:
    """IPR_BASE_URL when set (the address participants reach), else this request's address."""
    return current_app.config["BASE_URL"] or request.url_root


def invitation_url(token: str) -> str:
    return invitations.link_url(base_url(), token)


def qr_svg(url: str) -> Markup:
    """The link as an inline SVG QR code, drawn here: no external request, no script."""
    svg = segno.make(url, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")
    return Markup(svg)  # noqa: S704 — segno's own SVG of our own URL


def email_enabled() -> bool:
    return bool(current_app.config["SMTP_URL"] and current_app.config["SMTP_FROM"])


def lanes(rec: Recording) -> list[dict[str, Any]]:
    """Both participants with their recall session and moments: the researcher sees all."""
    out = []
    sessions = {
        rs.participant_id: rs
        for rs in db().scalars(select(RecallSession).where(RecallSession.recording_id == rec.id))
    }
    notes = {
        a.moment_id: a
        for a in db().scalars(
            select(ResearcherAnnotation).where(
                ResearcherAnnotation.study_id == rec.study_id,
                ResearcherAnnotation.user_id == user().id,
            )
        )
    }
    for role in ("therapist", "client"):
        p = rec.dyad.participant(role)
        if p is None:
            continue
        rs = sessions.get(p.id)
        moments = recall.own_moments(db(), rs) if rs else []
        out.append(
            {
                "participant": p,
                "rs": rs,
                "moments": moments,
                "notes": notes,
                "link_valid": bool(rs and recall.link_valid(rs)),
                "pin_locked": bool(rs and rs.pin_hash and door.pin_locked(db(), rs)),
                "state": invitations.state(rs, rec) if rs else None,
                "last_seen": invitations.last_seen(rs) if rs else None,
                "language": study_texts.participant_language(rec.dyad.study, p),
            }
        )
    return out


def recall_context(rec: Recording) -> dict[str, Any]:
    """What the recall section of a recording needs (the recording page includes it too)."""
    study = rec.dyad.study
    both = lanes(rec)
    sessions = [lane["rs"] for lane in both if lane["rs"]]
    moment_ids = [m.id for lane in both for m in lane["moments"]]
    voiced = set(
        db().scalars(select(VoiceNote.moment_id).where(VoiceNote.moment_id.in_(moment_ids)))
    )
    both_done = len(sessions) >= 2 and all(s.status == "submitted" for s in sessions)
    return {
        "lanes": both,
        "interviews": interview.summaries(db(), [s.id for s in sessions]),
        "transcribe_enabled": bool((current_app.config.get("TRANSCRIBE_COMMAND") or "").strip()),
        "transcribe_jobs": interview.transcription_jobs(db(), rec.id),
        "distress": interview.distress_flags(db(), [s.id for s in sessions]),
        "codes": {c.id: c for c in study.codes},
        "voiced": voiced,
        "can_reveal": both_done or study.allow_early_reveal,
        "responses_exist": rec.revealed_at is not None and recall.responses_exist(db(), rec),
        "moment_times": {m.id: m.t_ms for lane in both for m in lane["moments"]},
        "new_links": {},  # a link is shown once, right after it is made (see _section)
        "email_enabled": email_enabled(),
        "email_jobs": invitations.email_jobs(db(), rec),
        "languages": study_texts.languages(study),
        "language_names": study_texts.LANGUAGES,
        "missing_texts": study_texts.missing(study),
    }


def _section(rec: Recording, status: int = 200, **extra: Any) -> Any:
    role = role_in(db(), user(), rec.study_id)
    new_links = {
        rs_id: {"url": url, "qr": qr_svg(url)} for rs_id, url in extra.pop("new_links", {}).items()
    }
    ctx = {
        "rec": rec,
        "study": rec.dyad.study,
        "dyad": rec.dyad,
        "can_edit": studies.can(role, "editor"),
        **recall_context(rec),
        "new_links": new_links,
        **extra,
    }
    return render("recordings/recording.html", "recordings/_recall.html", status=status, **ctx)


@bp.get("/moments/<int:moment_id>/voice")
@login_required
def voice(moment_id: int) -> Any:
    """A participant's voice note, for the researchers of the study."""
    m = get_or_404(db(), Moment, moment_id, user())
    note = db().scalar(select(VoiceNote).where(VoiceNote.moment_id == m.id))
    if note is None or m.deleted_at is not None:
        raise NotFound()
    path = storage().voice_path(m.recall_session.recording.storage_key, note.storage_name)
    return ranges.send_range(path, note.mime_type)


def _try(rec: Recording, action: Any, pid: int | None = None) -> Any:
    """Run a change; an error is shown in the row of participant ``pid`` when given."""
    try:
        extra = action() or {}
    except (ValidationError, Conflict) as exc:
        db().rollback()
        # htmx swaps 422 in place; the field named by the error is outlined
        return _section(rec, 422, error=exc.message, error_field=exc.field, error_pid=pid)
    db().commit()
    return _section(rec, **extra)


@bp.get("/recordings/<int:recording_id>/recall")
@login_required
def section(recording_id: int) -> Any:
    return _section(get_or_404(db(), Recording, recording_id, user()))


@bp.post("/recordings/<int:recording_id>/recall-sessions")
@login_required
def create(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")

    def action() -> dict[str, Any]:
        pid = request.form.get("participant_id", type=int)
        participant = get_or_404(db(), Participant, pid, user())
        language = request.form.get("language")
        if language in study_texts.languages(rec.dyad.study):
            participant.language = language
        rs, token = recall.create_session(
            db(),
            rec,
            participant,
            request.form.get("mode", "self"),
            user(),
            days=current_app.config["INVITATION_DAYS"],
            pin=request.form.get("pin") or None,
            ip=client_ip(),
        )
        return {"new_links": {rs.id: invitation_url(token)}} if token else {}

    return _try(rec, action, request.form.get("participant_id", type=int))


@bp.post("/recall-sessions/<int:rs_id>/link")
@login_required
def reissue(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")

    def action() -> dict[str, Any]:
        if rs.mode != "self":
            raise ValidationError("A researcher-led session has no link.")
        token = recall.issue_link(
            db(),
            rs,
            user(),
            days=current_app.config["INVITATION_DAYS"],
            pin=request.form.get("pin", ""),
            ip=client_ip(),
        )
        return {"new_links": {rs.id: invitation_url(token)}}

    return _try(rs.recording, action, rs.participant_id)


@bp.post("/recall-sessions/<int:rs_id>/email")
@login_required
def email(rs_id: int) -> Any:
    """Queue an invitation or reminder e-mail with a fresh link (the worker sends it)."""
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    if not email_enabled():
        raise NotFound()

    def action() -> dict[str, Any]:
        kind = request.form.get("kind", "invitation")
        language = request.form.get("language")
        if language in study_texts.languages(rs.recording.dyad.study):
            rs.participant.language = language  # the e-mail and the page speak it
        invitations.queue_email(
            db(), huey(), rs, user(), kind=kind, to=request.form.get("email", ""),
            base_url=base_url(), ip=client_ip(),
        )  # fmt: skip
        return {"notice": (rs.id, f"The {kind} to {rs.participant.code} is queued.")}

    return _try(rs.recording, action, rs.participant_id)


@bp.post("/recall-sessions/<int:rs_id>/revoke")
@login_required
def revoke(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    return _try(
        rs.recording,
        lambda: recall.revoke_link(db(), rs, user(), ip=client_ip()),
        rs.participant_id,
    )


@bp.post("/recall-sessions/<int:rs_id>/unlock")
@login_required
def unlock(rs_id: int) -> Any:
    """Lift the lock that too many wrong PINs put on a participant's link (audited)."""
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    return _try(rs.recording, lambda: door.unlock(db(), rs, user(), ip=client_ip()))


@bp.post("/recall-sessions/<int:rs_id>/reopen")
@login_required
def reopen(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    return _try(rs.recording, lambda: recall.reopen(db(), rs, user(), ip=client_ip()))


@bp.post("/recordings/<int:recording_id>/reveal")
@login_required
def reveal(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    if request.form.get("hide"):
        return _try(rec, lambda: recall.hide(db(), rec, user(), ip=client_ip()))
    return _try(rec, lambda: recall.reveal(db(), rec, user(), ip=client_ip()))


@bp.post("/moments/<int:moment_id>/correction")
@login_required
def correct(moment_id: int) -> Any:
    """A researcher corrects a participant's blind moment after the reveal (marked, audited)."""
    m = get_or_404(db(), Moment, moment_id, user(), "editor")
    text = request.form.get("text", "")
    return _try(
        m.recall_session.recording,
        lambda: recall.correct_moment(db(), m, user(), {"text": text}) and None,
    )


@bp.post("/moments/<int:moment_id>/annotation")
@login_required
def annotate(moment_id: int) -> Any:
    m = get_or_404(db(), Moment, moment_id, user(), "editor")
    rec = m.recall_session.recording

    def action() -> None:
        codes = [int(c) for c in request.form.getlist("codes") if c.isdigit()]
        note = request.form.get("note")
        recall.annotate(db(), m, user(), codes=codes, note=note)

    return _try(rec, action)


@bp.post("/recall-sessions/<int:rs_id>/transcript")
@login_required
def import_transcript(rs_id: int) -> Any:
    """Import the interview's transcript from the recording page (the API's domain call, audited
    there); the participant's row answers with what went where, or the problems (nothing saved)."""
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    rec, upload = rs.recording, request.files.get("file")
    limit = current_app.config["IMPORT_MAX_BYTES"]
    data = upload.stream.read(limit + 1) if upload else b""
    try:
        if not upload or not upload.filename:
            raise ValidationError("Choose a transcript file (.vtt, .srt, .txt or .eaf).")
        if len(data) > limit:
            raise ValidationError("The transcript is larger than this server accepts.")
        result = interview.import_transcript(
            db(), rs, data, upload.filename, user(), ip=client_ip(),
            tier=request.form.get("tier", "").strip() or None,
        )  # fmt: skip
    except (ValidationError, Conflict) as exc:
        db().rollback()
        failed = (rs.id, exc.message, getattr(exc, "problems", []))
        return _section(rec, 422, transcript_error=failed)  # htmx swaps 422 in place
    return _section(rec, transcript_result=(rs.id, result))


@bp.post("/recall-sessions/<int:rs_id>/transcribe")
@login_required
def transcribe(rs_id: int) -> Any:
    """Queue the local model's transcription of the interview audio (the API's domain call,
    audited there); the row then polls the job. Without IPR_TRANSCRIBE_COMMAND or interview
    audio the row says why (422) and nothing is queued."""
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    try:
        interview.queue_transcription(
            db(), huey(), rs, user(), command=current_app.config.get("TRANSCRIBE_COMMAND"),
            ip=client_ip(),
        )  # fmt: skip
    except Conflict as exc:
        db().rollback()
        return _section(rs.recording, 422, transcribe_error=(rs.id, exc.message))
    return _section(rs.recording)
