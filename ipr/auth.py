"""Researcher accounts: passwords, server-side login sessions, API tokens, login throttling."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from ipr import audit, throttle
from ipr.errors import ValidationError
from ipr.models import USER_ROLES, ApiToken, AuthSession, User, utcnow

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


def login_key(email: str, ip: str | None) -> str:
    """Failures are counted per account *and* address: a guesser elsewhere cannot lock the
    owner out, and the owner's own address keeps its own count."""
    return f"login:{ip or '-'}:{email}"[:200]


def authenticate(
    db: Session,
    email: str,
    password: str,
    *,
    ip: str | None,
    max_failures: int,
    lockout_seconds: int,
) -> User | None:
    """The user if the password is right; records the attempt either way.

    The attempt is counted before the password is checked (``throttle.reserve``), so parallel
    guesses cannot outrun the limit; TooManyAttempts while this account and address must wait.
    """
    email = email.strip().lower()
    key = login_key(email, ip)
    policy = throttle.Policy(
        free=max_failures, delay_seconds=lockout_seconds, max_delay_seconds=MAX_LOCKOUT_SECONDS
    )
    throttle.reserve(db, key, policy, message="Too many failed logins for this account.")
    user = db.scalar(select(User).where(User.email == email))
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.is_active:
        audit.record(db, "login_failed", user=None, obj=("user", email), ip=ip)
        db.commit()
        return None
    throttle.clear(db, key)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit.record(db, "login", user=user, obj=("user", email), ip=ip)
    return user


def set_password(db: Session, user: User, password: str, *, actor: str, ip: str | None) -> None:
    """A new password; every login session of the account ends (an admin reset or a change)."""
    user.password_hash = hash_password(password)
    db.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
    audit.record(db, "password_changed", actor=actor, obj=("user", user.email), ip=ip)


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
