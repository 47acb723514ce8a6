"""`POST /api/v1/recordings/<id>/imports`: the UI's moment import (CSV, ELAN, TextGrid, BORIS).

Same input as the import form (multipart `file`, `participant_id`, optional `tier` and
`source_lane`), same domain calls (``dataset.read_import`` then ``dataset.import_moments``: all
moments or none), same permission (editor). The answers are JSON: 201 with what was imported, or
422 with every problem in the file.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ipr import dataset
from ipr.access import get_or_404
from ipr.errors import ValidationError
from ipr.models import Participant, Recording
from ipr.web.api import api_user, token_required
from ipr.web.context import client_ip, db
from ipr.web.openapi import _errors, _id, _json, _ref

bp = Blueprint("api_imports", __name__, url_prefix="/api/v1")


@bp.post("/recordings/<int:recording_id>/imports")
@token_required
def create_import(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, api_user(), "editor")
    participant_id = request.form.get("participant_id", type=int)
    if participant_id is None:
        raise ValidationError("Send participant_id: whose lane receives the moments.",
                              field="participant_id")  # fmt: skip
    participant = get_or_404(db(), Participant, participant_id, api_user())
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Send a CSV or ELAN (.eaf) file as the field 'file'.", field="file")
    data = upload.read()
    try:
        kind = dataset.import_kind(data, upload.filename)
        found = dataset.read_import(
            rec.dyad.study,
            data,
            kind,
            tier=request.form.get("tier", "").strip(),
            source_lane=request.form.get("source_lane", "").strip(),
        )
        rs = dataset.import_moments(
            db(), rec, participant, found, user=api_user(), fmt=kind, ip=client_ip()
        )
    except dataset.ImportProblems as exc:
        db().rollback()
        error = {"code": exc.code, "message": exc.message, "problems": exc.problems}
        return jsonify({"error": error}), 422
    return jsonify(
        {
            "recall_session_id": rs.id,
            "participant_id": participant.id,
            "format": kind,
            "imported": len(found),
        }
    ), 201


def import_paths() -> dict[str, Any]:
    """The OpenAPI description of the import route (merged into ipr.web.openapi's paths)."""
    return {
        "/recordings/{recording_id}/imports": {
            "parameters": [_id("recording_id")],
            "post": {
                "summary": "Import moments from a CSV, an ELAN (.eaf) or Praat TextGrid tier, "
                "or a BORIS project or events export (one observation / subject as `tier`) into "
                "one participant's lane (editor; all or nothing; audited). The format is "
                "recognised from the content; a file that cannot be read is refused with a "
                "problem naming the format recognised and why.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file", "participant_id"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "participant_id": {"type": "integer"},
                                    "tier": {"type": "string"},
                                    "source_lane": {"enum": ["", "therapist", "client"]},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["recall_session_id", "participant_id", "imported"],
                            "properties": {
                                "recall_session_id": {"type": "integer"},
                                "participant_id": {"type": "integer"},
                                "format": {
                                    "enum": ["csv", "eaf", "textgrid", "boris", "boris-table"]
                                },
                                "imported": {"type": "integer"},
                            },
                        },
                        "Imported",
                    ),
                    "422": _json(
                        _ref("Error"),
                        "Invalid request, or problems in the file "
                        "(error.problems lists each line or annotation)",
                    ),  # fmt: skip
                    **_errors(401, 403, 404),
                },
            },
        }
    }
