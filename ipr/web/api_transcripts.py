"""Automatic transcription of a recall interview under /api/v1 (the domain is ``ipr.interview``).

``POST /recall-sessions/<id>/transcribe`` queues the ``interview_transcribe`` job, which runs the
locally installed model configured as ``IPR_TRANSCRIBE_COMMAND`` on the interview audio and
attaches what it heard to the stops (docs/interview.md). Without that setting it answers 409.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from ipr import interview
from ipr.access import get_or_404
from ipr.models import RecallSession
from ipr.web.api import api_user, token_required
from ipr.web.context import client_ip, db, huey
from ipr.web.openapi import _errors, _id, _json, _ref

bp = Blueprint("api_transcripts", __name__, url_prefix="/api/v1")


@bp.post("/recall-sessions/<int:rs_id>/transcribe")
@token_required
def transcribe(rs_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    job = interview.queue_transcription(
        db(), huey(), rs, api_user(), command=current_app.config.get("TRANSCRIBE_COMMAND"),
        ip=client_ip(),
    )  # fmt: skip
    return jsonify({"recall_session_id": rs.id, "job_id": job.id, "status": job.status}), 202


def transcript_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged into ipr.web.openapi's paths)."""
    return {
        "/recall-sessions/{rs_id}/transcribe": {
            "parameters": [_id("rs_id")],
            "post": {
                "summary": "Transcribe the interview audio with the locally installed model "
                "(IPR_TRANSCRIBE_COMMAND) in a worker; its utterances replace the transcript and "
                "are attached to the stops as an import's are (editor; audited).",
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["recall_session_id", "job_id", "status"],
                            "properties": {
                                "recall_session_id": {"type": "integer"},
                                "job_id": {"type": "integer"},
                                "status": {"type": "string"},
                            },
                        },
                        "Queued",
                    ),
                    "409": _json(_ref("Error"), "No model configured, or no interview audio"),
                    **_errors(401, 403, 404),
                },
            },
        },
    }
