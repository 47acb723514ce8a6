"""The study's search page: moments by comment, note, code and interview transcript (htmx).

Thin: ``ipr.search`` does the finding. Any member of the study may search it (viewers too);
another researcher gets the same 404 as for a missing study; participants have no way in.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from ipr import search as finder
from ipr.access import get_or_404, role_in
from ipr.errors import ValidationError
from ipr.models import Study
from ipr.web.context import db, login_required, render, user

bp = Blueprint("search", __name__)


@bp.get("/studies/<int:study_id>/search")
@login_required
def page(study_id: int) -> Any:
    """The page with its search box; an htmx request (typing) gets the results alone."""
    study = get_or_404(db(), Study, study_id, user())
    query = request.args.get("q", "")
    result, problem = None, None
    if query.strip():
        try:
            result = finder.search(db(), study.id, query)
        except ValidationError as exc:
            problem = exc.message
    return render(
        "studies/search.html", "studies/_search_results.html", study=study, query=query,
        result=result, problem=problem, role=role_in(db(), user(), study.id),
        limit=finder.LIMIT,
    )  # fmt: skip
