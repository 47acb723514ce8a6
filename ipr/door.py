"""The participant's one door: every participant request passes ``check`` and nothing else.

A participant has no account. Opening a link (and proving its PIN, when it has one) creates a
``ParticipantDevice``: a random secret the browser keeps in its session cookie, or an API client
keeps as a Bearer device token. ``check`` then asks the database on every request whether that
device still exists, whether the link is still valid (not revoked, not expired, not replaced)
and whether it belongs to the recall session asked for. *Stop*, revoke and a new link delete
the devices, so an old cookie or token stops working on its next request.

Wrong PINs are counted on the server (``ipr.throttle``) per invitation and per address, with
growing waits and a lock after ``lock_after`` failures that a researcher lifts; each failure and
each lock is an audit event. The counter cannot be reset by opening the link again or by
replaying an older cookie, because the cookie holds no count.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ipr import audit, recall, throttle
from ipr.auth import hash_token
from ipr.errors import N_, NotFound, Unauthorized
from ipr.models import ParticipantDevice, RecallSession, User, utcnow

DEVICE_TOKEN_PREFIX = "ipd_"
MAX_DEVICES = 20  # per recall session: phones, laptops, a script
LINK_ENDED = N_("This link no longer works. Please ask the researcher for a new one.")
PIN_LOCKED = N_(
    "This link is locked after too many wrong PINs. Please ask the researcher to unlock it."
)
PIN_WAIT = N_("Too many wrong PINs.")
PIN_WAIT_SECONDS = N_("Too many wrong PINs. Please wait %(s)s seconds and try again.")


@dataclass(frozen=True)
class PinPolicy:
    lock_after: int = 10  # wrong PINs for one invitation before it locks
    free: int = 3  # wrong PINs before the first wait
    delay_seconds: float = 2.0  # the first wait; doubles with each further wrong PIN

    def for_invitation(self) -> throttle.Policy:
        return throttle.Policy(
            free=self.free, delay_seconds=self.delay_seconds, lock_after=self.lock_after
        )

    def for_address(self) -> throttle.Policy:
        return throttle.Policy(free=self.lock_after, delay_seconds=self.delay_seconds)


def invitation_key(rs: RecallSession) -> str:
    return f"pin:rs:{rs.id}"


def address_key(ip: str | None) -> str:
    return f"pin:ip:{ip or '-'}"


def pin_locked(db: Session, rs: RecallSession) -> bool:
    return throttle.locked(db, invitation_key(rs))


def open_device(db: Session, rs: RecallSession, *, kind: str, ip: str | None) -> str:
    """A new device for ``rs``: the secret is returned once; only its hash is stored.

    Only the newest ``MAX_DEVICES`` stay, so opening a link again and again adds no rows."""
    old = db.scalars(
        select(ParticipantDevice.id)
        .where(ParticipantDevice.recall_session_id == rs.id)
        .order_by(ParticipantDevice.id.desc())
        .offset(MAX_DEVICES - 1)
    ).all()
    if old:
        db.execute(delete(ParticipantDevice).where(ParticipantDevice.id.in_(old)))
    secret = (DEVICE_TOKEN_PREFIX if kind == "token" else "") + secrets.token_urlsafe(32)
    db.add(
        ParticipantDevice(recall_session_id=rs.id, secret_hash=hash_token(secret), kind=kind, ip=ip)
    )
    db.commit()
    return secret


def prove_pin(
    db: Session, rs: RecallSession, pin: str, policy: PinPolicy, *, ip: str | None
) -> bool:
    """Check a PIN for ``rs`` under the server's counters; True when it is right.

    Raises LockedOut (the invitation is locked) or TooManyAttempts (wait first) before any
    check is made. Every wrong PIN is audited, and so is the lock it causes.
    """
    if pin_locked(db, rs):
        raise throttle.LockedOut(PIN_LOCKED, retry_after=3600)
    throttle.reserve(db, address_key(ip), policy.for_address(), message=PIN_WAIT)
    try:
        count = throttle.reserve(db, invitation_key(rs), policy.for_invitation(), message=PIN_WAIT)
    except throttle.LockedOut:
        raise throttle.LockedOut(PIN_LOCKED, retry_after=3600) from None
    if recall.check_pin(rs, pin):
        throttle.clear(db, invitation_key(rs))
        throttle.clear(db, address_key(ip))
        db.commit()
        return True
    actor = f"participant {rs.participant.code}"
    obj = ("recall_session", rs.id)
    audit.record(
        db, "pin_failed", actor=actor, study_id=rs.study_id, obj=obj, ip=ip,
        details={"failures": count},
    )  # fmt: skip
    if count >= policy.lock_after:
        audit.record(
            db, "pin_locked", actor=actor, study_id=rs.study_id, obj=obj, ip=ip,
            details={"failures": count},
        )  # fmt: skip
    db.commit()
    return False


def unlock(db: Session, rs: RecallSession, user: User, *, ip: str | None) -> None:
    """A researcher lifts the PIN lock: the invitation's count starts afresh."""
    throttle.clear(db, invitation_key(rs))
    audit.record(
        db, "pin_unlocked", user=user, study_id=rs.study_id, obj=("recall_session", rs.id), ip=ip
    )


def check(db: Session, rs_id: int, secret: str | None) -> RecallSession:
    """The one door: the recall session ``rs_id`` when ``secret`` names a live device of it.

    NotFound without a secret or for another session's device; Unauthorized when the device has
    ended (Stop, revoke, a new link) or the link has (revoked, expired, replaced)."""
    if not secret:
        raise NotFound()
    device = db.scalar(
        select(ParticipantDevice).where(ParticipantDevice.secret_hash == hash_token(secret))
    )
    if device is None:
        # An ended device (Stop, revoke, new link) or a forged one: the link is what works now.
        raise Unauthorized(LINK_ENDED)
    if device.recall_session_id != rs_id:
        raise NotFound()
    rs = db.get(RecallSession, rs_id)
    if rs is None or not recall.link_valid(rs):
        raise Unauthorized(LINK_ENDED)
    now = utcnow()
    if now - device.last_seen_at > dt.timedelta(seconds=60):  # no write on every request
        device.last_seen_at = now
        db.commit()
    return rs


class PinRequired(Unauthorized):
    """This link has a PIN: prove it at POST /api/v1/recall/devices and send the device token."""

    code = "pin_required"


def check_token(db: Session, rs_id: int, token: str) -> RecallSession:
    """The same door for API clients: a device token, or the invitation token itself when the
    link has no PIN (a PIN-protected link's token alone is PinRequired)."""
    if token.startswith(DEVICE_TOKEN_PREFIX):
        return check(db, rs_id, token)
    rs = recall.session_for_token(db, token)
    if rs.id != rs_id:
        raise NotFound()
    if rs.pin_hash:
        raise PinRequired()
    return rs
