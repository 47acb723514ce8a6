"""Resumable uploads outside a request: expiry and clean-up (the worker's periodic task)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ipr import audit
from ipr.models import Upload, utcnow
from ipr.storage import Storage

EXPIRY = dt.timedelta(days=7)


def cleanup_expired(session: Session, store: Storage, now: dt.datetime | None = None) -> int:
    """Remove uploads untouched past their expiry and part files no row knows; return the count.

    Meant for the worker's periodic task; a finished upload's row is dropped the same way.
    """
    now = now or utcnow()
    expired = list(session.scalars(select(Upload).where(Upload.expires_at < now)))
    for up in expired:
        store.upload_part(up.id).unlink(missing_ok=True)
        if up.recording_id is None:
            audit.record(
                session,
                "upload_expired",
                actor="worker",
                study_id=up.study_id,
                obj=("upload", up.id),
                details={"received": up.offset, "bytes": up.length},
            )
    if expired:
        session.execute(delete(Upload).where(Upload.id.in_([u.id for u in expired])))
    session.commit()
    known = set(session.scalars(select(Upload.id)))
    folder = store.uploads_dir()
    stale = now.replace(tzinfo=dt.UTC).timestamp() - EXPIRY.total_seconds()
    orphans = 0
    if folder.exists():
        for part in folder.glob("*.part"):
            if part.stem not in known and part.stat().st_mtime < stale:
                part.unlink(missing_ok=True)
                orphans += 1
    return len(expired) + orphans
