"""Recall sessions: invitations, participant access, moments, blinding and the reveal.

Blinding is enforced here, not in templates: every function a participant can reach takes the
participant's own ``RecallSession`` and only ever queries that session's moments, until the
recording is revealed; then ``revealed_moments`` gives the other lane, read-only.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ipr import audit, figures
from ipr.auth import _hasher, hash_token
from ipr.errors import N_, Conflict, IPRError, NotFound, Unauthorized, ValidationError
from ipr.models import (
    Moment,
    MomentRevision,
    Participant,
    ParticipantDevice,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    Study,
    User,
    VoiceNote,
    utcnow,
)

MAX_TEXT = 10_000
MAX_PEAKS = 20
IDEMPOTENCY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")


@dataclass(frozen=True)
class Limits:
    """What one recall session may hold (settings MOMENTS_PER_SESSION and MOMENT_TEXT_MAX)."""

    moments: int = 2000
    text: int = MAX_TEXT


class LimitReached(IPRError):
    """This recall session holds as many moments as it may."""

    status = 400
    code = "limit_reached"


class Locked(Conflict):
    """You have finished this recall; the researcher can reopen it."""

    code = "locked"

    def __init__(self) -> None:
        super().__init__(N_("You have finished this recall; the researcher can reopen it."))


class Frozen(Conflict):
    """The blind phase ended at the reveal: its moments can no longer be changed or deleted."""

    code = "frozen"

    def __init__(self) -> None:
        super().__init__(
            N_(
                "This moment was made before the other person's moments were shown, so it can "
                "no longer be changed or deleted. You can respond to moments or add new ones."
            )
        )


class ResponsesExist(Conflict):
    """Hiding after responses would put answers to moments back into a blind phase."""

    code = "responses_exist"

    def __init__(self) -> None:
        super().__init__(
            "The participants have already responded after the reveal, so the moments can no "
            "longer be hidden. Their blind-phase moments stay as they were at the reveal."
        )


# --- invitations and access -------------------------------------------------------------------


def create_session(
    db: Session,
    recording: Recording,
    participant: Participant,
    mode: str,
    user: User,
    *,
    days: int,
    pin: str | None = None,
    ip: str | None = None,
) -> tuple[RecallSession, str | None]:
    """A recall session; self-guided ones get a link token, returned here and never again."""
    if mode not in ("self", "researcher"):
        raise ValidationError("Mode must be 'self' or 'researcher'.", field="mode")
    if participant.dyad_id != recording.dyad_id:
        raise ValidationError(
            "This participant is not in the recorded dyad.", field="participant_id"
        )
    if recording.status != "ready":
        raise ValidationError("The recording is not ready yet.", field="recording")
    existing = db.scalar(
        select(RecallSession).where(
            RecallSession.recording_id == recording.id,
            RecallSession.participant_id == participant.id,
        )
    )
    if existing is not None:
        raise ValidationError(
            f"{participant.code} already has a recall session for this recording; "
            "send a new link from it instead.",
            field="participant_id",
        )
    rs = RecallSession(
        study_id=recording.study_id,
        recording_id=recording.id,
        participant_id=participant.id,
        mode=mode,
        status="invited",
        created_by_id=user.id,
    )
    db.add(rs)
    db.flush()
    token = issue_link(db, rs, user, days=days, pin=pin, ip=ip) if mode == "self" else None
    audit.record(
        db,
        "recall_session_created",
        user=user,
        study_id=rs.study_id,
        obj=("recall_session", rs.id),
        ip=ip,
        details={"participant": participant.code, "mode": mode},
    )
    return rs, token


def new_token() -> str:
    """A link token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def issue_link(
    db: Session,
    rs: RecallSession,
    user: User,
    *,
    days: int,
    pin: str | None = None,
    ip: str | None = None,
    token: str | None = None,
) -> str:
    """A fresh link token (256 random bits); any earlier link of this session stops working.
    ``token``: one made beforehand with ``new_token()`` (the e-mail job sends it first)."""
    token = token or new_token()
    rs.token_hash = hash_token(token)
    rs.token_expires_at = utcnow() + dt.timedelta(days=days)
    rs.revoked_at = None
    end_devices(db, rs)
    if pin is not None:
        pin = pin.strip()
        if pin and not re.fullmatch(r"\d{4,8}", pin):
            raise ValidationError("A PIN is 4 to 8 digits.", field="pin")
        rs.pin_hash = _hasher.hash(pin) if pin else None
    audit.record(
        db,
        "invitation_issued",
        user=user,
        study_id=rs.study_id,
        obj=("recall_session", rs.id),
        ip=ip,
        details={"expires": rs.token_expires_at.isoformat(timespec="minutes"), "pin": bool(pin)},
    )
    return token


def end_devices(db: Session, rs: RecallSession) -> None:
    """Every browser and client that opened the link must open it again (Stop) or the new one
    (a new link, a revoke). Does not commit."""
    db.execute(delete(ParticipantDevice).where(ParticipantDevice.recall_session_id == rs.id))


def revoke_link(db: Session, rs: RecallSession, user: User, *, ip: str | None = None) -> None:
    rs.revoked_at = utcnow()
    end_devices(db, rs)
    audit.record(
        db, "invitation_revoked", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip,
    )  # fmt: skip


def session_for_token(db: Session, token: str) -> RecallSession:
    """The recall session a link opens; expired, revoked and unknown links look the same."""
    rs = db.scalar(select(RecallSession).where(RecallSession.token_hash == hash_token(token)))
    if rs is None or not link_valid(rs):
        raise Unauthorized(
            N_("This link no longer works. Please ask the researcher for a new one.")
        )
    return rs


def link_valid(rs: RecallSession) -> bool:
    return (
        rs.mode == "self"
        and rs.token_hash is not None
        and rs.revoked_at is None
        and rs.token_expires_at is not None
        and rs.token_expires_at > utcnow()
    )


def check_pin(rs: RecallSession, pin: str) -> bool:
    if rs.pin_hash is None:
        return True
    try:
        return _hasher.verify(rs.pin_hash, pin.strip())
    except Exception:  # noqa: BLE001 — any verification failure is a wrong PIN
        return False


def cookie_binding(rs: RecallSession) -> str:
    """Ties a pending PIN prompt to the current link: a new link or a revoke ends it."""
    return (rs.token_hash or "")[:16]


def mark_started(db: Session, rs: RecallSession) -> None:
    rs.last_seen_at = utcnow()
    rs.paused_at = None
    if rs.status == "invited":
        rs.status = "in_progress"
        rs.started_at = utcnow()
        audit.record(
            db, "recall_started", actor=f"participant {rs.participant.code}",
            study_id=rs.study_id, obj=("recall_session", rs.id),
        )  # fmt: skip


# --- moments ----------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def moment_dict(m: Moment, voice_url: str | None = None) -> dict[str, Any]:
    return {
        "id": m.id,
        "t_ms": m.t_ms,
        "end_ms": m.end_ms,
        "peaks_ms": list(m.peaks_ms or []),
        "text": m.text,
        "codes": list(m.codes or []),
        "ratings": dict(m.ratings or {}),
        "version": m.version,
        "responds_to_id": m.responds_to_id,
        "phase": m.phase,
        "corrected_at": _iso(m.corrected_at),
        "voice_url": voice_url,
        "created_at": m.created_at.isoformat(timespec="seconds") + "Z",
        "updated_at": m.updated_at.isoformat(timespec="seconds") + "Z",
    }


def own_moments(db: Session, rs: RecallSession) -> list[Moment]:
    return list(
        db.scalars(
            select(Moment)
            .where(Moment.recall_session_id == rs.id, Moment.deleted_at.is_(None))
            .order_by(Moment.t_ms, Moment.id)
        )
    )


def own_moment(db: Session, rs: RecallSession, moment_id: int) -> Moment:
    m = db.scalar(
        select(Moment).where(
            Moment.id == moment_id,
            Moment.recall_session_id == rs.id,
            Moment.deleted_at.is_(None),
        )
    )
    if m is None:
        raise NotFound()
    return m


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValidationError(
            N_("%(field)s must be a whole number of milliseconds."),
            field=field,
            params={"field": field},
        )
    return int(value)


def clean_moment(
    db: Session,
    rs: RecallSession,
    data: dict[str, Any],
    *,
    partial: bool,
    limits: Limits = Limits(),  # noqa: B008 — frozen, so one shared default is safe
) -> dict[str, Any]:
    """Validate moment fields against the recording's length and the study's scales and codes."""
    rec: Recording = rs.recording
    study: Study = db.get(Study, rs.study_id)
    duration = rec.duration_ms or 0
    out: dict[str, Any] = {}
    allowed = {"t_ms", "end_ms", "peaks_ms", "text", "codes", "ratings", "responds_to_id"}
    unknown = set(data) - allowed - {"version"}
    if unknown:
        raise ValidationError(
            N_("Unknown field: %(names)s."), params={"names": ", ".join(sorted(unknown))}
        )
    if "t_ms" in data or not partial:
        if "t_ms" not in data:
            raise ValidationError(N_("t_ms is required."), field="t_ms")
        out["t_ms"] = _int(data["t_ms"], "t_ms")
        if not 0 <= out["t_ms"] <= duration:
            raise ValidationError(N_("The time is outside the recording."), field="t_ms")
    if "end_ms" in data and data["end_ms"] is not None:
        out["end_ms"] = _int(data["end_ms"], "end_ms")
        if not 0 <= out["end_ms"] <= duration:
            raise ValidationError(N_("The end time is outside the recording."), field="end_ms")
    elif "end_ms" in data:
        out["end_ms"] = None
    if "peaks_ms" in data:
        peaks = data["peaks_ms"] or []
        if not isinstance(peaks, list) or len(peaks) > MAX_PEAKS:
            raise ValidationError(
                N_("There can be at most %(n)s peaks."), field="peaks_ms", params={"n": MAX_PEAKS}
            )
        out["peaks_ms"] = sorted(_int(p, "peaks_ms") for p in peaks)
    if "text" in data:
        text = data["text"] if data["text"] is not None else ""
        if not isinstance(text, str) or len(text) > limits.text:
            raise ValidationError(
                N_("The text has at most %(n)s characters."),
                field="text",
                params={"n": limits.text},
            )
        out["text"] = text
    if "codes" in data:
        codes = data["codes"] or []
        valid = {c.id for c in study.codes}
        if not isinstance(codes, list) or any(c not in valid for c in codes):
            raise ValidationError(N_("Unknown code."), field="codes")
        if codes and not study.participants_can_code and rs.mode == "self":
            raise ValidationError(
                N_("This study does not ask participants for codes."), field="codes"
            )
        out["codes"] = sorted(set(codes))
    if "ratings" in data:
        ratings = data["ratings"] or {}
        if not isinstance(ratings, dict):
            raise ValidationError(N_("ratings maps a scale key to a value."), field="ratings")
        scales = {s.key: s for s in study.scales}
        clean: dict[str, int] = {}
        for key, value in ratings.items():
            scale = scales.get(key)
            if scale is None:
                raise ValidationError(
                    N_("Unknown rating scale %(scale)s."),
                    field="ratings",
                    params={"scale": repr(key)},
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
        out["ratings"] = clean
    if "responds_to_id" in data and data["responds_to_id"] is not None:
        other = {m.id for m in revealed_moments(db, rs)}
        if data["responds_to_id"] not in other:
            raise NotFound()
        out["responds_to_id"] = data["responds_to_id"]
    return out


def _check_span(m: Moment) -> None:
    if m.end_ms is not None and m.end_ms < m.t_ms:
        raise ValidationError(N_("The end comes before the start."), field="end_ms")
    lo, hi = m.t_ms, m.end_ms if m.end_ms is not None else m.t_ms
    if any(not lo <= p <= hi for p in m.peaks_ms or []):
        raise ValidationError(N_("Peaks lie between the start and the end."), field="peaks_ms")


def _revision(db: Session, m: Moment, action: str, user: User | None) -> None:
    db.add(
        MomentRevision(
            study_id=m.study_id,
            moment_id=m.id,
            version=m.version,
            action=action,
            data={
                "t_ms": m.t_ms,
                "end_ms": m.end_ms,
                "peaks_ms": list(m.peaks_ms or []),
                "text": m.text,
                "codes": list(m.codes or []),
                "ratings": dict(m.ratings or {}),
            },
            changed_by_id=user.id if user else None,
        )
    )


def revealed(rs: RecallSession) -> bool:
    return rs.recording.revealed_at is not None


def check_writable(rs: RecallSession, m: Moment | None, user: User | None) -> None:
    """Who may write what, by phase.

    Before the reveal a finished recall is locked. After it the blind phase is over: its
    moments are frozen for the participant (a researcher may still correct them, marked and
    audited), and everyone, finished or not, may write response-phase moments (the response
    pass). ``m`` is the moment being changed, or None for a new one.
    """
    if not revealed(rs):
        if rs.status == "submitted":
            raise Locked()
        return
    if m is not None and m.phase == "blind" and user is None:
        raise Frozen()


def mark_correction(
    db: Session, rs: RecallSession, m: Moment, user: User | None, what: str
) -> None:
    """A researcher changing a blind moment after the reveal: stamped on the moment, audited."""
    if user is None or m.phase != "blind" or not revealed(rs):
        return
    m.corrected_at = utcnow()
    m.corrected_by_id = user.id
    audit.record(
        db, "moment_corrected", user=user, study_id=rs.study_id, obj=("moment", m.id),
        details={"action": what, "participant": rs.participant.code},
    )  # fmt: skip


def held_moments(db: Session, rs: RecallSession) -> int:
    """The moments ``rs`` holds now (deleted ones do not count against its limit)."""
    return db.scalar(
        select(func.count(Moment.id)).where(
            Moment.recall_session_id == rs.id, Moment.deleted_at.is_(None)
        )
    )


def _figures_changed(db: Session, rs: RecallSession, m: Moment) -> None:
    """Blind moments are what every figure is computed from: a change queues a recompute
    (ipr.figures) in the same transaction. Response-phase moments are never counted."""
    if m.phase == "blind":
        figures.mark_stale(db, rs.recording_id, rs.study_id)


def create_moment(
    db: Session,
    rs: RecallSession,
    data: dict[str, Any],
    *,
    idempotency_key: str | None,
    user: User | None = None,
    limits: Limits | None = None,
) -> tuple[Moment, bool]:
    """(moment, created). A retried request with the same key returns the first result.

    ``limits`` bound what a participant's link or a researcher's request may add (the web and
    the API pass the settings); an import, bounded by its own size, passes none."""
    if idempotency_key is not None and not IDEMPOTENCY_RE.match(idempotency_key):
        raise ValidationError("Idempotency-Key is 8–64 letters, digits or -_.:")
    if idempotency_key:
        previous = db.scalar(
            select(Moment).where(
                Moment.recall_session_id == rs.id, Moment.idempotency_key == idempotency_key
            )
        )
        if previous is not None:
            return previous, False
    check_writable(rs, None, user)
    fields = clean_moment(db, rs, data, partial=False, limits=limits or Limits())
    if limits is not None and held_moments(db, rs) >= limits.moments:
        raise LimitReached(
            N_("This recall holds %(n)s moments, the most it may; change or delete one instead."),
            params={"n": limits.moments},
        )
    m = Moment(
        study_id=rs.study_id,
        recall_session_id=rs.id,
        idempotency_key=idempotency_key,
        entered_by_id=user.id if user else None,
        phase="response" if revealed(rs) else "blind",
        **{"text": "", "peaks_ms": [], "codes": [], "ratings": {}, **fields},
    )
    _check_span(m)
    db.add(m)
    try:
        db.flush()
    except IntegrityError:  # the same key raced in from a parallel retry
        db.rollback()
        previous = db.scalar(
            select(Moment).where(
                Moment.recall_session_id == rs.id, Moment.idempotency_key == idempotency_key
            )
        )
        if previous is None:
            raise
        return previous, False
    _revision(db, m, "create", user)
    mark_started(db, rs)
    _figures_changed(db, rs, m)
    db.commit()
    return m, True


def update_moment(
    db: Session,
    rs: RecallSession,
    m: Moment,
    data: dict[str, Any],
    *,
    user: User | None = None,
    limits: Limits = Limits(),  # noqa: B008
) -> Moment:
    """Change a moment; a stale ``version`` (another tab saved first) is a Conflict."""
    check_writable(rs, m, user)
    version = data.get("version")
    if version is None:
        raise ValidationError(N_("Send the version you are changing."), field="version")
    if version != m.version:
        raise Conflict(N_("This moment was changed elsewhere (another tab or device)."))
    fields = clean_moment(db, rs, data, partial=True, limits=limits)
    changes_answer = "responds_to_id" in fields and fields["responds_to_id"] != m.responds_to_id
    if changes_answer and m.phase == "blind":  # a blind moment was made unseen: it answers nothing
        raise ValidationError(N_("Only a response can answer a moment."), field="responds_to_id")
    for key, value in fields.items():
        setattr(m, key, value)
    _check_span(m)
    m.version += 1
    m.updated_at = utcnow()
    mark_correction(db, rs, m, user, "update")
    _revision(db, m, "update", user)
    _figures_changed(db, rs, m)
    db.commit()
    return m


def delete_moment(
    db: Session, rs: RecallSession, m: Moment, storage: Any, *, user: User | None = None
) -> None:
    """Soft delete: the moment leaves every view and export but stays in the history;
    its voice note (a recording of a person's voice) is removed for good."""
    check_writable(rs, m, user)
    m.deleted_at = utcnow()
    m.version += 1
    mark_correction(db, rs, m, user, "delete")
    _revision(db, m, "delete", user)
    for note in db.scalars(select(VoiceNote).where(VoiceNote.moment_id == m.id)):
        storage.voice_path(rs.recording.storage_key, note.storage_name).unlink(missing_ok=True)
        db.delete(note)
    _figures_changed(db, rs, m)
    db.commit()


def correct_moment(db: Session, m: Moment, user: User, data: dict[str, Any]) -> Moment:
    """A researcher's correction of a frozen blind moment, in any kind of session: the only
    way to change one after the reveal (marked on the moment and audited)."""
    rs: RecallSession = m.recall_session
    if m.deleted_at is not None:
        raise NotFound()
    if m.phase != "blind" or not revealed(rs):
        raise ValidationError(
            "Only a blind moment can be corrected, and only after the reveal; until then the "
            "participant changes their own moments."
        )
    return update_moment(db, rs, m, {**data, "version": m.version}, user=user)


def save_position(db: Session, rs: RecallSession, t_ms: Any) -> None:
    t = _int(t_ms, "t_ms")
    rs.last_position_ms = max(0, min(t, rs.recording.duration_ms or 0))
    rs.furthest_ms = max(rs.furthest_ms or 0, rs.last_position_ms)
    mark_started(db, rs)
    db.commit()


def take_break(rs: RecallSession) -> None:
    """The participant chose *Stop for now*: the invitations panel shows a break until they
    come back. Does not commit."""
    if rs.status != "submitted":
        rs.paused_at = rs.last_seen_at = utcnow()


def finish(db: Session, rs: RecallSession, *, actor: str) -> None:
    if rs.status != "submitted":
        rs.status = "submitted"
        rs.submitted_at = utcnow()
        audit.record(
            db, "recall_submitted", actor=actor, study_id=rs.study_id,
            obj=("recall_session", rs.id),
        )  # fmt: skip
        from ipr import followup  # the follow-up reads recall sessions; it imports no recall

        followup.schedule_on_finish(db, rs, db.get(Study, rs.study_id))
        db.commit()


def reopen(db: Session, rs: RecallSession, user: User, *, ip: str | None = None) -> None:
    rs.status = "in_progress"
    rs.submitted_at = None
    audit.record(
        db, "recall_reopened", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip,
    )  # fmt: skip
    db.commit()


# --- blinding and the reveal ------------------------------------------------------------------


def other_session(db: Session, rs: RecallSession) -> RecallSession | None:
    return db.scalar(
        select(RecallSession).where(
            RecallSession.recording_id == rs.recording_id,
            RecallSession.id != rs.id,
        )
    )


def revealed_moments(db: Session, rs: RecallSession) -> list[Moment]:
    """The other participant's moments, but only once the researcher has revealed them."""
    if rs.recording.revealed_at is None:
        return []
    other = other_session(db, rs)
    return own_moments(db, other) if other is not None else []


def reveal(db: Session, rec: Recording, user: User, *, ip: str | None = None) -> None:
    sessions = db.scalars(select(RecallSession).where(RecallSession.recording_id == rec.id)).all()
    study = db.get(Study, rec.study_id)
    both_done = len(sessions) >= 2 and all(s.status == "submitted" for s in sessions)
    if not both_done and not study.allow_early_reveal:
        raise ValidationError(
            "Both participants must finish first (the study does not allow an earlier reveal)."
        )
    rec.revealed_at = utcnow()
    audit.record(
        db, "lanes_revealed", user=user, study_id=rec.study_id, obj=("recording", rec.id),
        ip=ip, details={"both_submitted": both_done},
    )  # fmt: skip
    db.commit()


def responses_exist(db: Session, rec: Recording) -> bool:
    """Any response-phase moment on this recording, even a deleted one: it was written seeing."""
    found = db.scalar(
        select(Moment.id)
        .join(RecallSession, RecallSession.id == Moment.recall_session_id)
        .where(RecallSession.recording_id == rec.id, Moment.phase == "response")
        .limit(1)
    )
    return found is not None


def hide(db: Session, rec: Recording, user: User, *, ip: str | None = None) -> None:
    """Take the reveal back, but only while nobody has answered: once a response exists the
    phases are fixed (hiding then would make a seen-and-answered lane look blind again)."""
    if responses_exist(db, rec):
        raise ResponsesExist()
    rec.revealed_at = None
    audit.record(
        db, "lanes_hidden", user=user, study_id=rec.study_id, obj=("recording", rec.id), ip=ip
    )
    db.commit()


# --- the researcher's layer -------------------------------------------------------------------


def annotate(
    db: Session, m: Moment, user: User, *, codes: list[int] | None, note: str | None
) -> ResearcherAnnotation:
    """The researcher's own codes and note on a moment, kept apart from the participant's."""
    study = db.get(Study, m.study_id)
    row = db.scalar(
        select(ResearcherAnnotation).where(
            ResearcherAnnotation.moment_id == m.id, ResearcherAnnotation.user_id == user.id
        )
    )
    if row is None:
        row = ResearcherAnnotation(study_id=m.study_id, moment_id=m.id, user_id=user.id)
        db.add(row)
    if codes is not None:
        valid = {c.id for c in study.codes}
        if any(c not in valid for c in codes):
            raise ValidationError("Unknown code.", field="codes")
        row.codes = sorted(set(codes))
    if note is not None:
        if len(note) > MAX_TEXT:
            raise ValidationError(f"A note has at most {MAX_TEXT} characters.", field="note")
        row.note = note
    row.updated_at = utcnow()
    if m.phase == "blind":
        figures.mark_stale(db, m.recall_session.recording_id, m.study_id)
    db.commit()
    return row
