"""The recall interview's routes under /api/v1 (the domain is ``ipr.interview``).

Researchers call with their API token and go through ``ipr.access`` like every other route;
the participant's distress flag goes through the one door (``api.recall_caller``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import select

from ipr import interview
from ipr.access import get_or_404
from ipr.errors import NotFound, ValidationError
from ipr.models import Moment, Participant, RecallSession, Study
from ipr.web.api import api_user, body, recall_caller, recall_session_json, token_required
from ipr.web.context import client_ip, db, huey, storage
from ipr.web.limits import save_bounded
from ipr.web.media import serve
from ipr.web.openapi import _errors, _id, _json, _ref

bp = Blueprint("api_interview", __name__, url_prefix="/api/v1")

MIMETYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
}


def _problems(exc: interview.InterviewProblems) -> Any:
    db().rollback()
    error = {"code": exc.code, "message": exc.message, "problems": exc.problems}
    return jsonify({"error": error}), 422


def smtp_configured() -> bool:
    return bool(current_app.config.get("SMTP_URL") and current_app.config.get("SMTP_FROM"))


@bp.post("/recall-sessions/<int:rs_id>/interview-audio")
@token_required
def upload_audio(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Send the interview audio as the multipart field 'file'.",
                              field="file")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=storage().root) as tmp:
        path = Path(tmp) / "interview"
        cap = current_app.config["INTERVIEW_AUDIO_MAX_BYTES"]
        save_bounded(upload, path, cap, "interview audio")
        try:
            interview.attach_audio(
                db(), storage(), rs, path, request.form.get("events"), api_user(),
                ip=client_ip(),
            )  # fmt: skip
        except interview.InterviewProblems as exc:
            return _problems(exc)
    return jsonify(session_json(rs)), 201


def session_json(rs: RecallSession) -> dict[str, Any]:
    out = recall_session_json(rs)
    out["interview"] = interview.interview_dict(
        db(), rs, lambda: url_for("api_interview.interview_audio", rs_id=rs.id)
    )
    ids = [m.id for m in db().scalars(rs_moments(rs))]
    said = interview.transcripts(db(), ids)
    out["transcripts"] = [{"moment_id": m, "utterances": said[m]} for m in ids if m in said]
    return out


def rs_moments(rs: RecallSession) -> Any:
    return (
        select(Moment)
        .where(Moment.recall_session_id == rs.id, Moment.deleted_at.is_(None))
        .order_by(Moment.t_ms, Moment.id)
    )


@bp.get("/recall-sessions/<int:rs_id>")
@token_required
def get_recall_session(rs_id: int) -> Any:
    return jsonify(session_json(get_or_404(db(), RecallSession, rs_id, api_user())))


@bp.get("/recall-sessions/<int:rs_id>/interview-audio")
@token_required
def interview_audio(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, api_user())
    audio = interview.get_audio(db(), rs)
    if audio is None:
        raise NotFound("This recall session has no interview audio.")
    ext = audio.storage_name.rpartition(".")[2]
    return serve(interview.audio_path(storage(), rs, audio), MIMETYPES[ext])


@bp.post("/recall-sessions/<int:rs_id>/transcript")
@token_required
def import_transcript(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Send the transcript (.vtt, .srt, .eaf or timestamped .txt) as "
                              "the multipart field 'file'.", field="file")  # fmt: skip
    limit = current_app.config["IMPORT_MAX_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ValidationError("The transcript is larger than this server accepts.", field="file")
    try:
        result = interview.import_transcript(
            db(), rs, data, upload.filename, api_user(), ip=client_ip(),
            tier=request.form.get("tier") or None,
        )  # fmt: skip
    except interview.InterviewProblems as exc:
        return _problems(exc)
    return jsonify({"recall_session_id": rs.id, **result}), 201


@bp.post("/recall-sessions/<int:rs_id>/distress")
def api_distress(rs_id: int) -> Any:
    rs, researcher = recall_caller(rs_id, write=True)
    out = interview.flag_distress(
        db(), huey(), rs, smtp=smtp_configured(), by_researcher=researcher, ip=client_ip()
    )
    return jsonify(out)


@bp.put("/studies/<int:study_id>/support-text")
@token_required
def put_support_text(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    data = body()
    lang, text = data.get("language"), data.get("text")
    if not isinstance(lang, str) or not isinstance(text, str):
        raise ValidationError('Send {"language": "en"|"nb", "text": "…"}.')
    interview.set_support_text(study, lang, text)
    db().commit()
    return jsonify({"language": lang, "support_text": interview.support_text(study, lang)})


@bp.get("/participants/<int:participant_id>/consent")
@token_required
def list_consent(participant_id: int) -> Any:
    p = get_or_404(db(), Participant, participant_id, api_user())
    return jsonify({"consent": [interview.consent_dict(c) for c in interview.consents(db(), p)]})


@bp.post("/participants/<int:participant_id>/consent")
@token_required
def record_consent(participant_id: int) -> Any:
    p = get_or_404(db(), Participant, participant_id, api_user(), "editor")
    record = interview.record_consent(db(), p, body(), api_user(), ip=client_ip())
    return jsonify(interview.consent_dict(record)), 201


@bp.post("/participants/<int:participant_id>/withdraw")
@token_required
def withdraw(participant_id: int) -> Any:
    p = get_or_404(db(), Participant, participant_id, api_user(), "owner")
    receipt = interview.withdraw(db(), storage(), p, api_user(), ip=client_ip())
    return jsonify({"participant_id": p.id, "erased": receipt})


# --- OpenAPI -----------------------------------------------------------------------------------

_INT = {"type": "integer"}
_MS = {"type": "integer", "minimum": 0}
_UTTERANCE = {
    "type": "object",
    "required": ["start_ms", "end_ms", "text"],
    "properties": {"start_ms": _MS, "end_ms": {"type": ["integer", "null"]},
                   "text": {"type": "string"}},
}  # fmt: skip
_SESSION = {
    "type": "object",
    "required": ["id", "mode", "interview", "transcripts"],
    "properties": {
        "id": _INT,
        "recording_id": _INT,
        "participant_id": _INT,
        "mode": {"enum": ["self", "researcher"]},
        "status": {"type": "string"},
        "interview": {
            "type": ["object", "null"],
            "required": ["audio_url", "duration_ms", "segments"],
            "properties": {
                "audio_url": {"type": "string"},
                "duration_ms": _MS,
                "format": {"type": "string"},
                "segments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["moment_id", "audio_start_ms", "audio_end_ms"],
                        "properties": {
                            "moment_id": _INT,
                            "audio_start_ms": _MS,
                            "audio_end_ms": _MS,
                        },
                    },  # fmt: skip
                },
            },
        },
        "transcripts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["moment_id", "utterances"],
                "properties": {
                    "moment_id": _INT,
                    "utterances": {"type": "array", "items": _UTTERANCE},
                },
            },  # fmt: skip
        },
    },
}
_CONSENT = {
    "type": "object",
    "required": ["id", "participant_id", "sheet_version", "consented_on"],
    "properties": {
        "id": _INT, "participant_id": _INT, "sheet_version": {"type": "string"},
        "consented_on": {"type": "string", "format": "date"},
        "recorded_by_id": {"type": ["integer", "null"]}, "recorded_at": {"type": "string"},
    },
}  # fmt: skip


def _file_body(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"file": {"type": "string", "format": "binary"}, **(extra or {})}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file", *(extra or {})],
                           "properties": props}
            }
        },
    }  # fmt: skip


def _problems_response() -> dict[str, Any]:
    return _json(_ref("Error"), "Invalid request, or problems listed in error.problems")


def interview_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged into ipr.web.openapi's paths)."""
    rs = [_id("rs_id")]
    return {
        "/recall-sessions/{rs_id}": {
            "parameters": rs,
            "get": {
                "summary": "One recall session with its interview (audio URL, duration, each "
                "stop's segment of the interview audio) and each moment's transcript.",
                "responses": {"200": _json(_SESSION, "The recall session"), **_errors(401, 404)},
            },  # fmt: skip
        },
        "/recall-sessions/{rs_id}/interview-audio": {
            "parameters": rs,
            "get": {
                "summary": "The interview audio (Bearer token; Range requests answered with 206).",
                "responses": {
                    "200": {
                        "description": "The audio",
                        "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "206": {"description": "The requested byte range"},
                    **_errors(401, 404),
                },  # fmt: skip
            },
            "post": {
                "summary": "Attach the interview of a researcher-led session, recorded on "
                "another device (editor; audited). 'events' is a JSON list of "
                '{"type": "play"|"pause"|"seek"|"mark", "video_ms", "audio_ms", "moment_id"?} '
                "in interview-audio order. A second upload replaces the first.",
                "requestBody": _file_body({"events": {"type": "string"}}),
                "responses": {
                    "201": _json(_SESSION, "Attached"),
                    "409": _json(_ref("Error"), "Not a researcher-led session"),
                    "413": _json(_ref("Error"), "The audio is too large"),
                    "422": _problems_response(),
                    **_errors(401, 403, 404),
                },
            },
        },
        "/recall-sessions/{rs_id}/transcript": {
            "parameters": rs,
            "post": {
                "summary": "Import the interview's transcript (WebVTT, SRT, ELAN .eaf, or "
                "'[hh:mm:ss] text' lines); each utterance is attached to the stop whose interview "
                "segment contains its start. From an ELAN file the tier named 'tier' is read, "
                "else the tier with the most annotations (the answer names it). Replaces the "
                "previous transcript (editor; audited).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "tier": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["utterances", "attached"],
                            "properties": {
                                "recall_session_id": _INT,
                                "format": {"enum": ["vtt", "srt", "text", "eaf"]},
                                "tier": {"type": "string"},
                                "utterances": _INT,
                                "attached": {"type": "object"},
                                "unattached": _INT,
                            },
                        },
                        "Imported",
                    ),
                    "409": _json(_ref("Error"), "No interview audio yet"),
                    "422": _problems_response(),
                    **_errors(401, 403, 404),
                },  # fmt: skip
            },
        },
        "/recall-sessions/{rs_id}/distress": {
            "parameters": rs,
            "post": {
                "summary": "The participant flags 'I need to stop / this is distressing': the "
                "session pauses, the owners are told (audited; e-mail when configured), and "
                "the answer carries the study's support text.",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["paused", "support_text"],
                            "properties": {
                                "paused": {"type": "boolean"},
                                "support_text": {"type": "string"},
                                "language": {"type": "string"},
                                "owner_notified": {"type": "boolean"},
                                "email_job_id": {"type": ["integer", "null"]},
                            },
                        },
                        "Paused",
                    ),
                    **_errors(401, 404),
                },  # fmt: skip
            },
        },
        "/studies/{study_id}/support-text": {
            "parameters": [_id("study_id")],
            "put": {
                "summary": "Set the study's support text in one language (editor); an empty "
                "text brings back the default.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["language", "text"],
                                "properties": {
                                    "language": {"enum": ["en", "nb"]},
                                    "text": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "language": {"type": "string"},
                                "support_text": {"type": "string"},
                            },
                        },
                        "Saved",
                    ),
                    **_errors(401, 403, 404, 422),
                },
            },  # fmt: skip
        },
        "/participants/{participant_id}/consent": {
            "parameters": [_id("participant_id")],
            "get": {
                "summary": "The participant's consent records.",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["consent"],
                            "properties": {"consent": {"type": "array", "items": _CONSENT}},
                        },
                        "Records",
                    ),
                    **_errors(401, 404),
                },  # fmt: skip
            },
            "post": {
                "summary": "Record consent: the information sheet's version and the date "
                "(editor; audited; the recorder is the caller).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sheet_version", "consented_on"],
                                "properties": {
                                    "sheet_version": {"type": "string"},
                                    "consented_on": {"type": "string", "format": "date"},
                                },
                            }
                        }
                    },
                },
                "responses": {"201": _json(_CONSENT, "Recorded"), **_errors(401, 403, 404, 422)},
            },  # fmt: skip
        },
        "/participants/{participant_id}/withdraw": {
            "parameters": [_id("participant_id")],
            "post": {
                "summary": "Withdrawal (owner): erase the participant's recall sessions, "
                "moments, voice notes, interview audio and transcripts, rows and files; "
                "returns and audits a receipt with counts only.",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["participant_id", "erased"],
                            "properties": {"participant_id": _INT, "erased": {"type": "object"}},
                        },
                        "Erased",
                    ),
                    **_errors(401, 403, 404),
                },  # fmt: skip
            },
        },
    }
