"""The one permission rule: study-scoped rows are reachable only by members of their study.

Every study-scoped query goes through ``scoped`` (or ``get_or_404``, built on it). A non-member
learns nothing: the row is simply not found. A member whose role is too low gets
``PermissionDenied``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ipr.errors import NotFound, PermissionDenied
from ipr.models import STUDY_ROLES, Membership, Study, User

T = TypeVar("T")
RANK = {role: i for i, role in enumerate(STUDY_ROLES)}
MAX_ID = 2**63 - 1  # the largest BIGINT; SQLite and PostgreSQL refuse anything above


def _study_column(model: Any) -> Any:
    return model.id if model is Study else model.study_id


def member_study_ids(user: User, min_role: str = "viewer") -> Select[Any]:
    """The studies ``user`` may reach; one that requires two-factor stays hidden until the
    user has turned it on (``ipr.twofactor``)."""
    allowed = [r for r in STUDY_ROLES if RANK[r] >= RANK[min_role]]
    stmt = select(Membership.study_id).where(
        Membership.user_id == user.id, Membership.role.in_(allowed)
    )
    if not user.has_2fa:
        stmt = stmt.where(
            Membership.study_id.not_in(select(Study.id).where(Study.require_2fa.is_(True)))
        )
    return stmt


def scoped(stmt: Select[Any], model: Any, user: User) -> Select[Any]:
    """Restrict a select over ``model`` to the studies ``user`` is a member of."""
    return stmt.where(_study_column(model).in_(member_study_ids(user)))


def role_in(db: Session, user: User, study_id: int) -> str | None:
    return db.scalar(
        select(Membership.role).where(
            Membership.user_id == user.id,
            Membership.study_id == study_id,
            Membership.study_id.in_(member_study_ids(user)),
        )
    )


def require_role(db: Session, user: User, study_id: int, min_role: str) -> str:
    """The user's role in the study; NotFound for a non-member, PermissionDenied if too low."""
    role = role_in(db, user, study_id)
    if role is None:
        raise NotFound()
    if RANK[role] < RANK[min_role]:
        raise PermissionDenied()
    return role


def get_or_404(db: Session, model: type[T], obj_id: Any, user: User, min_role: str = "viewer") -> T:
    """Load one study-scoped row for ``user``.

    Raises NotFound when it does not exist or the user is not a member of its study (the two
    are indistinguishable), PermissionDenied when the user's role is below ``min_role``.
    """
    if isinstance(obj_id, bool) or (isinstance(obj_id, int) and not 0 < obj_id <= MAX_ID):
        raise NotFound()  # an id no database column can hold (found by the OpenAPI fuzz test)
    row = db.scalar(scoped(select(model).where(model.id == obj_id), model, user))  # type: ignore[attr-defined]
    if row is None:
        raise NotFound()
    if min_role != "viewer":
        require_role(db, user, getattr(row, "id" if model is Study else "study_id"), min_role)
    return row
