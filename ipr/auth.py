"""Researcher accounts: passwords, server-side login sessions, API tokens, login throttling."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from ipr import audit
from ipr.errors import TooManyAttempts, ValidationError
from ipr.models import USER_ROLES, ApiToken, AuditEvent, AuthSession, User, utcnow

# Argon2id: memory-hard. Parameters are RFC 9106's second recommended set (64 MiB, t=3).
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# A hash to verify against when the account does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
MIN_PASSWORD_LENGTH = 10
MAX_LOCKOUT_SECONDS = 15 * 60


def hash_token(token: str) -> str:
    """Tokens are long and random, so a plain SHA-256 is the right stored form."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"Use a password of at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    return _hasher.hash(password)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise ValidationError("Enter a valid email address.", field="email")
    return email


def create_user(db: Session, email: str, password: str, role: str = "researcher") -> User:
    if role not in USER_ROLES:
        raise ValidationError(f"Role must be one of {', '.join(USER_ROLES)}.", field="role")
    email = normalise_email(email)
    if db.scalar(select(User).where(User.email == email)):
        raise ValidationError(f"A user with the email {email} already exists.", field="email")
    user = User(email=email, password_hash=hash_password(password), role=role)
    db.add(user)
    db.flush()
    return user


def _recent_failures(db: Session, email: str, window: dt.timedelta) -> list[dt.datetime]:
    since = utcnow() - window
    last_success = db.scalar(
        select(func.max(AuditEvent.created_at)).where(
            AuditEvent.action == "login", AuditEvent.object_id == email
        )
    )
    if last_success and last_success > since:
        since = last_success
    return list(
        db.scalars(
            select(AuditEvent.created_at)
            .where(
                AuditEvent.action == "login_failed",
                AuditEvent.object_id == email,
                AuditEvent.created_at > since,
            )
            .order_by(AuditEvent.created_at)
        )
    )


def check_throttle(db: Session, email: str, max_failures: int, lockout_seconds: int) -> None:
    """Slow down guessing: after ``max_failures`` recent failures, wait, doubling each time."""
    failures = _recent_failures(db, email, dt.timedelta(seconds=MAX_LOCKOUT_SECONDS))
    if len(failures) < max_failures:
        return
    extra = len(failures) - max_failures
    wait = min(lockout_seconds * (2**extra), MAX_LOCKOUT_SECONDS)
    remaining = (failures[-1] + dt.timedelta(seconds=wait) - utcnow()).total_seconds()
    if remaining > 0:
        minutes = max(1, round(remaining / 60))
        raise TooManyAttempts(
            f"Too many failed logins for this account. Try again in about {minutes} minute"
            f"{'s' if minutes != 1 else ''}.",
            retry_after=int(remaining) + 1,
        )


def authenticate(
    db: Session,
    email: str,
    password: str,
    *,
    ip: str | None,
    max_failures: int,
    lockout_seconds: int,
) -> User | None:
    """The user if the password is right; records the attempt either way."""
    email = email.strip().lower()
    check_throttle(db, email, max_failures, lockout_seconds)
    user = db.scalar(select(User).where(User.email == email))
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.is_active:
        audit.record(db, "login_failed", user=None, obj=("user", email), ip=ip)
        db.commit()
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit.record(db, "login", user=user, obj=("user", email), ip=ip)
    return user


def start_session(db: Session, user: User, ip: str | None) -> str:
    """A fresh server-side session: a new random id every login (session rotation)."""
    token = secrets.token_urlsafe(32)
    db.add(AuthSession(token_hash=hash_token(token), user_id=user.id, ip=ip))
    db.commit()
    return token


def load_session(db: Session, token: str | None, idle: dt.timedelta) -> AuthSession | None:
    """The live session for ``token``; an idle one is deleted and ignored."""
    if not token:
        return None
    row = db.scalar(
        select(AuthSession)
        .options(joinedload(AuthSession.user))  # one query per request, not two
        .where(AuthSession.token_hash == hash_token(token))
    )
    if row is None:
        return None
    now = utcnow()
    if now - row.last_seen_at > idle or not row.user.is_active:
        db.delete(row)
        db.commit()
        return None
    if (now - row.last_seen_at).total_seconds() > 15:  # avoid a write on every request
        row.last_seen_at = now
        db.commit()
    return row


def end_session(db: Session, token: str | None) -> None:
    if token:
        db.execute(delete(AuthSession).where(AuthSession.token_hash == hash_token(token)))
        db.commit()


def create_api_token(db: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new API token; the plain value is returned once and only its hash is stored."""
    token = "ipr_" + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name[:100], token_hash=hash_token(token), prefix=token[:8])
    db.add(row)
    db.flush()
    return row, token


def user_for_api_token(db: Session, token: str) -> User | None:
    row = db.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None or not row.user.is_active:
        return None
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
        db.commit()
    return row.user
