"""The prompt sheet on the study page and the answers captured on the recall page.

The domain is ``ipr.prompts``. The recall page's answer route goes through the recall page's
own door (``ipr.web.recall.access``) and then refuses everyone but the leading researcher:
participants never read or write prompt answers.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from ipr import interview, prompts, recall, study_texts
from ipr.access import get_or_404
from ipr.errors import NotFound, ValidationError
from ipr.models import Moment, RecallSession, Study
from ipr.web.context import client_ip, db, login_required, user
from ipr.web.recall import access
from ipr.web.studies import _section

bp = Blueprint("prompts", __name__)


@bp.post("/studies/<int:study_id>/prompts")
@login_required
def save_sheet(study_id: int) -> Any:
    """Save the sheet from the study page's form, or bring back the defaults (audited)."""
    study = get_or_404(db(), Study, study_id, user(), "editor")
    form = request.form
    try:
        if form.get("action") == "reset":
            prompts.reset_sheet(db(), study, user(), ip=client_ip())
        else:
            count = form.get("count", "")
            if not count.isdigit() or not 0 <= int(count) <= prompts.MAX_PROMPTS + 1:
                raise ValidationError("The form is incomplete: send it from the study page.")
            raw = prompts.from_form(study, form.to_dict(), int(count))
            prompts.set_sheet(db(), study, raw, user(), ip=client_ip())
    except ValidationError as exc:
        db().rollback()
        study = get_or_404(db(), Study, study_id, user(), "editor")
        problems = getattr(exc, "problems", [])
        return _section(study, "prompts", status=422, error=exc.message, problems=problems)
    return _section(study, "prompts")


@bp.put("/recall/<int:rs_id>/moments/<int:moment_id>/answers")
def save_answers(rs_id: int, moment_id: int) -> Any:
    """The leading researcher saves the participant's answers at one stop."""
    rs, researcher = access(rs_id)
    if researcher is None:
        raise NotFound()
    moment = recall.own_moment(db(), rs, moment_id)
    data = request.get_json(silent=True)
    try:
        saved = prompts.save_answers(
            db(), rs, moment, data.get("answers") if isinstance(data, dict) else None, researcher
        )
    except prompts.PromptProblems as exc:
        db().rollback()
        error = {"code": exc.code, "message": exc.message, "problems": exc.problems}
        return jsonify({"error": error}), 422
    return jsonify({"moment_id": moment.id, "answers": saved})


@bp.app_template_global()
def recall_prompts(rs: RecallSession) -> dict[str, Any]:
    """What the recall page's prompt panel reads: the sheet in the participant's language and
    every answer so far (the page shows it to the leading researcher only; recall.js sends the
    answers to ``save_answers`` through its outbox, ``urls.answers`` in the page's data)."""
    study = db().get(Study, rs.study_id)
    lang = study_texts.participant_language(study, rs.participant)  # type: ignore[arg-type]
    ids = select(Moment.id).where(Moment.recall_session_id == rs.id)
    return {
        "sheet": prompts.for_language(study, lang),  # type: ignore[arg-type]
        "answers": {str(k): v for k, v in prompts.answers(db(), ids).items()},
    }


@bp.app_template_global()
def distress_support(rs: RecallSession) -> str:
    """The study's support text in the participant's language, rendered into the page so it
    shows even when the network is gone at the moment of distress."""
    study = db().get(Study, rs.study_id)
    lang = study_texts.participant_language(study, rs.participant)  # type: ignore[arg-type]
    return interview.support_text(study, lang)


@bp.app_template_global()
def prompt_sheet_view(study: Study) -> dict[str, Any]:
    """The study page's sheet section: the stored sheet (or the defaults) as form rows."""
    return {
        "rows": prompts.sheet(study),
        "is_default": prompts.is_default(study),
        "kinds": prompts.KINDS,
        "max": prompts.MAX_PROMPTS,
    }
