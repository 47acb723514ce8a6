"""TOTP two-factor authentication for researchers (RFC 6238), with single-use recovery codes.

Enrolment keeps a fresh secret on the account but counts it only once the researcher has typed
a code from their authenticator app. A code is accepted once (the time step is remembered),
within one step of clock drift. Recovery codes are long random strings stored as SHA-256 and
marked used. Codes are counted like passwords (``ipr.throttle``), per account.
"""

from __future__ import annotations

import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ipr import audit, throttle
from ipr.auth import hash_token
from ipr.errors import ValidationError
from ipr.models import Membership, RecoveryCode, Study, User, utcnow

ISSUER = "IPR annotator"
RECOVERY_CODES = 10
STEP_SECONDS = 30
POLICY = throttle.Policy(free=5, delay_seconds=30)


def begin(db: Session, user: User) -> str:
    """A new secret for ``user`` (not yet in force); returned so it can be shown."""
    if user.has_2fa:
        raise ValidationError("Two-factor authentication is already on for this account.")
    user.totp_secret = pyotp.random_base32()
    db.commit()
    return user.totp_secret


def otpauth_uri(user: User) -> str:
    return pyotp.TOTP(user.totp_secret or "").provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(user: User) -> str:
    """The otpauth URI as a QR code (a PNG data URI: drawn here, no request to anywhere)."""
    return segno.make(otpauth_uri(user), micro=False).png_data_uri(scale=6, border=4)


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _totp_step(user: User, code: str, now: float) -> int | None:
    """The time step ``code`` belongs to (one step of drift either way), or None."""
    code = code.strip().replace(" ", "")
    if not user.totp_secret or not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(user.totp_secret)
    current = int(now // STEP_SECONDS)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def confirm(db: Session, user: User, code: str, *, ip: str | None) -> list[str]:
    """Turn two-factor on once ``code`` proves the app has the secret; returns the recovery
    codes (shown once)."""
    step = _totp_step(user, code, time.time())
    if user.has_2fa or step is None:
        raise ValidationError("That code is not right. Check the time on your phone.", field="code")
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    codes = new_recovery_codes(db, user)
    audit.record(db, "2fa_enabled", user=user, obj=("user", user.email), ip=ip)
    db.commit()
    return codes


def new_recovery_codes(db: Session, user: User) -> list[str]:
    """Replace every recovery code of ``user``; the plain codes are returned once."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(8)  # 64 random bits, typed as four groups of four
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
        db.add(RecoveryCode(user_id=user.id, code_hash=hash_token(raw)))
    return codes


def verify(db: Session, user: User, code: str, *, ip: str | None, now: float | None = None) -> bool:
    """A login's second step: a fresh TOTP code or an unused recovery code. Counted and audited."""
    key = f"2fa:{user.id}"
    throttle.reserve(db, key, POLICY, message="Too many wrong codes.")
    step = _totp_step(user, code, time.time() if now is None else now)
    ok = False
    if step is not None and (user.totp_last_step is None or step > user.totp_last_step):
        user.totp_last_step = step
        ok = True
    elif step is None:
        row = db.scalar(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == hash_token(_normalise(code)),
                RecoveryCode.used_at.is_(None),
            )
        )
        if row is not None:
            row.used_at = utcnow()
            audit.record(db, "2fa_recovery_code_used", user=user, obj=("user", user.email), ip=ip)
            ok = True
    if ok:
        throttle.clear(db, key)
    else:
        audit.record(db, "2fa_failed", user=user, obj=("user", user.email), ip=ip)
    db.commit()
    return ok


def disable(db: Session, user: User, *, ip: str | None, actor: str | None = None) -> None:
    """Turn two-factor off: the user (after the caller checked their password again), or an
    admin from the CLI (``actor``), who may do so even where a study requires it."""
    if actor is None and studies_requiring(db, user):
        raise ValidationError(
            "A study you are a member of requires two-factor authentication; it stays on."
        )
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(db, "2fa_disabled", user=user, actor=actor, obj=("user", user.email), ip=ip)
    db.commit()


def studies_requiring(db: Session, user: User) -> list[Study]:
    """The studies of ``user`` that require two-factor (hidden from them until it is on)."""
    return list(
        db.scalars(
            select(Study)
            .join(Membership, Membership.study_id == Study.id)
            .where(Membership.user_id == user.id, Study.require_2fa.is_(True))
            .order_by(Study.name)
        )
    )


def remaining_recovery_codes(db: Session, user: User) -> int:
    return len(
        db.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
