"""The audit trail: who did what to which object, when and from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr.models import AuditEvent, User


def record(
    db: Session,
    action: str,
    *,
    user: User | None = None,
    actor: str | None = None,
    study_id: int | None = None,
    obj: tuple[str, Any] | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the session; it is committed with the change it describes."""
    event = AuditEvent(
        study_id=study_id,
        user_id=user.id if user else None,
        actor=actor or (user.email if user else "anonymous"),
        action=action,
        object_type=obj[0] if obj else None,
        object_id=str(obj[1]) if obj else None,
        ip=ip,
        details=details or {},
    )
    db.add(event)
    return event


def events_for_study(db: Session, study_id: int, limit: int = 200) -> list[AuditEvent]:
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.study_id == study_id)
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
    )
