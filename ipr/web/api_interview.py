"""The recall interview's routes under /api/v1 (the domain is ``ipr.interview``).

Researchers call with their API token and go through ``ipr.access`` like every other route;
the participant's distress flag goes through the one door (``api.recall_caller``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import current_app

from ipr import interview
from ipr.access import get_or_404
from ipr.errors import NotFound, ValidationError
from ipr.models import Participant, RecallSession, Study
from ipr.web import schemas as S
from ipr.web.api import api_user, recall_caller, token_required
from ipr.web.context import client_ip, db, huey, storage
from ipr.web.limits import save_bounded
from ipr.web.media import serve
from ipr.web.openapi import ApiBlueprint, problems, read
from ipr.web.schemas import ErrorSchema

bp = ApiBlueprint(
    "api_interview", __name__, url_prefix="/api/v1", description="The recall interview"
)
PROBLEMS = "Invalid request, or problems listed in error.problems"

MIMETYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
}


def smtp_configured() -> bool:
    return bool(current_app.config.get("SMTP_URL") and current_app.config.get("SMTP_FROM"))


@bp.post("/recall-sessions/<int:rs_id>/interview-audio")
@bp.errors(
    401,
    403,
    404,
    409,
    413,
    c409="Not a researcher-led session",
    c413="The audio is larger than IPR_INTERVIEW_AUDIO_MAX_BYTES",
)
@bp.alt_response(422, schema=ErrorSchema, description=PROBLEMS)
@bp.response(201, S.RecallSessionDetail, description="Attached")
@token_required
@bp.input(S.InterviewAudioIn, location="files")
def upload_audio(rs_id: int) -> Any:
    """Attach the interview audio

    The interview of a researcher-led session, recorded on another device (editor; audited),
    aligned by the player events. A second upload replaces the first.
    """
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    form = read(S.InterviewAudioIn, "files")
    with tempfile.TemporaryDirectory(dir=storage().root) as tmp:
        path = Path(tmp) / "interview"
        cap = current_app.config["INTERVIEW_AUDIO_MAX_BYTES"]
        save_bounded(form["file"], path, cap, "interview audio")
        try:
            interview.attach_audio(
                db(), storage(), rs, path, form["events"], api_user(), ip=client_ip()
            )
        except interview.InterviewProblems as exc:
            return problems(exc)
    return rs


@bp.get("/recall-sessions/<int:rs_id>")
@bp.errors(401, 404)
@bp.response(200, S.RecallSessionDetail, description="The recall session")
@token_required
def get_recall_session(rs_id: int) -> Any:
    """One recall session with its interview and transcripts

    The interview: audio URL, duration, each stop's segment of the interview audio; the
    transcripts: each moment's utterances.
    """
    return get_or_404(db(), RecallSession, rs_id, api_user())


@bp.get("/recall-sessions/<int:rs_id>/interview-audio")
@bp.errors(401, 404)
@bp.response(
    200, {"type": "string", "format": "binary"}, content_type="audio/*", description="The audio"
)
@bp.alt_response(206, description="The requested byte range", success=True)
@token_required
def interview_audio(rs_id: int) -> Any:
    """The interview audio (Bearer token; Range requests answered with 206)."""
    rs = get_or_404(db(), RecallSession, rs_id, api_user())
    audio = interview.get_audio(db(), rs)
    if audio is None:
        raise NotFound("This recall session has no interview audio.")
    ext = audio.storage_name.rpartition(".")[2]
    return serve(interview.audio_path(storage(), rs, audio), MIMETYPES[ext])


@bp.post("/recall-sessions/<int:rs_id>/transcript")
@bp.errors(401, 403, 404, 409, c409="No interview audio yet")
@bp.alt_response(422, schema=ErrorSchema, description=PROBLEMS)
@bp.response(201, S.TranscriptImported, description="Imported")
@token_required
@bp.input(S.TranscriptIn, location="files")
def import_transcript(rs_id: int) -> Any:
    """Import the interview's transcript

    WebVTT, SRT, ELAN .eaf, or '[hh:mm:ss] text' lines; each utterance is attached to the stop
    whose interview segment contains its start. From an ELAN file the tier named 'tier' is read,
    else the tier with the most annotations (the answer names it). Replaces the previous
    transcript (editor; audited).
    """
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    form = read(S.TranscriptIn, "files")
    upload = form["file"]
    limit = current_app.config["IMPORT_MAX_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ValidationError("The transcript is larger than this server accepts.", field="file")
    try:
        result = interview.import_transcript(
            db(), rs, data, upload.filename, api_user(), ip=client_ip(),
            tier=form["tier"] or None,
        )  # fmt: skip
    except interview.InterviewProblems as exc:
        return problems(exc)
    return {"recall_session_id": rs.id, **result}


@bp.post("/recall-sessions/<int:rs_id>/distress")
@bp.errors(401, 404)
@bp.response(200, S.Distress, description="Paused")
def api_distress(rs_id: int) -> Any:
    """Flag distress: pause the session

    The participant flags 'I need to stop / this is distressing': the session pauses, the owners
    are told (audited; e-mail when configured), and the answer carries the study's support text.
    """
    rs, researcher = recall_caller(rs_id, write=True)
    return interview.flag_distress(
        db(), huey(), rs, smtp=smtp_configured(), by_researcher=researcher, ip=client_ip()
    )


@bp.put("/studies/<int:study_id>/support-text")
@bp.errors(401, 403, 404, 422)
@bp.response(200, S.SupportText, description="Saved")
@token_required
@bp.input(S.SupportTextIn)
def put_support_text(study_id: int) -> Any:
    """Set the study's support text in one language

    Editor; an empty text brings back the default.
    """
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    data = read(S.SupportTextIn)
    lang = data["language"]
    interview.set_support_text(study, lang, data["text"])
    db().commit()
    return {"language": lang, "support_text": interview.support_text(study, lang)}


@bp.get("/participants/<int:participant_id>/consent")
@bp.errors(401, 404)
@bp.response(200, S.ConsentList, description="Records")
@token_required
def list_consent(participant_id: int) -> Any:
    """The participant's consent records."""
    p = get_or_404(db(), Participant, participant_id, api_user())
    return {"consent": [interview.consent_dict(c) for c in interview.consents(db(), p)]}


@bp.post("/participants/<int:participant_id>/consent")
@bp.errors(401, 403, 404, 422)
@bp.response(201, S.Consent, description="Recorded")
@token_required
@bp.input(S.ConsentIn)
def record_consent(participant_id: int) -> Any:
    """Record consent

    The information sheet's version and the date (editor; audited; the recorder is the caller).
    """
    p = get_or_404(db(), Participant, participant_id, api_user(), "editor")
    data = read(S.ConsentIn)
    record = interview.record_consent(db(), p, data, api_user(), ip=client_ip())
    return interview.consent_dict(record)


@bp.post("/participants/<int:participant_id>/withdraw")
@bp.errors(401, 403, 404)
@bp.response(200, S.Withdrawn, description="Erased")
@token_required
def withdraw(participant_id: int) -> Any:
    """Withdraw a participant

    Owner: erase the participant's recall sessions, moments, voice notes, interview audio and
    transcripts, rows and files; returns and audits a receipt with counts only.
    """
    p = get_or_404(db(), Participant, participant_id, api_user(), "owner")
    receipt = interview.withdraw(db(), storage(), p, api_user(), ip=client_ip())
    return {"participant_id": p.id, "erased": receipt}
