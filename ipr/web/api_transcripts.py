"""Automatic transcription of a recall interview under /api/v1 (the domain is ``ipr.interview``).

``POST /recall-sessions/<id>/transcribe`` queues the ``interview_transcribe`` job, which runs the
locally installed model configured as ``IPR_TRANSCRIBE_COMMAND`` on the interview audio and
attaches what it heard to the stops (docs/interview.md). Without that setting it answers 409.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from ipr import interview
from ipr.access import get_or_404
from ipr.models import RecallSession
from ipr.web import schemas as S
from ipr.web.api import api_user, token_required
from ipr.web.context import client_ip, db, huey
from ipr.web.openapi import ApiBlueprint

bp = ApiBlueprint("api_transcripts", __name__, url_prefix="/api/v1", description="Transcription")


@bp.post("/recall-sessions/<int:rs_id>/transcribe")
@bp.errors(401, 403, 404, 409, c409="No model configured, or no interview audio")
@bp.response(202, S.TranscriptionQueued, description="Queued")
@token_required
def transcribe(rs_id: int) -> Any:
    """Transcribe the interview audio with the local model

    The locally installed model (IPR_TRANSCRIBE_COMMAND) runs in a worker; its utterances
    replace the transcript and are attached to the stops as an import's are (editor; audited).
    """
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    job = interview.queue_transcription(
        db(), huey(), rs, api_user(), command=current_app.config.get("TRANSCRIBE_COMMAND"),
        ip=client_ip(),
    )  # fmt: skip
    return {"recall_session_id": rs.id, "job_id": job.id, "status": job.status}
