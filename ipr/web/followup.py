"""The follow-up pass: the participant's page and saves, and the researcher's scheduling.

The participant's routes pass the same door as the recall page (``ipr.web.recall.access``:
device cookie, live link, PIN proved; a researcher only for a researcher-led session), so a
follow-up is no easier to reach than the recall itself. The researcher's routes are editors'
changes on a recall session of their study (``ipr.access``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ipr import followup, invitations, study_texts
from ipr.access import get_or_404
from ipr.errors import IPRError, ValidationError
from ipr.models import Dyad, FollowUp, FollowUpRating, Moment, RecallSession, Study
from ipr.web.context import client_ip, db, huey, login_required, user
from ipr.web.recall import _write, access, participant_error
from ipr.web.recall_admin import base_url, email_enabled

bp = Blueprint("followup", __name__)
bp.register_error_handler(IPRError, participant_error)  # they read errors in their language
admin_bp = Blueprint("followup_admin", __name__)

# seconds of the session shown around a moment on the follow-up page
CLIP_BEFORE_MS = 10_000
CLIP_AFTER_MS = 10_000


def clip_range(t_ms: int, end_ms: int | None, duration_ms: int) -> tuple[int, int]:
    """The stretch replayed for a moment: 10 s before it to 10 s after its end, inside the
    recording."""
    start = max(0, t_ms - CLIP_BEFORE_MS)
    end = min(duration_ms, (end_ms if end_ms is not None else t_ms) + CLIP_AFTER_MS)
    return start, max(start, end)


@bp.get("/recall/<int:rs_id>/followup")
def page(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    study = db().get(Study, rs.study_id)
    lang = study_texts.participant_language(study, rs.participant)
    fu = followup.get(db(), rs)
    if not followup.is_open(fu):
        return render_template("followup/not_open.html", page_lang=lang), 200
    followup.mark_opened(db(), rs, fu, by_researcher=researcher is not None)
    saved = followup.ratings(db(), fu)
    duration = rs.recording.duration_ms or 0
    items = []
    for m in followup.moments(db(), rs):
        start, end = clip_range(m.t_ms, m.end_ms, duration)
        items.append(
            {
                "moment": m,
                "clip_start_ms": start,
                "clip_end_ms": end,
                "saved": followup.rating_dict(saved.get(m.id), m.id),
            }
        )
    view = study_texts.for_participant(study, lang)
    rerated = {s.key for s in followup.scales(study)}
    return render_template(
        "followup/page.html",
        rs=rs,
        fu=fu,
        items=items,
        scales=[s for s in view.scales if s.key in rerated],
        instructions=followup.instructions(study, lang),
        urls={
            "save": url_for("followup.save", rs_id=rs.id, moment_id=0).replace(
                "/moments/0", "/moments/{moment_id}"
            ),
            "finish": url_for("followup.finish", rs_id=rs.id),
            "media": url_for("recall.media", rs_id=rs.id),
        },
        researcher_led=researcher is not None,
        distress_where="followup",
        page_lang=lang,
    )


@bp.get("/recall/<int:rs_id>/followup/ratings")
def ratings(rs_id: int) -> Any:
    rs, _ = access(rs_id)
    fu = followup.open_for(db(), rs)
    saved = followup.ratings(db(), fu)
    return jsonify(
        {
            "status": followup.state(fu),
            "ratings": [
                followup.rating_dict(saved.get(m.id), m.id) for m in followup.moments(db(), rs)
            ],
        }
    )


@bp.put("/recall/<int:rs_id>/followup/moments/<int:moment_id>")
def save(rs_id: int, moment_id: int) -> Any:
    rs, researcher = access(rs_id)
    _write(rs, researcher)
    row = followup.save(db(), rs, moment_id, request.get_json(silent=True))
    return jsonify(followup.rating_dict(row, moment_id))


@bp.post("/recall/<int:rs_id>/followup/finish")
def finish(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    actor = researcher.email if researcher else f"participant {rs.participant.code}"
    fu = followup.finish(db(), rs, actor=actor)
    return jsonify({"status": followup.state(fu)})


# --- the researcher's side --------------------------------------------------------------------


def dyad_followups(dyad: Dyad) -> list[dict[str, Any]]:
    """Each recall session of the dyad with its follow-up (the dyad page's panel), in four
    statements whatever the number of sessions."""
    sessions = (
        db()
        .scalars(
            select(RecallSession)
            .where(RecallSession.recording_id.in_([r.id for r in dyad.recordings]))
            .options(selectinload(RecallSession.participant), selectinload(RecallSession.recording))
            .order_by(RecallSession.recording_id, RecallSession.id)
        )
        .all()
    )
    ids = [rs.id for rs in sessions]
    found = {
        fu.recall_session_id: fu
        for fu in db().scalars(select(FollowUp).where(FollowUp.recall_session_id.in_(ids)))
    }
    rated = dict(
        db()
        .execute(
            select(FollowUp.recall_session_id, func.count(FollowUpRating.id))
            .join(FollowUpRating, FollowUpRating.followup_id == FollowUp.id)
            .where(FollowUp.recall_session_id.in_(ids))
            .group_by(FollowUp.recall_session_id)
        )
        .all()
    )
    blind = dict(
        db()
        .execute(
            select(Moment.recall_session_id, func.count(Moment.id))
            .where(
                Moment.recall_session_id.in_(ids),
                Moment.deleted_at.is_(None),
                Moment.phase == "blind",
            )
            .group_by(Moment.recall_session_id)
        )
        .all()
    )
    return [
        {
            "rs": rs,
            "fu": found.get(rs.id),
            "state": followup.state(found.get(rs.id)),
            "rated": rated.get(rs.id, 0),
            "moments": blind.get(rs.id, 0),
        }
        for rs in sessions
    ]


def _researcher_change(rs_id: int, action: Any) -> Any:
    rs = get_or_404(db(), RecallSession, rs_id, user(), "editor")
    dyad_id = rs.recording.dyad_id
    try:
        action(rs)
    except ValidationError as exc:
        db().rollback()
        return redirect(
            url_for("recordings.dyad", dyad_id=dyad_id, followup_error=exc.message) + "#followup",
            303,
        )
    return redirect(url_for("recordings.dyad", dyad_id=dyad_id) + "#followup", 303)


@admin_bp.post("/recall-sessions/<int:rs_id>/followup/open")
@login_required
def open_now(rs_id: int) -> Any:
    return _researcher_change(rs_id, lambda rs: followup.open_now(db(), rs, user(), ip=client_ip()))


@admin_bp.post("/recall-sessions/<int:rs_id>/followup/reschedule")
@login_required
def reschedule(rs_id: int) -> Any:
    day = request.form.get("due_on", "")
    return _researcher_change(
        rs_id, lambda rs: followup.reschedule(db(), rs, user(), day, ip=client_ip())
    )


@admin_bp.post("/recall-sessions/<int:rs_id>/followup/email")
@login_required
def email(rs_id: int) -> Any:
    """Queue the follow-up e-mail (a fresh link in the follow-up's words) for the worker."""

    def action(rs: RecallSession) -> None:
        if not email_enabled():
            raise ValidationError("No e-mail server is configured.")
        if not followup.is_open(followup.get(db(), rs)):
            raise ValidationError("The follow-up is not due yet; open it first.")
        invitations.queue_email(
            db(), huey(), rs, user(), kind="followup", to=request.form.get("email", ""),
            base_url=base_url(), ip=client_ip(),
        )  # fmt: skip

    return _researcher_change(rs_id, action)


@admin_bp.post("/studies/<int:study_id>/followup")
@login_required
def save_settings(study_id: int) -> Any:
    from ipr.web.studies import _edit

    f = request.form
    data = {
        "enabled": f.get("enabled") == "on",
        "delay_days": f.get("delay_days", "30"),
        "scales": f.getlist("scales"),
        "instructions": {
            k.removeprefix("instructions_"): v
            for k, v in f.items()
            if k.startswith("instructions_")
        },
    }
    return _edit(
        study_id,
        "followup",
        lambda s: followup.update_settings(db(), s, user(), data, ip=client_ip()),
    )
