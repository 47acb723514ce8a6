"""Invitations per recording: each participant's state, and e-mail sent by the worker.

A link's token is stored hashed, so no one can read an old link back. Sending therefore makes a
fresh link inside the worker's job and puts it only into the e-mail: the token is never written
to the database or the queue, and the recipient's address is wiped from the job row once sent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from huey import Huey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr import audit, followup, jobs, mail, recall, study_texts
from ipr.errors import ValidationError
from ipr.models import Job, RecallSession, Recording, User

KINDS = ("invitation", "reminder", "followup")  # followup: the follow-up pass (ipr.followup)
EMAIL_RE = re.compile(r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}\.[^@\s<>,;]{2,63}$")


@dataclass(frozen=True)
class State:
    key: str  # not_started | in_progress | on_break | finished | responding
    label: str
    furthest_ms: int | None = None


def state(rs: RecallSession, rec: Recording) -> State:
    """What the participant is doing, in the words of the invitations panel."""
    if rs.status == "submitted":
        return State("finished", "Finished")
    if rs.status == "invited":
        return State("not_started", "Not started")
    if rec.revealed_at is not None:
        return State("responding", "Responding")
    furthest = max(rs.furthest_ms or 0, rs.last_position_ms or 0)
    if rs.paused_at is not None:
        return State("on_break", "On a break", furthest)
    return State("in_progress", "In progress", furthest)


def last_seen(rs: RecallSession) -> dt.datetime | None:
    return rs.last_seen_at or rs.started_at


def link_url(base_url: str, token: str) -> str:
    """The participant's link under the app's external address (no trailing slash)."""
    return f"{base_url.rstrip('/')}/r/{token}"


def check_address(address: str) -> str:
    address = (address or "").strip()
    if not EMAIL_RE.match(address):
        raise ValidationError("Enter the participant's e-mail address.", field="email")
    return address


def queue_email(
    db: Session,
    huey: Huey,
    rs: RecallSession,
    user: User,
    *,
    kind: str,
    to: str,
    base_url: str,
    ip: str | None = None,
) -> Job:
    """Queue an invitation or reminder for the worker (audited now, sent by the job)."""
    if kind not in KINDS:
        raise ValidationError("Choose an invitation or a reminder.", field="kind")
    if rs.mode != "self":
        raise ValidationError("A researcher-led session has no link to send.")
    if rs.status == "submitted" and kind != "followup":
        raise ValidationError("This participant has finished; reopen the recall first.")
    to = check_address(to)
    audit.record(
        db, f"{kind}_email_queued", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip, details={"to_domain": to.rpartition("@")[2]},
    )  # fmt: skip
    return jobs.enqueue(
        db,
        huey,
        "send_invitation",
        study_id=rs.study_id,
        recording_id=rs.recording_id,
        params={
            "recall_session_id": rs.id,
            "kind": kind,
            "to": to,
            "user_id": user.id,
            "base_url": base_url,
        },
    )


def email_jobs(db: Session, rec: Recording) -> dict[int, Job]:
    """The latest e-mail job of each recall session of a recording."""
    out: dict[int, Job] = {}
    for job in db.scalars(
        select(Job)
        .where(Job.recording_id == rec.id, Job.kind == "send_invitation")
        .order_by(Job.id)
    ):
        rs_id = (job.params or {}).get("recall_session_id")
        if isinstance(rs_id, int):
            out[rs_id] = job
    return out


@jobs.handler("send_invitation")
def send_invitation(ctx: jobs.Context) -> None:
    """Make a fresh link, e-mail it in the participant's language, then keep the new link."""
    params: dict[str, Any] = dict(ctx.job.params or {})
    rs = ctx.db.get(RecallSession, params.get("recall_session_id"))
    user = ctx.db.get(User, params.get("user_id"))
    if rs is None or user is None:
        raise jobs.JobFailed("The invitation or the researcher no longer exists.")
    if not ctx.config.get("SMTP_URL") or not ctx.config.get("SMTP_FROM"):
        raise jobs.JobFailed("No e-mail server is configured (IPR_SMTP_URL, IPR_SMTP_FROM).")
    server = mail.parse_url(ctx.config["SMTP_URL"])
    kind = params.get("kind", "invitation")
    base = ctx.config.get("BASE_URL") or params.get("base_url") or ""
    # Nothing is written before the e-mail has gone: on SQLite a pending write holds the
    # database's one write lock, and the progress reports, the heartbeat and every request
    # would wait for it, the job's own report until "database is locked" (30 s).
    token = recall.new_token()
    study = rs.recording.dyad.study
    lang = study_texts.participant_language(study, rs.participant)
    if kind == "followup":
        subject, body = followup.message(study, lang, link_url(base, token))
    else:
        subject, body = study_texts.message(study, kind, lang, link_url(base, token))
    ctx.report("Sending the e-mail", 0.5)
    mail.send(server, mail.build(ctx.config["SMTP_FROM"], params["to"], subject, body))
    recall.issue_link(ctx.db, rs, user, days=ctx.config["INVITATION_DAYS"], token=token)
    audit.record(
        ctx.db, f"{kind}_email_sent", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id),
        details={"to_domain": str(params["to"]).rpartition("@")[2], "language": lang},
    )  # fmt: skip
    job = ctx.db.get(Job, ctx.job.id)
    job.params = {k: v for k, v in params.items() if k != "to"}  # the address is not kept
    ctx.db.commit()
