"""`POST /api/v1/recordings/<id>/imports`: the UI's moment import (CSV, ELAN, TextGrid, BORIS).

Same input as the import form (multipart `file`, `participant_id`, optional `tier` and
`source_lane`), same domain calls (``dataset.read_import`` then ``dataset.import_moments``: all
moments or none), same permission (editor). The answers are JSON: 201 with what was imported, or
422 with every problem in the file.
"""

from __future__ import annotations

from typing import Any

from ipr import dataset
from ipr.access import get_or_404
from ipr.models import Participant, Recording
from ipr.web import schemas as S
from ipr.web.api import api_user, token_required
from ipr.web.context import client_ip, db
from ipr.web.openapi import ApiBlueprint, problems, read
from ipr.web.schemas import ErrorSchema

bp = ApiBlueprint("api_imports", __name__, url_prefix="/api/v1", description="Moment imports")


@bp.post("/recordings/<int:recording_id>/imports")
@bp.errors(401, 403, 404)
@bp.alt_response(
    422,
    schema=ErrorSchema,
    description="Invalid request, or problems in the file (error.problems lists each line or "
    "annotation)",
)
@bp.response(201, S.Imported, description="Imported")
@token_required
@bp.input(S.ImportIn, location="files")
def create_import(recording_id: int) -> Any:
    """Import moments into one participant's lane

    From a CSV, an ELAN (.eaf) or Praat TextGrid tier, or a BORIS project or events export (one
    observation / subject as `tier`); editor; all or nothing; audited. The format is recognised
    from the content; a file that cannot be read is refused with a problem naming the format
    recognised and why.
    """
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    form = read(S.ImportIn, "files")
    participant = get_or_404(db(), Participant, form["participant_id"], api_user())
    upload = form["file"]
    data = upload.read()
    try:
        kind = dataset.import_kind(data, upload.filename)
        found = dataset.read_import(
            rec.dyad.study,
            data,
            kind,
            tier=form["tier"].strip(),
            source_lane=form["source_lane"].strip(),
        )
        rs = dataset.import_moments(
            db(), rec, participant, found, user=api_user(), fmt=kind, ip=client_ip()
        )
    except dataset.ImportProblems as exc:
        db().rollback()
        return problems(exc)
    return {
        "recall_session_id": rs.id,
        "participant_id": participant.id,
        "format": kind,
        "imported": len(found),
    }
