"""The dyad timeline: the recording's timeline page and its JSON, the dyad's sessions one above
the other, the study dashboard, and the timeline API. Researchers only (viewer or above)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for
from sqlalchemy import select

from ipr import interview, prompts
from ipr import timeline_service as ts
from ipr.access import get_or_404
from ipr.models import Dyad, Moment, RecallSession, Recording, Study
from ipr.web import schemas as S
from ipr.web.api import api_user, token_required
from ipr.web.api_interview_chunks import recording_interviews
from ipr.web.context import db, login_required, render, user
from ipr.web.openapi import ApiBlueprint, read

bp = Blueprint("timeline", __name__)


def _tolerance(rec: Recording) -> int:
    return ts.parse_tolerance(
        request.args.get("tolerance_ms"), rec.dyad.study.alignment_tolerance_ms
    )


def _page_payload(rec: Recording, tl: ts.Timeline) -> dict[str, Any]:
    """The API's payload plus what the page draws with: codebook, scales, clips, URLs."""
    study = rec.dyad.study
    return {
        **tl.to_dict(),
        "codes": [{"id": c.id, "name": c.name, "colour": c.colour} for c in study.codes],
        "scales": [
            {
                "key": s.key,
                "name": s.name,
                "min": s.min_value,
                "max": s.max_value,
                "labels": s.labels,
            }
            for s in study.scales
        ],
        "clips": [
            {"index": c.index, "start_ms": c.start_ms, "end_ms": c.end_ms} for c in rec.clips
        ],
        "prompt_answers": _prompt_answers(rec, study),
        "utterances": _utterances(rec),
        "urls": {
            "data": url_for("timeline.data", recording_id=rec.id),
            "figures": url_for("timeline.page", recording_id=rec.id),
            "waveform": url_for("media.derived", recording_id=rec.id, name="waveform.json"),
            "analysis": url_for("media.derived", recording_id=rec.id, name="analysis.json"),
        },
    }


def _moment_ids(rec: Recording) -> Any:
    """The live moments of every recall session of ``rec``, as a subquery."""
    return (
        select(Moment.id)
        .join(RecallSession, Moment.recall_session_id == RecallSession.id)
        .where(RecallSession.recording_id == rec.id, Moment.deleted_at.is_(None))
    )


def _prompt_answers(rec: Recording, study: Study) -> dict[str, list[dict[str, str]]]:
    """Each moment's interview answers as the detail panel shows them (question, answer)."""
    return {
        str(mid): prompts.display(study, stored)
        for mid, stored in prompts.answers(db(), _moment_ids(rec)).items()
    }


def _utterances(rec: Recording) -> dict[str, list[dict[str, Any]]]:
    """What was said at each moment: its transcript utterances (interview audio ms), in one
    query. Researcher pages only, like the rest of the interview."""
    return {str(mid): said for mid, said in interview.transcripts(db(), _moment_ids(rec)).items()}


def _context(rec: Recording) -> dict[str, Any]:
    ctx: dict[str, Any] = {"rec": rec, "dyad": rec.dyad, "study": rec.dyad.study, "tl": None}
    if rec.status == "ready" and rec.duration_ms:
        tl = ts.timeline(db(), rec, _tolerance(rec))
        ctx.update(tl=tl, f=tl.figures, payload=_page_payload(rec, tl))
        ctx["interviews"] = recording_interviews(rec)  # Play the interview here
    return ctx


@bp.get("/recordings/<int:recording_id>/timeline")
@login_required
def page(recording_id: int) -> Any:
    """The whole page; an htmx request (the tolerance control, or the panel polling while the
    worker computes) gets the figures panel alone."""
    rec = get_or_404(db(), Recording, recording_id, user())
    return render("timeline/page.html", "timeline/_figures.html", **_context(rec))


@bp.get("/recordings/<int:recording_id>/timeline.json")
@login_required
def data(recording_id: int) -> Any:
    """The API's payload for the page's own tolerance control (cookie login, read-only)."""
    rec = get_or_404(db(), Recording, recording_id, user())
    return jsonify(ts.timeline(db(), rec, _tolerance(rec)).to_dict())


@bp.get("/recordings/<int:recording_id>/timeline/chance")
@login_required
def chance(recording_id: int) -> Any:
    """The co-marking figure with its chance baseline, as stored (polls while computing)."""
    rec = get_or_404(db(), Recording, recording_id, user())
    ctx = _context(rec)
    return render("timeline/_comarking.html", "timeline/_comarking.html", **ctx)


@bp.get("/recordings/<int:recording_id>/timeline/synchrony")
@login_required
def synchrony(recording_id: int) -> Any:
    """The synchrony-versus-surrogates figure, as stored (polls while computing)."""
    rec = get_or_404(db(), Recording, recording_id, user())
    ctx = _context(rec)
    sync = ctx["f"].get("synchrony") if ctx.get("f") else None
    return render("timeline/_synchrony.html", "timeline/_synchrony.html", sync=sync, **ctx)


@bp.get("/dyads/<int:dyad_id>/timeline")
@login_required
def dyad(dyad_id: int) -> Any:
    """The dyad's sessions one above the other, each with its lanes, pairs and figures."""
    d = get_or_404(db(), Dyad, dyad_id, user())
    sessions = []
    for rec in d.recordings:
        if rec.status == "ready" and rec.duration_ms:
            tl = ts.timeline(db(), rec, d.study.alignment_tolerance_ms)
            sessions.append(
                {"rec": rec, "tl": tl, "f": tl.figures, "payload": _page_payload(rec, tl)}
            )
        else:
            sessions.append({"rec": rec, "tl": None})
    pending = any(s["tl"] is not None and s["tl"].pending for s in sessions)
    total = ts.fig.aggregate(
        ts.fig.summary_of(s["f"]) for s in sessions if s["tl"] is not None and s["f"] is not None
    )
    return render(
        "timeline/dyad.html", dyad=d, study=d.study, sessions=sessions, pending=pending,
        total=total,
    )  # fmt: skip


@bp.get("/studies/<int:study_id>/dashboard")
@login_required
def dashboard(study_id: int) -> Any:
    """Every dyad × session: recall states, counts, co-marking against chance, synchrony.

    An htmx request (the table polling while figures are computed) gets the table alone."""
    study = get_or_404(db(), Study, study_id, user())
    rows = ts.study_dashboard(db(), study)
    pending = any(r.state in ("computing", "updating") for _, rs in rows for r in rs)
    total = ts.pooled(r for _, rs in rows for r in rs)
    return render(
        "timeline/dashboard.html", "timeline/_dashboard_table.html", study=study, rows=rows,
        pending=pending, total=total,
    )  # fmt: skip


api_bp = ApiBlueprint("api_timeline", __name__, url_prefix="/api/v1", description="Timeline")


@api_bp.get("/recordings/<int:recording_id>/timeline")
@api_bp.errors(401, 404, 422, c422="Invalid tolerance, or the recording is not processed yet")
@api_bp.response(200, S.TimelineSchema)
@token_required
@api_bp.input(S.TimelineQuery, location="query")
def timeline(recording_id: int) -> Any:
    """The dyad timeline

    Both lanes and the researchers' coding, the optimal one-to-one pairs within the tolerance,
    unmatched ids and the figures.
    """
    rec = get_or_404(db(), Recording, recording_id, api_user())
    read(S.TimelineQuery, "query")  # its type; the range is the domain's
    return ts.timeline(db(), rec, _tolerance(rec)).to_dict()  # the page's rule, the study's own
