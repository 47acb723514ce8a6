"""The follow-up pass: some days after finishing their recall, a participant revisits their own
blind moments, one at a time, and rates them again (docs/followup.md).

Follow-up ratings are a third phase kept in their own table, one row per original moment
(``FollowUpRating``), never a ``Moment``: every figure, lane, count, limit and the other
participant's view read moments, so none of them can ever pick a follow-up rating up, and the
exports put the follow-up beside the first rating in the moment's own row. A follow-up reuses
the participant's door (``ipr.door``): the same link, PIN and device rules, nothing weaker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr import audit
from ipr.errors import N_, Conflict, NotFound, ValidationError
from ipr.models import (
    FollowUp,
    FollowUpRating,
    Moment,
    RatingScale,
    RecallSession,
    Study,
    User,
    utcnow,
)

MAX_DELAY_DAYS = 730
MAX_COMMENT = 10_000
MAX_INSTRUCTIONS = 20_000
STATES = ("scheduled", "due", "opened", "done")

# The app's words for a follow-up e-mail (the study's reminder text is about the first pass).
MESSAGES: dict[str, tuple[str, str]] = {
    "en": (
        "Your follow-up: a second look at the moments you marked",
        "Hello,\n\nSome time ago you watched the recording of your session and marked the "
        "moments that mattered to you. We would now like you to look at those moments once "
        "more and rate them again. It takes only a few minutes. Your personal link:\n\n"
        "{link}\n\nThe link is personal: please do not forward it. Earlier links no longer "
        "work.\n",
    ),
    "nb": (
        "Oppfølging: et nytt blikk på øyeblikkene du markerte",
        "Hei,\n\nFor en tid siden så du opptaket av timen din og markerte øyeblikkene som "
        "betydde noe for deg. Nå vil vi gjerne at du ser på disse øyeblikkene en gang til og "
        "vurderer dem på nytt. Det tar bare noen minutter. Din personlige lenke:\n\n{link}\n\n"
        "Lenken er personlig: ikke send den videre. Tidligere lenker virker ikke lenger.\n",
    ),
}


class NotDue(Conflict):
    """The follow-up has not opened yet (or was never scheduled)."""

    code = "not_due"

    def __init__(self) -> None:
        super().__init__(N_("Your follow-up is not open yet."))


class FollowUpDone(Conflict):
    """The participant said they were done; their follow-up ratings stay as they were."""

    code = "followup_done"

    def __init__(self) -> None:
        super().__init__(N_("You have finished the follow-up. Thank you."))


@dataclass(frozen=True)
class Settings:
    """A study's follow-up setting as stored in ``Study.followup``."""

    enabled: bool = False
    delay_days: int = 30
    scales: tuple[str, ...] | None = None  # None: every scale of the study, as in the first pass
    instructions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> Settings:
        s = stored or {}
        scales = s.get("scales")
        return cls(
            enabled=bool(s.get("enabled")),
            delay_days=int(s.get("delay_days", 30)),
            scales=tuple(scales) if isinstance(scales, list) else None,
            instructions={k: v for k, v in (s.get("instructions") or {}).items() if v},
        )

    def stored(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "delay_days": self.delay_days,
            "scales": list(self.scales) if self.scales is not None else None,
            "instructions": dict(self.instructions),
        }


def settings(study: Study) -> Settings:
    return Settings.of(study.followup)


def update_settings(
    db: Session, study: Study, user: User, data: dict[str, Any], *, ip: str | None = None
) -> Settings:
    """Validate and store the follow-up setting (audited); nothing changes on an error.

    ``data``: ``enabled`` (bool), ``delay_days`` (0–730), ``scales`` (scale keys; empty or
    None: every scale), ``instructions`` ({language: text})."""
    from ipr.study_texts import LANGUAGES

    try:
        delay = int(str(data.get("delay_days", 30)).strip())
    except ValueError:
        raise ValidationError("The delay is a whole number of days.", field="delay_days") from None
    if not 0 <= delay <= MAX_DELAY_DAYS:
        raise ValidationError(f"The delay is from 0 to {MAX_DELAY_DAYS} days.", field="delay_days")
    keys = [k for k in (data.get("scales") or []) if k]
    known = [s.key for s in study.scales]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ValidationError(f"Unknown rating scale: {', '.join(unknown)}.", field="scales")
    texts: dict[str, str] = {}
    for lang, text in (data.get("instructions") or {}).items():
        if lang not in LANGUAGES:
            raise ValidationError(f"Unknown language: {lang}.", field="instructions")
        text = (text or "").strip()
        if len(text) > MAX_INSTRUCTIONS:
            raise ValidationError(
                f"Instructions have at most {MAX_INSTRUCTIONS} characters.", field="instructions"
            )
        if text:
            texts[lang] = text
    new = Settings(
        enabled=bool(data.get("enabled")),
        delay_days=delay,
        # every scale chosen is the same as "all": stored as None so a new scale joins in
        scales=tuple(k for k in known if k in keys) if keys and set(keys) != set(known) else None,
        instructions=texts,
    )
    study.followup = new.stored()
    audit.record(
        db, "followup_settings_updated", user=user, study_id=study.id, obj=("study", study.id),
        ip=ip, details={"enabled": new.enabled, "delay_days": new.delay_days,
                        "scales": list(new.scales) if new.scales is not None else None},
    )  # fmt: skip
    return new


def scales(study: Study) -> list[RatingScale]:
    """The scales re-rated at follow-up, in the study's order (a deleted scale drops out)."""
    chosen = settings(study).scales
    return [s for s in study.scales if chosen is None or s.key in chosen]


def instructions(study: Study, lang: str) -> str:
    """The follow-up instructions in ``lang``; empty: the page shows the app's own words in
    that language (as for the recall instructions, a missing translation is never shown in
    another language)."""
    return settings(study).instructions.get(lang, "")


def message(study: Study, lang: str, link: str) -> tuple[str, str]:
    """Subject and body of the follow-up e-mail, with the link in it."""
    subject, body = MESSAGES.get(lang, MESSAGES["en"])
    return subject, body.replace("{link}", link)


# --- scheduling -------------------------------------------------------------------------------


def get(db: Session, rs: RecallSession) -> FollowUp | None:
    return db.scalar(select(FollowUp).where(FollowUp.recall_session_id == rs.id))


def due_for(submitted_at: dt.datetime, delay_days: int) -> dt.datetime:
    """Exactly ``delay_days`` × 24 h after the participant finished (UTC, to the second)."""
    return submitted_at.replace(microsecond=0) + dt.timedelta(days=delay_days)


def schedule_on_finish(db: Session, rs: RecallSession, study: Study) -> FollowUp | None:
    """Called when a recall is finished: the study's follow-up is scheduled once (finishing
    again after a reopen keeps the first date; the researcher can reschedule). No commit."""
    conf = settings(study)
    if not conf.enabled or rs.submitted_at is None:
        return None
    fu = get(db, rs)
    if fu is not None:
        return fu
    fu = FollowUp(
        study_id=rs.study_id,
        recall_session_id=rs.id,
        due_at=due_for(rs.submitted_at, conf.delay_days),
    )
    db.add(fu)
    audit.record(
        db, "followup_scheduled", actor="system", study_id=rs.study_id,
        obj=("recall_session", rs.id), details={"due_at": _iso(fu.due_at)},
    )  # fmt: skip
    return fu


def _for_researcher(db: Session, rs: RecallSession) -> FollowUp:
    """The follow-up a researcher schedules by hand (the study must have follow-up on, and the
    participant must have finished their recall)."""
    study = db.get(Study, rs.study_id)
    if not settings(study).enabled:
        raise ValidationError("Turn the follow-up on in the study's settings first.")
    if rs.status != "submitted" or rs.submitted_at is None:
        raise ValidationError("The participant has not finished their recall yet.")
    fu = get(db, rs)
    if fu is None:
        fu = FollowUp(study_id=rs.study_id, recall_session_id=rs.id, due_at=utcnow())
        db.add(fu)
    if fu.done_at is not None:
        raise ValidationError("This follow-up is done; its ratings stay as they are.")
    return fu


def open_now(db: Session, rs: RecallSession, user: User, *, ip: str | None = None) -> FollowUp:
    """Open the follow-up early: it is due from now (audited)."""
    fu = _for_researcher(db, rs)
    fu.due_at = utcnow().replace(microsecond=0)
    audit.record(
        db, "followup_opened_early", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip, details={"due_at": _iso(fu.due_at)},
    )  # fmt: skip
    db.commit()
    return fu


def reschedule(
    db: Session, rs: RecallSession, user: User, day: str, *, ip: str | None = None
) -> FollowUp:
    """Move the due date to the start (00:00 UTC) of ``day`` (YYYY-MM-DD; audited)."""
    try:
        date = dt.date.fromisoformat((day or "").strip())
    except ValueError:
        raise ValidationError("Choose a date (YYYY-MM-DD).", field="due_on") from None
    fu = _for_researcher(db, rs)
    fu.due_at = dt.datetime.combine(date, dt.time())
    audit.record(
        db, "followup_rescheduled", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip, details={"due_at": _iso(fu.due_at)},
    )  # fmt: skip
    db.commit()
    return fu


def state(fu: FollowUp | None, now: dt.datetime | None = None) -> str | None:
    """scheduled (not due yet) | due | opened (seen by the participant) | done; None: none."""
    if fu is None:
        return None
    if fu.done_at is not None:
        return "done"
    if fu.opened_at is not None:
        return "opened"
    return "due" if fu.due_at <= (now or utcnow()) else "scheduled"


def is_open(fu: FollowUp | None) -> bool:
    """The follow-up page shows the pass (due, whether done or not)."""
    return fu is not None and fu.due_at <= utcnow()


def link_leads_here(fu: FollowUp | None) -> bool:
    """The participant's link leads to the follow-up while it is due and not done; after
    *I'm done* it leads to the recall page again (e.g. a response pass after a reveal)."""
    return is_open(fu) and fu is not None and fu.done_at is None


# --- the pass ---------------------------------------------------------------------------------


def moments(db: Session, rs: RecallSession) -> list[Moment]:
    """What the participant revisits: their own live blind moments, in time order."""
    return list(
        db.scalars(
            select(Moment)
            .where(
                Moment.recall_session_id == rs.id,
                Moment.deleted_at.is_(None),
                Moment.phase == "blind",
            )
            .order_by(Moment.t_ms, Moment.id)
        )
    )


def ratings(db: Session, fu: FollowUp) -> dict[int, FollowUpRating]:
    return {
        r.moment_id: r
        for r in db.scalars(select(FollowUpRating).where(FollowUpRating.followup_id == fu.id))
    }


def rating_dict(r: FollowUpRating | None, moment_id: int) -> dict[str, Any]:
    return {
        "moment_id": moment_id,
        "ratings": dict(r.ratings or {}) if r else {},
        "comment": r.comment if r else "",
        "version": r.version if r else 0,
        "updated_at": _iso(r.updated_at) if r else None,
    }


def open_for(db: Session, rs: RecallSession) -> FollowUp:
    """The follow-up when it is due, else NotDue."""
    fu = get(db, rs)
    if fu is None or fu.due_at > utcnow():
        raise NotDue()
    return fu


def mark_opened(db: Session, rs: RecallSession, fu: FollowUp, *, by_researcher: bool) -> None:
    if fu.opened_at is None:
        fu.opened_at = utcnow()
        actor = "researcher-led" if by_researcher else f"participant {rs.participant.code}"
        audit.record(
            db, "followup_opened", actor=actor, study_id=rs.study_id,
            obj=("recall_session", rs.id),
        )  # fmt: skip
        db.commit()


def _clean(study: Study, data: Any) -> tuple[dict[str, int], str]:
    if not isinstance(data, dict):
        raise ValidationError(N_("Send a JSON object."))
    unknown = set(data) - {"ratings", "comment"}
    if unknown:
        raise ValidationError(
            N_("Unknown field: %(names)s."), params={"names": ", ".join(sorted(unknown))}
        )
    raw = data.get("ratings") or {}
    if not isinstance(raw, dict):
        raise ValidationError(N_("ratings maps a scale key to a value."), field="ratings")
    allowed = {s.key: s for s in scales(study)}
    clean: dict[str, int] = {}
    for key, value in raw.items():
        scale = allowed.get(key)
        if scale is None:
            raise ValidationError(
                N_("Unknown rating scale %(scale)s."), field="ratings", params={"scale": repr(key)}
            )
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(N_("A rating is a whole number."), field="ratings")
        if not scale.min_value <= value <= scale.max_value:
            raise ValidationError(
                N_("A rating on %(scale)s is from %(lo)s to %(hi)s."),
                field="ratings",
                params={"scale": repr(key), "lo": scale.min_value, "hi": scale.max_value},
            )
        clean[key] = value
    comment = data.get("comment") if data.get("comment") is not None else ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise ValidationError(
            N_("The text has at most %(n)s characters."), field="comment", params={"n": MAX_COMMENT}
        )
    return clean, comment


def save(db: Session, rs: RecallSession, moment_id: int, data: Any) -> FollowUpRating:
    """Store the follow-up ratings and comment of one own blind moment (the whole state, so
    sending it again changes nothing: a retried save is harmless). No figure is touched."""
    fu = open_for(db, rs)
    if fu.done_at is not None:
        raise FollowUpDone()
    m = db.scalar(
        select(Moment).where(
            Moment.id == moment_id,
            Moment.recall_session_id == rs.id,
            Moment.deleted_at.is_(None),
            Moment.phase == "blind",
        )
    )
    if m is None:
        raise NotFound()
    values, comment = _clean(db.get(Study, rs.study_id), data)
    row = db.scalar(select(FollowUpRating).where(FollowUpRating.moment_id == m.id))
    now = utcnow()
    if row is None:
        row = FollowUpRating(
            study_id=rs.study_id, followup_id=fu.id, moment_id=m.id, ratings=values,
            comment=comment, version=1, created_at=now, updated_at=now,
        )  # fmt: skip
        db.add(row)
    elif dict(row.ratings or {}) != values or row.comment != comment:
        row.ratings, row.comment = values, comment
        row.version += 1
        row.updated_at = now
    if fu.opened_at is None:
        fu.opened_at = now
    db.commit()
    return row


def finish(db: Session, rs: RecallSession, *, actor: str) -> FollowUp:
    """The participant is done with the follow-up (audited); later saves answer 409."""
    fu = open_for(db, rs)
    if fu.done_at is None:
        fu.done_at = utcnow()
        fu.opened_at = fu.opened_at or fu.done_at
        audit.record(
            db, "followup_done", actor=actor, study_id=rs.study_id,
            obj=("recall_session", rs.id),
            details={"rated": len(ratings(db, fu)), "moments": len(moments(db, rs))},
        )  # fmt: skip
        db.commit()
    return fu


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None
