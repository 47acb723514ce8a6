"""The prompt sheet and the prompt answers under /api/v1 (the domain is ``ipr.prompts``).

Researchers only, with their API token, through ``ipr.access`` like every other route: a
participant's token opens nothing here (participants never see the sheet or the answers).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ipr import prompts, recall
from ipr.access import get_or_404
from ipr.models import RecallSession, Study
from ipr.web.api import api_user, body, token_required
from ipr.web.context import client_ip, db
from ipr.web.openapi import _errors, _id, _json, _ref

bp = Blueprint("api_prompts", __name__, url_prefix="/api/v1")


def _problems(exc: prompts.PromptProblems) -> Any:
    db().rollback()
    error = {"code": exc.code, "message": exc.message, "problems": exc.problems}
    return jsonify({"error": error}), 422


def _sheet_json(study: Study) -> dict[str, Any]:
    return {
        "study_id": study.id,
        "is_default": prompts.is_default(study),
        "prompts": prompts.sheet(study),
    }


@bp.get("/studies/<int:study_id>/prompts")
@token_required
def get_sheet(study_id: int) -> Any:
    return jsonify(_sheet_json(get_or_404(db(), Study, study_id, api_user())))


@bp.put("/studies/<int:study_id>/prompts")
@token_required
def put_sheet(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    data = body()
    try:
        if data.get("prompts") is None:
            prompts.reset_sheet(db(), study, api_user(), ip=client_ip())
        else:
            prompts.set_sheet(db(), study, data.get("prompts"), api_user(), ip=client_ip())
    except prompts.PromptProblems as exc:
        return _problems(exc)
    return jsonify(_sheet_json(study))


@bp.get("/recall-sessions/<int:rs_id>/moments/<int:moment_id>/answers")
@token_required
def get_answers(rs_id: int, moment_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, api_user())
    moment = recall.own_moment(db(), rs, moment_id)
    return jsonify({"moment_id": moment.id, "answers": prompts.answer_rows(db(), moment)})


@bp.put("/recall-sessions/<int:rs_id>/moments/<int:moment_id>/answers")
@token_required
def put_answers(rs_id: int, moment_id: int) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    moment = recall.own_moment(db(), rs, moment_id)
    data = request.get_json(silent=True)
    try:
        prompts.save_answers(
            db(), rs, moment, data.get("answers") if isinstance(data, dict) else None, api_user()
        )
    except prompts.PromptProblems as exc:
        return _problems(exc)
    return jsonify({"moment_id": moment.id, "answers": prompts.answer_rows(db(), moment)})


# --- OpenAPI -----------------------------------------------------------------------------------

_TEXTS = {"type": "object", "additionalProperties": {"type": "string"}}
_PROMPT = {
    "type": "object",
    "required": ["key", "kind", "text"],
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"},
        "kind": {"enum": list(prompts.KINDS)},
        "text": _TEXTS,
        "scale": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "label"],
                "properties": {"value": {"type": "string"}, "label": _TEXTS},
            },
        },
    },
}
_SHEET = {
    "type": "object",
    "required": ["study_id", "is_default", "prompts"],
    "properties": {
        "study_id": {"type": "integer"},
        "is_default": {"type": "boolean"},
        "prompts": {"type": "array", "items": _PROMPT},
    },
}
_ANSWERS = {
    "type": "object",
    "required": ["moment_id", "answers"],
    "properties": {
        "moment_id": {"type": "integer"},
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["prompt_key", "value", "answered_at"],
                "properties": {
                    "prompt_key": {"type": "string"},
                    "value": {"type": "string"},
                    "answered_at": {"type": "string"},
                    "by_id": {"type": ["integer", "null"]},
                },
            },
        },
    },
}


def prompt_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged into ipr.web.openapi's paths)."""
    answers = "/recall-sessions/{rs_id}/moments/{moment_id}/answers"
    return {
        "/studies/{study_id}/prompts": {
            "parameters": [_id("study_id")],
            "get": {
                "summary": "The interviewer's prompt sheet (the Brief Structured Recall "
                "defaults until the study writes its own): key, kind (text, scale, choice), "
                "the question per language, the scale or the choices.",
                "responses": {"200": _json(_SHEET, "The sheet"), **_errors(401, 404)},
            },
            "put": {
                "summary": 'Replace the sheet (editor; audited): {"prompts": [...]}; '
                '{"prompts": null} brings back the defaults. 422 lists every problem.',
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["prompts"],
                                "properties": {
                                    "prompts": {"type": ["array", "null"], "items": _PROMPT}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_SHEET, "Saved"),
                    "422": _json(_ref("Error"), "Problems listed in error.problems"),
                    **_errors(401, 403, 404),
                },
            },
        },
        answers: {
            "parameters": [_id("rs_id"), _id("moment_id")],
            "get": {
                "summary": "The participant's answers to the prompts at one stop.",
                "responses": {"200": _json(_ANSWERS, "The answers"), **_errors(401, 404)},
            },
            "put": {
                "summary": "Set answers at one stop of a researcher-led session (editor): "
                '{"answers": {"<prompt key>": value}}: text, a whole number on the prompt\'s '
                "scale, or one of its choices; null or empty text clears one. After the "
                "reveal a blind moment's answers change only as an audited correction.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["answers"],
                                "properties": {"answers": {"type": "object"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ANSWERS, "Saved"),
                    "409": _json(_ref("Error"), "Not a researcher-led session, or locked"),
                    "422": _json(_ref("Error"), "Problems listed in error.problems"),
                    **_errors(401, 403, 404),
                },
            },
        },
    }
