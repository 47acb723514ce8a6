"""One recording's dyad timeline: live lanes from the database, figures as the worker stored them.

The timeline page, its JSON, the dyad page, the study dashboard and the API all call these
functions, so every view shows the same pairs and figures. Nothing here computes a figure: the
worker does (``ipr.figures``), and these functions read what it stored, saying "updating"
while a newer version of the moments is on its way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from ipr import figures as fig
from ipr import interview
from ipr.errors import ValidationError
from ipr.models import (
    Dyad,
    Moment,
    Participant,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    Study,
    User,
)

ROLES: tuple[str, str] = ("therapist", "client")
MAX_TOLERANCE_MS = fig.TOLERANCE_MAX_MS
"""Tolerances other than the study's own: 0–60 s in 100 ms steps (docs/timeline.md)."""
TOLERANCE_STEP_MS = fig.TOLERANCE_STEP_MS
N_SHIFTS = fig.N_SHIFTS
N_SURROGATES = fig.N_SURROGATES
LANE_FULL_TEXT = 2000
"""Beyond this many moments in a lane, the page and JSON send each text cut to
TEXT_PREVIEW_CHARS characters (the moment's own API call has the whole text)."""
TEXT_PREVIEW_CHARS = 280


class InvalidTolerance(ValidationError):
    """The tolerance is not a whole number of milliseconds in range."""

    code = "invalid_tolerance"


@dataclass(frozen=True)
class LaneMoment:
    """A participant's moment as the timeline shows it (codes as ids, ratings by scale key)."""

    id: int
    t_ms: int
    end_ms: int | None
    peaks_ms: tuple[int, ...]
    text: str
    codes: tuple[int, ...]
    ratings: dict[str, int]
    version: int
    # blind: marked before the reveal; response: after it (shown threaded, never counted)
    phase: str = "blind"
    responds_to_id: int | None = None
    corrected_at: str | None = None

    def to_dict(self, text_chars: int | None = None) -> dict[str, Any]:
        text = self.text if text_chars is None else self.text[:text_chars]
        return {
            "id": self.id,
            "t_ms": self.t_ms,
            "end_ms": self.end_ms,
            "peaks_ms": list(self.peaks_ms),
            "text": text,
            "codes": list(self.codes),
            "ratings": dict(self.ratings),
            "version": self.version,
            "phase": self.phase,
            "responds_to_id": self.responds_to_id,
            "corrected_at": self.corrected_at,
        }


@dataclass(frozen=True)
class Coding:
    """A researcher's codes and note on one participant moment (the researcher lane)."""

    id: int
    moment_id: int
    lane: str
    t_ms: int
    end_ms: int | None
    codes: tuple[int, ...]
    note: str
    coder: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "moment_id": self.moment_id,
            "lane": self.lane,
            "t_ms": self.t_ms,
            "end_ms": self.end_ms,
            "codes": list(self.codes),
            "note": self.note,
            "coder": self.coder,
        }


@dataclass
class Lanes:
    """Both participants' moments, the researchers' coding, and each recall session's state."""

    therapist: list[LaneMoment] = field(default_factory=list)
    client: list[LaneMoment] = field(default_factory=list)
    researcher: list[Coding] = field(default_factory=list)
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lane(self, role: str) -> list[LaneMoment]:
        return self.therapist if role == "therapist" else self.client


@dataclass
class Timeline:
    """Everything the timeline shows for one recording at one tolerance, JSON-ready.

    ``figures`` (and ``pairs``, ``unmatched``) are the stored ones: None and empty while the
    worker has not computed them yet; ``status`` says whether they are current.
    """

    recording_id: int
    duration_ms: int
    tolerance_ms: int
    lanes: Lanes
    figures: dict[str, Any] | None
    pairs: list[dict[str, int]]
    unmatched: dict[str, list[int]]
    stored: fig.Stored | None = None

    @property
    def state(self) -> str:
        return self.stored.state if self.stored else "computing"

    @property
    def pending(self) -> bool:
        return self.stored is None or self.stored.pending

    def to_dict(self) -> dict[str, Any]:
        """The API's shape (its schema: ipr.web.schemas.TimelineSchema)."""

        def lane(items: list[LaneMoment]) -> list[dict[str, Any]]:
            cut = TEXT_PREVIEW_CHARS if len(items) > LANE_FULL_TEXT else None
            return [m.to_dict(cut) for m in items]

        return {
            "recording_id": self.recording_id,
            "duration_ms": self.duration_ms,
            "tolerance_ms": self.tolerance_ms,
            "participants": self.lanes.participants,
            "lanes": {
                "therapist": lane(self.lanes.therapist),
                "client": lane(self.lanes.client),
                "researcher": [c.to_dict() for c in self.lanes.researcher],
            },
            "pairs": self.pairs,
            "unmatched": self.unmatched,
            "figures": self.figures,
            "figures_status": self.stored.status() if self.stored else None,
        }


def parse_tolerance(raw: str | None, default: int) -> int:
    """The tolerance_ms query parameter, or the study's default when it is absent.

    The study's own tolerance is always accepted; any other must lie in 0–60,000 ms and be a
    multiple of 100 ms, so the worker has a bounded number of parameter sets to compute.
    """
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise InvalidTolerance(
            f"tolerance_ms must be a whole number of milliseconds, got {raw[:20]!r}.",
            field="tolerance_ms",
        )
    value = int(raw)
    if value == default:
        return value
    if not 0 <= value <= MAX_TOLERANCE_MS or value % TOLERANCE_STEP_MS:
        raise InvalidTolerance(
            f"tolerance_ms must be between 0 and {MAX_TOLERANCE_MS} ms in steps of "
            f"{TOLERANCE_STEP_MS} ms (or the study's {default} ms), got {value}.",
            field="tolerance_ms",
        )
    return value


def load_lanes(db: Session, rec: Recording) -> Lanes:
    """Live (not deleted) moments of both recall sessions, and every researcher's coding."""
    lanes = Lanes()
    sessions = db.execute(
        select(RecallSession, Participant)
        .join(Participant, Participant.id == RecallSession.participant_id)
        .where(RecallSession.recording_id == rec.id)
    ).all()
    role_of_session = {rs.id: p.role for rs, p in sessions}
    for role in ROLES:
        p = rec.dyad.participant(role)
        lanes.participants[role] = {"code": p.code if p else None, "status": None}
    for rs, p in sessions:
        lanes.participants[p.role] = {"code": p.code, "status": rs.status}
    if not role_of_session:
        return lanes
    live = (Moment.recall_session_id.in_(list(role_of_session)), Moment.deleted_at.is_(None))
    # The JSON columns as their text, decoded once per distinct value: a lane's moments share
    # a few shapes ("[]", "[3]", '{"hat": 7}'), and the driver's decoder per row was most of
    # this request's CPU (which a participant's save in another thread waits for).
    rows = db.execute(
        select(
            Moment.id,
            Moment.recall_session_id,
            Moment.t_ms,
            Moment.end_ms,
            cast(Moment.peaks_ms, Text).label("peaks_ms"),
            Moment.text,
            cast(Moment.codes, Text).label("codes"),
            cast(Moment.ratings, Text).label("ratings"),
            Moment.version,
            Moment.phase,
            Moment.responds_to_id,
            Moment.corrected_at,
        )
        .where(*live)
        .order_by(Moment.t_ms, Moment.id)
    ).all()
    decoded: dict[str | None, Any] = {None: None}

    def value(raw: str | None) -> Any:
        if raw not in decoded:
            decoded[raw] = json.loads(raw)  # type: ignore[arg-type]
        return decoded[raw]

    where: dict[int, tuple[str, LaneMoment]] = {}
    for row in rows:
        m = LaneMoment(
            id=row.id,
            t_ms=row.t_ms,
            end_ms=row.end_ms,
            peaks_ms=tuple(value(row.peaks_ms) or ()),
            text=row.text or "",
            codes=tuple(value(row.codes) or ()),
            ratings=dict(value(row.ratings) or {}),
            version=row.version,
            phase=row.phase,
            responds_to_id=row.responds_to_id,
            corrected_at=row.corrected_at.isoformat(timespec="seconds") + "Z"
            if row.corrected_at
            else None,
        )
        role = role_of_session[row.recall_session_id]
        lanes.lane(role).append(m)
        where[m.id] = (role, m)
    if where:
        codings = db.execute(
            select(ResearcherAnnotation, User.email)
            .outerjoin(User, User.id == ResearcherAnnotation.user_id)
            .where(ResearcherAnnotation.moment_id.in_(select(Moment.id).where(*live)))
            .order_by(ResearcherAnnotation.id)
        ).all()
        for a, email in codings:
            if not a.codes and not a.note:
                continue
            role, m = where[a.moment_id]
            lanes.researcher.append(
                Coding(
                    id=a.id,
                    moment_id=a.moment_id,
                    lane=role,
                    t_ms=m.t_ms,
                    end_ms=m.end_ms,
                    codes=tuple(a.codes or ()),
                    note=a.note or "",
                    coder=email or "(removed account)",
                )
            )
        lanes.researcher.sort(key=lambda c: (c.t_ms, c.id))
    return lanes


def timeline(db: Session, rec: Recording, tolerance_ms: int) -> Timeline:
    """Live lanes, and the pairs, unmatched ids and figures the worker stored for them."""
    if rec.status != "ready" or not rec.duration_ms:
        raise ValidationError(
            "The timeline needs a processed recording; this one is "
            f"{rec.status} (see the recording's page)."
        )
    lanes = load_lanes(db, rec)
    stored = fig.read(db, rec, rec.dyad.study.alignment_tolerance_ms, tolerance_ms)
    figures: dict[str, Any] | None = None
    pairs: list[dict[str, int]] = []
    unmatched: dict[str, list[int]] = {"therapist": [], "client": []}
    if stored.data is not None:
        figures = dict(stored.data)
        pairs = figures.pop("pairs", [])
        unmatched = figures.pop("unmatched", unmatched)
    return Timeline(
        recording_id=rec.id,
        duration_ms=rec.duration_ms,
        tolerance_ms=tolerance_ms,
        lanes=lanes,
        figures=figures,
        pairs=pairs,
        unmatched=unmatched,
        stored=stored,
    )


@dataclass
class RecordingRow:
    """What the dashboard needs of a recording (plain columns, no lazy loading)."""

    id: int
    session_label: str
    status: str


@dataclass
class SessionRow:
    """One recording on the dashboard: its recall states, counts and headline figures."""

    recording: RecordingRow
    participants: dict[str, dict[str, Any]]
    state: str = "computing"
    n_therapist: int | None = None
    n_client: int | None = None
    n_pairs: int | None = None
    co_marking_rate: float | None = None
    expected_rate: float | None = None
    p_value: float | None = None
    synchrony: float | None = None
    surrogate_p: float | None = None
    synchrony_warning: str | None = None


@dataclass
class DyadRow:
    id: int
    code: str
    rows: list[SessionRow] = field(default_factory=list)


def study_dashboard(db: Session, study: Study) -> list[tuple[DyadRow, list[SessionRow]]]:
    """Every dyad of the study with a row per session recording, in dyad then recording order.

    A fixed number of statements whatever the study's size (dyads, participants, recordings,
    recall sessions, stored summaries; plus the queueing of figures never computed).
    """
    dyads = [
        DyadRow(d.id, d.code)
        for d in db.execute(
            select(Dyad.id, Dyad.code).where(Dyad.study_id == study.id).order_by(Dyad.code)
        )
    ]
    codes: dict[int, dict[str, str]] = {}
    people: dict[int, tuple[int, str, str]] = {}
    for p in db.execute(
        select(Participant.id, Participant.dyad_id, Participant.role, Participant.code).where(
            Participant.study_id == study.id
        )
    ):
        codes.setdefault(p.dyad_id, {})[p.role] = p.code
        people[p.id] = (p.dyad_id, p.role, p.code)
    recs = db.execute(
        select(Recording.id, Recording.dyad_id, Recording.session_label, Recording.status)
        .where(Recording.study_id == study.id)
        .order_by(Recording.id)
    ).all()
    states: dict[int, dict[str, str]] = {}
    session_ids: dict[int, dict[str, int]] = {}
    for rs in db.execute(
        select(
            RecallSession.id,
            RecallSession.recording_id,
            RecallSession.participant_id,
            RecallSession.status,
        )
        .where(RecallSession.study_id == study.id)
        .order_by(RecallSession.id)
    ):
        if rs.participant_id in people:
            role = people[rs.participant_id][1]
            states.setdefault(rs.recording_id, {})[role] = rs.status
            session_ids.setdefault(rs.recording_id, {})[role] = rs.id
    flags = interview.distress_flags(
        db, [i for by_role in session_ids.values() for i in by_role.values()]
    )
    summaries = fig.read_summaries(db, study)
    never = [r.id for r in recs if r.status == "ready" and r.id not in summaries]
    if never:
        fig.ensure_queued(db, study.id, never)
        db.commit()
    by_dyad = {d.id: d for d in dyads}
    for r in recs:
        dyad = by_dyad.get(r.dyad_id)
        if dyad is None:
            continue
        participants = {
            role: {
                "code": codes.get(r.dyad_id, {}).get(role),
                "status": states.get(r.id, {}).get(role),
                "distress": flags.get(session_ids.get(r.id, {}).get(role, 0)),
            }
            for role in ROLES
        }
        row = SessionRow(RecordingRow(r.id, r.session_label, r.status), participants)
        stored = summaries.get(r.id)
        if r.status == "ready" and stored is not None:
            row.state = stored.state
            for name in (
                "n_therapist", "n_client", "n_pairs", "co_marking_rate", "expected_rate",
                "p_value", "synchrony", "surrogate_p", "synchrony_warning",
            ):  # fmt: skip
                setattr(row, name, stored.summary.get(name))
        dyad.rows.append(row)
    return [(d, d.rows) for d in dyads]


def pooled(rows: Any) -> dict[str, Any]:
    """The study's (or a dyad's) pooled figures from the dashboard rows' stored summaries."""
    return fig.aggregate(
        {
            "n_therapist": r.n_therapist,
            "n_client": r.n_client,
            "n_pairs": r.n_pairs,
            "synchrony": r.synchrony,
        }
        for r in rows
        if r.n_pairs is not None
    )
