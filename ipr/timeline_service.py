"""One recording's dyad timeline, loaded from the database: lanes, matching, figures, synchrony.

The timeline page, its JSON, the dyad page, the study dashboard and the API all call these
functions, so every view shows the same pairs and figures. The arithmetic lives in the pure
modules ``ipr.timeline`` and ``ipr.synchrony``; this module maps rows onto their dataclasses and
caches what is expensive (the chance baseline, the synchrony windows and their surrogates).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr import motion
from ipr.coders import PARTICIPANT, Layer, coder_agreement
from ipr.errors import ValidationError
from ipr.models import (
    Code,
    Moment,
    Participant,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    Study,
    User,
)
from ipr.storage import Storage
from ipr.synchrony import SynchronyError, surrogate_baseline, synchrony
from ipr.timeline import DEFAULT_BIN_MS, Mark, agreement, chance_baseline

ROLES: tuple[str, str] = ("therapist", "client")
MAX_TOLERANCE_MS = 600_000
"""Ten minutes: beyond that every moment of a session is "near" every other."""

N_SHIFTS = 1000
"""Circular shifts for the co-marking chance baseline (docs/timeline.md's default)."""

N_SURROGATES = motion.MotionSettings.surrogates  # the default; a study may set its own
"""Segment-shuffled surrogates per session: p-values down to 1/51 at ~0.2 s each for 50 min."""

SYNC_CACHE_NAME = "synchrony.json"
"""Cached synchrony of the analysis pass, stored beside analysis.json (removed with it)."""

Mode = Literal["compute", "cached", "auto"]
"""compute: work it out now if needed; cached: only what was computed before (fast pages);
auto (chance only): compute when both lanes are points (about a second), else cached."""


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "t_ms": self.t_ms,
            "end_ms": self.end_ms,
            "peaks_ms": list(self.peaks_ms),
            "text": self.text,
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
    """Everything the timeline shows for one recording at one tolerance, JSON-ready."""

    recording_id: int
    duration_ms: int
    tolerance_ms: int
    lanes: Lanes
    figures: dict[str, Any]
    pairs: list[dict[str, int]]
    unmatched: dict[str, list[int]]

    def to_dict(self) -> dict[str, Any]:
        """The API's shape (documented in the OpenAPI description, timeline_paths())."""
        return {
            "recording_id": self.recording_id,
            "duration_ms": self.duration_ms,
            "tolerance_ms": self.tolerance_ms,
            "participants": self.lanes.participants,
            "lanes": {
                "therapist": [m.to_dict() for m in self.lanes.therapist],
                "client": [m.to_dict() for m in self.lanes.client],
                "researcher": [c.to_dict() for c in self.lanes.researcher],
            },
            "pairs": self.pairs,
            "unmatched": self.unmatched,
            "figures": self.figures,
        }


class _Lru:
    """A small thread-safe least-recently-used cache (gunicorn runs views in threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value

    def peek(self, key: Hashable) -> Any:
        with self.lock:
            return self.items.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self.items[key] = value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_agreements = _Lru(128)
_chances = _Lru(128)
_synchronies = _Lru(32)


def clear_caches() -> None:
    """Forget every cached figure (tests and benchmarks measure cold runs with it)."""
    _agreements.clear()
    _chances.clear()
    _synchronies.clear()


def parse_tolerance(raw: str | None, default: int) -> int:
    """The tolerance_ms query parameter, or the study's default when it is absent."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidTolerance(
            f"tolerance_ms must be a whole number of milliseconds, got {raw!r}.",
            field="tolerance_ms",
        ) from None
    if not 0 <= value <= MAX_TOLERANCE_MS:
        raise InvalidTolerance(
            f"tolerance_ms must be between 0 and {MAX_TOLERANCE_MS} ms, got {value}.",
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
    rows = db.execute(
        select(
            Moment.id,
            Moment.recall_session_id,
            Moment.t_ms,
            Moment.end_ms,
            Moment.peaks_ms,
            Moment.text,
            Moment.codes,
            Moment.ratings,
            Moment.version,
            Moment.phase,
            Moment.responds_to_id,
            Moment.corrected_at,
        )
        .where(
            Moment.recall_session_id.in_(list(role_of_session)),
            Moment.deleted_at.is_(None),
        )
        .order_by(Moment.t_ms, Moment.id)
    ).all()
    where: dict[int, tuple[str, LaneMoment]] = {}
    for row in rows:
        m = LaneMoment(
            id=row.id,
            t_ms=row.t_ms,
            end_ms=row.end_ms,
            peaks_ms=tuple(row.peaks_ms or ()),
            text=row.text or "",
            codes=tuple(row.codes or ()),
            ratings=dict(row.ratings or {}),
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
            .where(ResearcherAnnotation.moment_id.in_(list(where)))
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


def marks(lane: Sequence[LaneMoment], code_names: dict[int, str]) -> tuple[Mark, ...]:
    """The moments as ``ipr.timeline`` marks; codes by name so per-code figures read well."""
    return tuple(
        Mark(
            id=m.id,
            t_ms=m.t_ms,
            end_ms=m.end_ms,
            peaks_ms=m.peaks_ms,
            codes=tuple(code_names[c] for c in m.codes if c in code_names),
        )
        for m in lane
    )


def coder_layers(lanes: Lanes, code_names: dict[int, str]) -> list[Layer]:
    """Per lane: the participant's own codes, then each researcher's codes (coders by name).

    A coder's layer holds the moments that coder gave codes to, at the moments' own times.
    """
    layers = []
    for role in ROLES:
        own = tuple(m for m in marks(lanes.lane(role), code_names) if m.codes)
        layers.append(Layer(role, PARTICIPANT, own))
        by_coder: dict[str, list[Mark]] = {}
        for c in lanes.researcher:
            if c.lane != role:
                continue
            named = tuple(code_names[k] for k in c.codes if k in code_names)
            if named:
                by_coder.setdefault(c.coder, []).append(
                    Mark(id=c.moment_id, t_ms=c.t_ms, end_ms=c.end_ms, codes=named)
                )
        for coder in sorted(by_coder):
            layers.append(Layer(role, coder, tuple(by_coder[coder])))
    return layers


def coder_figures(
    lanes: Lanes, code_names: dict[int, str], tolerance_ms: int, duration_ms: int
) -> dict[str, Any]:
    """Agreement between coders (and each coder with the participant), per lane and code."""
    layers = [
        layer
        for layer in coder_layers(lanes, code_names)
        if layer.marks or layer.coder != PARTICIPANT
    ]
    return coder_agreement(
        layers,
        tolerance_ms=tolerance_ms,
        duration_ms=duration_ms,
        bin_ms=DEFAULT_BIN_MS,
        codes=list(dict.fromkeys(code_names.values())),
    )


def agreement_figures(
    therapist: tuple[Mark, ...],
    client: tuple[Mark, ...],
    tolerance_ms: int,
    duration_ms: int,
    chance: Mode = "compute",
) -> dict[str, Any]:
    """Agreement figures (docs/timeline.md), cached on the moments themselves: any edit,
    deletion or new moment changes the key, so a cached answer is never stale.

    The chance baseline (1,000 shifted matchings: ~0.5 s for 1,000 points, tens of seconds
    when spans are present) is computed only with ``chance="compute"``; otherwise it is the
    cached one or None, and ``chance_pending`` says the page should ask for it separately.
    """
    key = (duration_ms, tolerance_ms, therapist, client)
    out = dict(
        _agreements.get(
            key,
            lambda: agreement(
                therapist, client, tolerance_ms, duration_ms=duration_ms, n_shifts=0
            ).to_dict(),
        )
    )

    def baseline() -> dict[str, Any] | None:
        found = chance_baseline(
            therapist,
            client,
            tolerance_ms,
            duration_ms=duration_ms,
            n_shifts=N_SHIFTS,
            observed_pairs=out["n_pairs"],
        )
        return asdict(found) if found is not None else None

    possible = bool(therapist) and bool(client)
    if chance == "auto":
        spans = any(m.is_span for m in therapist) or any(m.is_span for m in client)
        chance = "cached" if spans else "compute"
    if chance == "compute" or not possible:
        out["chance"] = _chances.get(key, baseline) if possible else None
    else:
        out["chance"] = _chances.peek(key)
    out["chance_pending"] = possible and out["chance"] is None
    return out


def synchrony_figures(
    storage: Storage, rec: Recording, surrogates: Mode = "cached"
) -> dict[str, Any] | None:
    """Nonverbal synchrony of the two motion-energy curves, with its surrogate baseline.

    The windows cost ~0.2 s and the surrogates ~10 s for a 50-minute session, so both are
    stored in ``synchrony.json`` beside the analysis they come from. With ``surrogates="cached"``
    the surrogate figure is whatever was computed before (None if never): pages stay fast, and
    the page asks for it separately. None when the recording has no analysis.
    """
    path = storage.derived(rec.storage_key, "analysis.json")
    if rec.status != "ready" or not path.is_file():
        return None
    stat = path.stat()
    stamp = [stat.st_mtime_ns, stat.st_size]
    settings = _motion_settings(rec)
    cache_path = storage.derived(rec.storage_key, SYNC_CACHE_NAME)

    def load() -> dict[str, Any]:
        if cache_path.is_file():
            try:
                cached = json.loads(cache_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                cached = None
            if (
                isinstance(cached, dict)
                and cached.get("analysis_stamp") == stamp
                and cached.get("settings") == settings.to_dict()
            ):
                return cached
        return _compute_synchrony(path, stamp, settings)

    key = (rec.storage_key, tuple(stamp), tuple(settings.to_dict().items()))
    figures = _synchronies.get(key, load)
    if surrogates == "compute" and figures.get("surrogate") is None and not figures.get("error"):
        figures = {**figures, "surrogate": _compute_surrogate(path, settings)}
        _synchronies.put(key, figures)
    if not cache_path.is_file() or surrogates == "compute":
        _write_cache(cache_path, figures)
    return figures


def _motion_settings(rec: Recording) -> motion.MotionSettings:
    study = rec.dyad.study if rec.dyad is not None else None
    return motion.MotionSettings.of(study.motion_settings if study is not None else None)


def _motion(path: Any) -> tuple[list[float], list[float], float, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    me = data.get("motion_energy") or {}
    left, right, rate, _names = motion.pair(me)
    return left, right, rate, me


def _windows(settings: motion.MotionSettings) -> dict[str, float]:
    return {"window_s": settings.window_s, "step_s": settings.step_s,
            "max_lag_s": settings.max_lag_s}  # fmt: skip


def _compute_synchrony(
    path: Any, stamp: list[int], settings: motion.MotionSettings
) -> dict[str, Any]:
    left, right, rate, me = _motion(path)
    out: dict[str, Any] = {"analysis_stamp": stamp, "surrogate": None, "error": None}
    out["settings"] = settings.to_dict()
    if not left or not rate:
        out["error"] = "This recording has no motion-energy curves (no video, or not analysed)."
        return out
    # honest samples: what is missing is said, and mostly missing data gives no figure
    missing = motion.missing_summary(me)
    out["missing"] = missing
    out["warning"] = missing["message"] if missing["warn"] else None
    if missing["mostly_missing"]:
        out["error"] = missing["message"]
        return out
    try:
        x, y = motion.prepared(left, right, rate, settings)
        out.update(synchrony(x, y, rate, **_windows(settings)).to_dict())
    except (SynchronyError, motion.MotionSettingsInvalid) as exc:
        out["error"] = exc.message
    return out


def _compute_surrogate(path: Any, settings: motion.MotionSettings) -> dict[str, Any] | None:
    left, right, rate, me = _motion(path)
    if motion.missing_summary(me)["mostly_missing"]:
        return None
    try:
        x, y = motion.prepared(left, right, rate, settings)
        return surrogate_baseline(
            x, y, rate, n=settings.surrogates, seed=settings.seed, **_windows(settings)
        ).to_dict()
    except (SynchronyError, motion.MotionSettingsInvalid):
        return None


def _write_cache(cache_path: Any, figures: dict[str, Any]) -> None:
    """Best effort: a read-only media folder only costs a recomputation next time."""
    tmp = cache_path.with_name(cache_path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(figures), encoding="utf-8")
        tmp.replace(cache_path)
    except OSError:
        tmp.unlink(missing_ok=True)


def timeline(
    db: Session,
    storage: Storage,
    rec: Recording,
    tolerance_ms: int,
    *,
    chance: Mode = "cached",
    surrogates: Mode = "cached",
) -> Timeline:
    """Lanes, optimal pairs, unmatched ids and every figure of one recording."""
    if rec.status != "ready" or not rec.duration_ms:
        raise ValidationError(
            "The timeline needs a processed recording; this one is "
            f"{rec.status} (see the recording's page)."
        )
    lanes = load_lanes(db, rec)
    names = dict(db.execute(select(Code.id, Code.name).where(Code.study_id == rec.study_id)).all())
    figures = dict(
        agreement_figures(
            marks(lanes.therapist, names),
            marks(lanes.client, names),
            tolerance_ms,
            rec.duration_ms,
            chance,
        )
    )
    matching = figures.pop("matching")
    figures["synchrony"] = synchrony_figures(storage, rec, surrogates)
    figures["coders"] = coder_figures(lanes, names, tolerance_ms, rec.duration_ms)
    return Timeline(
        recording_id=rec.id,
        duration_ms=rec.duration_ms,
        tolerance_ms=tolerance_ms,
        lanes=lanes,
        figures=figures,
        pairs=[
            {
                "therapist_moment_id": p["therapist_id"],
                "client_moment_id": p["client_id"],
                "lag_ms": p["lag_ms"],
            }
            for p in matching["pairs"]
        ],
        unmatched={"therapist": matching["therapist_only"], "client": matching["client_only"]},
    )


@dataclass
class SessionRow:
    """One recording on the dashboard: its recall states, counts and headline figures."""

    recording: Recording
    participants: dict[str, dict[str, Any]]
    n_therapist: int | None = None
    n_client: int | None = None
    n_pairs: int | None = None
    co_marking_rate: float | None = None
    expected_rate: float | None = None
    p_value: float | None = None
    synchrony: float | None = None
    surrogate_p: float | None = None


def session_row(db: Session, storage: Storage, rec: Recording, tolerance_ms: int) -> SessionRow:
    """The dashboard's figures for one recording (states only while it is not ready)."""
    if rec.status != "ready" or not rec.duration_ms:
        lanes = Lanes()
        for role in ROLES:
            p = rec.dyad.participant(role)
            lanes.participants[role] = {"code": p.code if p else None, "status": None}
        return SessionRow(rec, lanes.participants)
    tl = timeline(db, storage, rec, tolerance_ms, chance="auto")
    f = tl.figures
    sync = f.get("synchrony") or {}
    chance = f.get("chance") or {}
    surrogate = sync.get("surrogate") or {}
    return SessionRow(
        recording=rec,
        participants=tl.lanes.participants,
        n_therapist=f["n_therapist"],
        n_client=f["n_client"],
        n_pairs=f["n_pairs"],
        co_marking_rate=f["co_marking_rate"],
        expected_rate=chance.get("expected_rate"),
        p_value=chance.get("p_value"),
        synchrony=sync.get("grand_mean"),
        surrogate_p=surrogate.get("p_value"),
    )


def study_dashboard(
    db: Session, storage: Storage, study: Study
) -> list[tuple[Any, list[SessionRow]]]:
    """Every dyad of the study with a row per session recording, in dyad then recording order."""
    return [
        (
            dyad,
            [
                session_row(db, storage, rec, study.alignment_tolerance_ms)
                for rec in dyad.recordings
            ],
        )
        for dyad in study.dyads
    ]
