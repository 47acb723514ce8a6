"""Failed attempts counted in the database, so every process and thread sees one count.

An attempt is *reserved* before the password or PIN is checked: a compare-and-set on the
key's failure count lets exactly one of several parallel requests take each attempt, so forty
parallel guesses get at most ``free`` checks before the first wait, never more. A success clears
the key. Waits grow: after ``free`` failures the next attempt waits ``delay_seconds``, doubling
with each further failure up to ``max_delay_seconds``; with ``lock_after`` the key locks until a
person lifts it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ipr.errors import N_, TooManyAttempts
from ipr.models import Throttle, utcnow


@dataclass(frozen=True)
class Policy:
    free: int  # failures allowed before any wait
    delay_seconds: float  # the first wait; it doubles with each further failure
    max_delay_seconds: float = 15 * 60
    lock_after: int | None = None  # failures after which the key stays locked until lifted
    forget_after_seconds: float = 24 * 3600  # an unlocked key quiet this long starts afresh

    def wait_after(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.delay_seconds * 2 ** (failures - self.free), self.max_delay_seconds)


PRUNE_CHANCE = 0.01  # one attempt in a hundred also drops the stale keys


class LockedOut(TooManyAttempts):
    """Locked after too many failed attempts."""

    code = "locked_out"


def _ensure_row(db: Session, key: str, now: dt.datetime) -> None:
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.execute(
        insert(Throttle)
        .values(key=key, failures=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    db.commit()


def _prune(db: Session, before: dt.datetime) -> None:
    """Keys nobody has tried for a day (unknown e-mails, old addresses) are dropped."""
    db.execute(delete(Throttle).where(Throttle.updated_at < before, Throttle.locked_at.is_(None)))
    db.commit()


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def reserve(db: Session, key: str, policy: Policy, *, message: str = "") -> int:
    """Count one attempt under ``key`` before it is checked; returns the count so far.

    Raises LockedOut when the key is locked and TooManyAttempts while it must wait (or when a
    parallel request took this attempt). Commits.
    """
    now = utcnow()
    if random.random() < PRUNE_CHANCE:
        _prune(db, now - dt.timedelta(seconds=policy.forget_after_seconds))
    _ensure_row(db, key, now)
    row = db.execute(
        select(Throttle.failures, Throttle.next_at, Throttle.locked_at, Throttle.updated_at).where(
            Throttle.key == key
        )
    ).one()
    db.commit()
    if row.locked_at is not None:
        raise LockedOut(message or N_("Locked after too many failed attempts."), retry_after=3600)
    if row.next_at is not None and row.next_at > now:
        remaining = (row.next_at - now).total_seconds()
        raise TooManyAttempts(
            f"{message or 'Too many failed attempts.'} Try again in about {_minutes(remaining)}.",
            retry_after=int(remaining) + 1,
        )
    seen = row.failures
    quiet = (now - row.updated_at).total_seconds() > policy.forget_after_seconds
    count = (0 if quiet else seen) + 1
    locked = policy.lock_after is not None and count >= policy.lock_after
    result = db.execute(
        update(Throttle)
        .where(Throttle.key == key, Throttle.failures == seen, Throttle.locked_at.is_(None))
        .values(
            failures=count,
            next_at=now + dt.timedelta(seconds=policy.wait_after(count)),
            locked_at=now if locked else None,
            updated_at=now,
        )
    )
    db.commit()
    if result.rowcount != 1:  # a parallel request took this attempt first
        raise TooManyAttempts(
            (message or "Too many failed attempts.") + " Try again in a moment.", retry_after=1
        )
    return count


def clear(db: Session, key: str) -> None:
    """A success (or a person lifting the lock): the key starts afresh. Does not commit."""
    db.execute(delete(Throttle).where(Throttle.key == key))


def locked(db: Session, key: str) -> bool:
    return db.scalar(select(Throttle.locked_at).where(Throttle.key == key)) is not None


def failures(db: Session, key: str) -> int:
    return db.scalar(select(Throttle.failures).where(Throttle.key == key)) or 0
