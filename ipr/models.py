"""Typed SQLAlchemy 2.x models: the whole data model, so later capabilities add columns.

Every row that belongs to a study carries ``study_id`` so that one permission filter
(``ipr.access``) can scope any query, however deep the object sits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ipr.errors import N_

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Roles, lowest first: the index is the rank used by permission checks.
STUDY_ROLES = ("viewer", "editor", "owner")
USER_ROLES = ("researcher", "admin")
PARTICIPANT_ROLES = ("therapist", "client")
RECORDING_STATUSES = ("queued", "processing", "ready", "failed")
RECALL_STATUSES = ("invited", "in_progress", "submitted")
MOMENT_PHASES = ("blind", "response")
"""blind: marked before the researcher's reveal (every figure comes from these); response:
written after it (answers to the other's moments and second looks: shown, never counted)."""
SEGMENTATION_STRATEGIES = ("fixed", "scenes", "silences")

HAT_LABELS = {
    "1": N_("Extremely hindering"),
    "2": N_("Greatly hindering"),
    "3": N_("Moderately hindering"),
    "4": N_("Slightly hindering"),
    "5": N_("Neither helpful nor hindering"),
    "6": N_("Slightly helpful"),
    "7": N_("Moderately helpful"),
    "8": N_("Greatly helpful"),
    "9": N_("Extremely helpful"),
}
HAT_NAME = N_("How helpful or hindering was this moment? (Helpful Aspects of Therapy)")
# Study texts the app wrote itself: shown to participants in the study's language as long as
# the researcher has not changed them.
DEFAULT_STUDY_TEXTS = frozenset([*HAT_LABELS.values(), HAT_NAME])


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="researcher")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # TOTP two-factor: the secret is kept from enrolment; it counts once a code has been proved.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code is used only once

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def has_2fa(self) -> bool:
        return self.totp_enabled_at is not None and self.totp_secret is not None


class RecoveryCode(Base):
    """A single-use two-factor recovery code, stored as a SHA-256 (it is long and random)."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Throttle(Base):
    """Failed attempts under one key (an account at an address, an invitation's PIN, an address).

    ``next_at`` is the earliest moment another attempt may be made; an attempt is *reserved*
    (counted) before the password or PIN is checked, by a compare-and-set on ``failures``, so
    parallel requests cannot all slip in under the limit.
    """

    __tablename__ = "throttles"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    locked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuthSession(Base):
    """A server-side login session: rotated at login, deleted at logout, idle-timed."""

    __tablename__ = "auth_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user: Mapped[User] = relationship()


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    user: Mapped[User] = relationship()


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    alignment_tolerance_ms: Mapped[int] = mapped_column(Integer, default=5000)
    segmentation_strategy: Mapped[str] = mapped_column(String(16), default="fixed")
    segment_fixed_ms: Mapped[int] = mapped_column(Integer, default=300_000)
    segment_min_ms: Mapped[int] = mapped_column(Integer, default=60_000)
    segment_max_ms: Mapped[int] = mapped_column(Integer, default=600_000)
    instructions: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    participants_can_code: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_early_reveal: Mapped[bool] = mapped_column(Boolean, default=False)
    resume_after_save: Mapped[bool] = mapped_column(Boolean, default=True)
    require_2fa: Mapped[bool] = mapped_column(Boolean, default=False)
    # every language participants may read the study in; None: only ``language``
    languages: Mapped[list[str] | None] = mapped_column(JSON)
    # study texts in the other languages: {"instructions"|"invitation"|"reminder": {lang: text}};
    # invitation and reminder texts in the main language live here too
    texts: Mapped[dict[str, dict[str, str]] | None] = mapped_column(JSON)
    # ipr.motion.MotionSettings as stored, plus "regions" (the default drawn regions)
    motion_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the follow-up pass (ipr.followup.Settings as stored): {"enabled", "delay_days",
    # "scales": [key] or null for every scale, "instructions": {lang: text}}
    followup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the interviewer's prompt sheet (ipr.prompts); None: the Brief Structured Recall defaults
    prompt_sheet: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    codes: Mapped[list[Code]] = relationship(
        back_populates="study", order_by="Code.position", cascade="all, delete-orphan"
    )
    scales: Mapped[list[RatingScale]] = relationship(
        back_populates="study", order_by="RatingScale.position", cascade="all, delete-orphan"
    )
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="study", cascade="all, delete-orphan"
    )
    dyads: Mapped[list[Dyad]] = relationship(
        back_populates="study", order_by="Dyad.code", cascade="all, delete-orphan"
    )


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("study_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    study: Mapped[Study] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()


class Code(Base):
    """A codebook entry: participants or researchers tag moments with it."""

    __tablename__ = "codes"
    __table_args__ = (UniqueConstraint("study_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    colour: Mapped[str] = mapped_column(String(7), default="#4c78a8")
    shortcut: Mapped[str | None] = mapped_column(String(1))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # the name and description in the study's other languages: {lang: {"name", "description"}}
    translations: Mapped[dict[str, dict[str, str]] | None] = mapped_column(JSON)
    study: Mapped[Study] = relationship(back_populates="codes")


class RatingScale(Base):
    __tablename__ = "rating_scales"
    __table_args__ = (UniqueConstraint("study_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    min_value: Mapped[int] = mapped_column(Integer, default=1)
    max_value: Mapped[int] = mapped_column(Integer, default=9)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # the name and anchors in the study's other languages: {lang: {"name", "labels": {v: text}}}
    translations: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    study: Mapped[Study] = relationship(back_populates="scales")


class Dyad(Base):
    __tablename__ = "dyads"
    __table_args__ = (UniqueConstraint("study_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    study: Mapped[Study] = relationship(back_populates="dyads")
    participants: Mapped[list[Participant]] = relationship(
        back_populates="dyad", order_by="Participant.role.desc()", cascade="all, delete-orphan"
    )
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="dyad", order_by="Recording.id", cascade="all, delete-orphan"
    )

    def participant(self, role: str) -> Participant | None:
        return next((p for p in self.participants if p.role == role), None)


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "code"), UniqueConstraint("dyad_id", "role"))
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    dyad_id: Mapped[int] = mapped_column(ForeignKey("dyads.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(8))  # None: the study's language
    dyad: Mapped[Dyad] = relationship(back_populates="participants")


class Recording(Base):
    __tablename__ = "recordings"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    dyad_id: Mapped[int] = mapped_column(ForeignKey("dyads.id", ondelete="CASCADE"), index=True)
    session_label: Mapped[str] = mapped_column(String(60))
    storage_key: Mapped[str] = mapped_column(String(36), unique=True)
    original_name: Mapped[str] = mapped_column(String(255), default="")
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(40))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    fps_num: Mapped[int | None] = mapped_column(Integer)
    fps_den: Mapped[int | None] = mapped_column(Integer)
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    remuxed: Mapped[bool | None] = mapped_column(Boolean)
    media_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    regions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    revealed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    figures_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped in the same transaction as any change the figures depend on (ipr.figures)."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    dyad: Mapped[Dyad] = relationship(back_populates="recordings")
    clips: Mapped[list[Clip]] = relationship(
        back_populates="recording", order_by="Clip.index", cascade="all, delete-orphan"
    )

    @property
    def fps(self) -> float | None:
        if self.fps_num and self.fps_den:
            return self.fps_num / self.fps_den
        return None


class Clip(Base):
    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("recording_id", "index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int] = mapped_column(Integer)
    recording: Mapped[Recording] = relationship(back_populates="clips")


class Upload(Base):
    """A resumable (tus) upload in progress; becomes a Recording when complete."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    dyad_id: Mapped[int] = mapped_column(ForeignKey("dyads.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    session_label: Mapped[str] = mapped_column(String(60))
    filename: Mapped[str] = mapped_column(String(255), default="")
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    hash_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class RecallSession(Base):
    """One participant replaying one recording, self-guided by link or researcher-led."""

    __tablename__ = "recall_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(16), default="self")
    status: Mapped[str] = mapped_column(String(16), default="invited")
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    last_position_ms: Mapped[int] = mapped_column(Integer, default=0)
    # The furthest point watched: what the researcher reads as progress (seeking back keeps it).
    furthest_ms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    paused_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # "Stop for now": a break
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    participant: Mapped[Participant] = relationship()
    recording: Mapped[Recording] = relationship()


class ParticipantDevice(Base):
    """A browser (cookie) or client (device token) that opened a recall link and proved its PIN.

    The participant's cookie or Bearer token holds a random secret; only its SHA-256 is stored.
    Stop, revoke and a new link delete the rows, which ends every device at once.
    """

    __tablename__ = "participant_devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    recall_session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="cookie")
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Moment(Base):
    """A point (t_ms) or span (t_ms..end_ms, with peaks) a participant marked."""

    __tablename__ = "moments"
    __table_args__ = (UniqueConstraint("recall_session_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recall_session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), index=True
    )
    t_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int | None] = mapped_column(Integer)
    peaks_ms: Mapped[list[int]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    codes: Mapped[list[int]] = mapped_column(JSON, default=list)
    ratings: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    responds_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("moments.id", ondelete="SET NULL")
    )
    phase: Mapped[str] = mapped_column(String(16), default="blind", server_default="blind")
    import_source: Mapped[str | None] = mapped_column(String(255))
    """"<format>:<file name>" when the moment came from an imported file; None when entered."""
    # A researcher's change to a blind-phase moment after the reveal (participants cannot).
    corrected_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    corrected_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    recall_session: Mapped[RecallSession] = relationship()


class MomentRevision(Base):
    """Edit history: every create, update and delete of a moment, as it was after the change."""

    __tablename__ = "moment_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    moment_id: Mapped[int] = mapped_column(ForeignKey("moments.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class VoiceNote(Base):
    __tablename__ = "voice_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    moment_id: Mapped[int] = mapped_column(ForeignKey("moments.id", ondelete="CASCADE"), index=True)
    storage_name: Mapped[str] = mapped_column(String(80))
    mime_type: Mapped[str] = mapped_column(String(60))
    size_bytes: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ResearcherAnnotation(Base):
    """The researcher's own layer on a moment, separate from what the participant entered."""

    __tablename__ = "researcher_annotations"
    __table_args__ = (UniqueConstraint("moment_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    moment_id: Mapped[int] = mapped_column(ForeignKey("moments.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    codes: Mapped[list[int]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    """Queued background work; the UI polls this row for stage, progress and error."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str] = mapped_column(String(60), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    worker: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class FigureSet(Base):
    """One recording's figures at one parameter set, as the worker computed them (ipr.figures).

    ``moments_version`` is the recording's ``figures_version`` the worker read; older than the
    recording's current one means "updating". ``summary`` holds the dashboard's few numbers so
    the dashboard never decodes ``data`` (pairs, per-code tables, synchrony series).
    """

    __tablename__ = "figure_sets"
    __table_args__ = (UniqueConstraint("recording_id", "params_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    params_key: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    moments_version: Mapped[int] = mapped_column(Integer, default=-1)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    app_version: Mapped[str] = mapped_column(String(40), default="")
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    computed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AuditEvent(Base):
    """Who did what to which object, when and from where."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_study_created", "study_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Worker(Base):
    """A worker process's heartbeat, whether or not it is running a job (the admin page)."""

    __tablename__ = "workers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)  # host:pid
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class InterviewAudio(Base):
    """The recall interview's audio of one researcher-led session, with the player events that
    align it to the video (``ipr.interview``). The file lives beside the recording."""

    __tablename__ = "interview_audio"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recall_session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), unique=True
    )
    storage_name: Mapped[str] = mapped_column(String(80))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    format_name: Mapped[str] = mapped_column(String(40))
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class InterviewUtterance(Base):
    """One line of an imported interview transcript, attached to the stop it belongs to."""

    __tablename__ = "interview_utterances"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recall_session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), index=True
    )
    moment_id: Mapped[int | None] = mapped_column(
        ForeignKey("moments.id", ondelete="CASCADE"), index=True
    )
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class ConsentRecord(Base):
    """A participant's consent: which information sheet, on which date, recorded by whom."""

    __tablename__ = "consent_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    sheet_version: Mapped[str] = mapped_column(String(40))
    consented_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class FollowUp(Base):
    """A participant's follow-up pass over their own blind moments, due some days after they
    finished their recall (``ipr.followup``): one per recall session."""

    __tablename__ = "followups"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    recall_session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), unique=True
    )
    due_at: Mapped[dt.datetime] = mapped_column(DateTime)
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # first seen by them
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class FollowUpRating(Base):
    """The follow-up ratings and comment on one blind moment: a third phase kept beside the
    moment, never a moment itself, so no figure, lane or count can pick it up."""

    __tablename__ = "followup_ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    followup_id: Mapped[int] = mapped_column(
        ForeignKey("followups.id", ondelete="CASCADE"), index=True
    )
    moment_id: Mapped[int] = mapped_column(
        ForeignKey("moments.id", ondelete="CASCADE"), unique=True
    )
    ratings: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    comment: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PromptAnswer(Base):
    """The participant's answer to one prompt of the interviewer's sheet at one stop (moment),
    captured by the researcher in a researcher-led session (``ipr.prompts``)."""

    __tablename__ = "prompt_answers"
    __table_args__ = (UniqueConstraint("moment_id", "prompt_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    moment_id: Mapped[int] = mapped_column(ForeignKey("moments.id", ondelete="CASCADE"), index=True)
    prompt_key: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(Text)
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
