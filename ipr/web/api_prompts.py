"""The prompt sheet and the prompt answers under /api/v1 (the domain is ``ipr.prompts``).

Researchers only, with their API token, through ``ipr.access`` like every other route: a
participant's token opens nothing here (participants never see the sheet or the answers).
The domain checks a sheet or a stop's answers whole and lists every problem (422
``error.problems``), so the request schemas document those bodies and pass them on as sent.
"""

from __future__ import annotations

from typing import Any

from ipr import prompts, recall
from ipr.access import get_or_404
from ipr.models import RecallSession, Study
from ipr.web import schemas as S
from ipr.web.api import api_user, token_required
from ipr.web.context import client_ip, db
from ipr.web.openapi import ApiBlueprint, problems, read
from ipr.web.schemas import ErrorSchema

bp = ApiBlueprint(
    "api_prompts", __name__, url_prefix="/api/v1", description="The interviewer's prompts"
)
PROBLEMS = "Invalid request, or problems listed in error.problems"
_ANSWERS = "/recall-sessions/<int:rs_id>/moments/<int:moment_id>/answers"


def _sheet(study: Study) -> dict[str, Any]:
    return {
        "study_id": study.id,
        "is_default": prompts.is_default(study),
        "prompts": prompts.sheet(study),
    }


@bp.get("/studies/<int:study_id>/prompts")
@bp.errors(401, 404)
@bp.response(200, S.PromptSheet, description="The sheet")
@token_required
def get_sheet(study_id: int) -> Any:
    """The interviewer's prompt sheet

    The Brief Structured Recall defaults until the study writes its own: key, kind (text,
    scale, choice), the question per language, the scale or the choices.
    """
    return _sheet(get_or_404(db(), Study, study_id, api_user()))


@bp.put("/studies/<int:study_id>/prompts")
@bp.errors(401, 403, 404)
@bp.alt_response(422, schema=ErrorSchema, description=PROBLEMS)
@bp.response(200, S.PromptSheet, description="Saved")
@token_required
@bp.input(S.PromptSheetIn)
def put_sheet(study_id: int) -> Any:
    """Replace the prompt sheet

    Editor; audited. {"prompts": null} brings back the defaults. 422 lists every problem.
    """
    study = get_or_404(db(), Study, study_id, api_user(), "editor")
    sheet = read(S.PromptSheetIn)["prompts"]
    try:
        if sheet is None:
            prompts.reset_sheet(db(), study, api_user(), ip=client_ip())
        else:
            prompts.set_sheet(db(), study, sheet, api_user(), ip=client_ip())
    except prompts.PromptProblems as exc:
        return problems(exc)
    return _sheet(study)


@bp.get(_ANSWERS)
@bp.errors(401, 404)
@bp.response(200, S.PromptAnswers, description="The answers")
@token_required
def get_answers(rs_id: int, moment_id: int) -> Any:
    """The participant's answers to the prompts at one stop."""
    rs = get_or_404(db(), RecallSession, rs_id, api_user())
    moment = recall.own_moment(db(), rs, moment_id)
    return {"moment_id": moment.id, "answers": prompts.answer_rows(db(), moment)}


@bp.put(_ANSWERS)
@bp.errors(401, 403, 404, 409, c409="Not a researcher-led session, or locked")
@bp.alt_response(422, schema=ErrorSchema, description=PROBLEMS)
@bp.response(200, S.PromptAnswers, description="Saved")
@token_required
@bp.input(S.PromptAnswersIn)
def put_answers(rs_id: int, moment_id: int) -> Any:
    """Set answers at one stop of a researcher-led session

    Editor. {"answers": {"<prompt key>": value}}: text, a whole number on the prompt's scale,
    or one of its choices; null or empty text clears one. After the reveal a blind moment's
    answers change only as an audited correction.
    """
    rs = get_or_404(db(), RecallSession, rs_id, api_user(), "editor")
    moment = recall.own_moment(db(), rs, moment_id)
    answers = read(S.PromptAnswersIn)["answers"]
    try:
        prompts.save_answers(db(), rs, moment, answers, api_user())
    except prompts.PromptProblems as exc:
        return problems(exc)
    return {"moment_id": moment.id, "answers": prompts.answer_rows(db(), moment)}
