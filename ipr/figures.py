"""The stored figures layer: computed by the worker, read by pages, the API and exports.

Every change a figure depends on (a moment or researcher-annotation created, changed or
deleted, an import, a new analysis, a new study tolerance) calls ``mark_stale`` in the same
transaction: it bumps ``Recording.figures_version`` and queues ONE ``figures`` job per
recording (a job already waiting is reused, so 50 saves in a row queue one job). The worker
(``figures_job``) computes every figure of the recording from its **blind-phase** moments —
matching, co-marking, lags, chance baseline, kappa, per-code tables, synchrony and its
surrogates — and stores them in ``FigureSet`` rows with the version it read and every
parameter used. Readers compare the stored version with the recording's: older means the
figures are shown marked "updating…", none means "computing…". The web process never runs
the pure algorithms of ``ipr.timeline`` or ``ipr.synchrony``. Having stored new figures, the
job also draws the recording's timeline PNG for exports (``ipr.figure_files``).

Other tolerances asked for on the timeline are bounded: a documented range and step
(``TOLERANCE_MIN_MS``..``TOLERANCE_MAX_MS`` in ``TOLERANCE_STEP_MS`` steps) and at most
``MAX_EXTRA_SETS`` extra parameter sets per recording (asking for another evicts the oldest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.orm import Session

from ipr import __version__, jobs
from ipr.models import (
    Code,
    FigureSet,
    Job,
    Moment,
    Participant,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    Study,
    User,
    utcnow,
)
from ipr.storage import Storage

log = logging.getLogger("ipr.figures")

JOB_KIND = "figures"
TOLERANCE_MIN_MS = 0
TOLERANCE_MAX_MS = 60_000
TOLERANCE_STEP_MS = 100
"""Tolerances other than the study's own: 0–60 s in 0.1 s steps (601 possible values)."""
MAX_EXTRA_SETS = 4
"""Extra parameter sets kept per recording besides the study's; a fifth evicts the oldest."""
N_SHIFTS = 1000
SEED = 0
BIN_MS = 1000
N_SURROGATES = 50
SURROGATE_SEED = 0
SYNCHRONY = {"window_s": 30.0, "step_s": 10.0, "max_lag_s": 5.0, "segment_s": 30.0}
_PUSH = "ipr_figures_push"


def app_version() -> str:
    """The software version stored with every figure set (the one every export cites)."""
    return __version__


def params_for(tolerance_ms: int, motion_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter a figure set is computed with (stored beside the figures); synchrony's
    come from the study's motion settings (ipr.motion.MotionSettings, defaults = SYNCHRONY)."""
    from ipr.motion import MotionSettings

    ms = MotionSettings.of(motion_settings)
    sync: dict[str, Any] = {
        **SYNCHRONY, "window_s": ms.window_s, "step_s": ms.step_s, "max_lag_s": ms.max_lag_s,
        "n_surrogates": ms.surrogates, "seed": ms.seed,
    }  # fmt: skip
    if ms.smoothing_s:
        sync["smoothing_s"] = ms.smoothing_s
    return {
        "tolerance_ms": tolerance_ms,
        "bin_ms": BIN_MS,
        "n_shifts": N_SHIFTS,
        "seed": SEED,
        "phase": "blind",
        "synchrony": sync,
    }


def params_key(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


# --- marking stale and queueing (same transaction as the change) ------------------------------


def mark_stale(db: Session, recording_id: int, study_id: int) -> None:
    """Bump the recording's figures version and make sure one figures job is waiting.

    Call it before the commit of the change; the job is pushed to the queue after the commit.
    """
    db.execute(
        update(Recording)
        .where(Recording.id == recording_id)
        .values(figures_version=Recording.figures_version + 1)
    )
    queue_job(db, recording_id, study_id)


def mark_study_stale(db: Session, study_id: int) -> None:
    """The study's tolerance changed: every recording's figures are to be computed again."""
    db.execute(
        update(Recording)
        .where(Recording.study_id == study_id)
        .values(figures_version=Recording.figures_version + 1)
    )
    ids = db.scalars(
        select(Recording.id).where(Recording.study_id == study_id, Recording.status == "ready")
    ).all()
    ensure_queued(db, study_id, ids)


def queue_job(db: Session, recording_id: int, study_id: int) -> None:
    """One waiting figures job per recording: reuse a queued one, else add one."""
    waiting = db.scalar(
        select(Job.id)
        .where(Job.kind == JOB_KIND, Job.recording_id == recording_id, Job.status == "queued")
        .limit(1)
    )
    if waiting is not None:
        return
    job = Job(
        kind=JOB_KIND,
        study_id=study_id,
        recording_id=recording_id,
        params={},
        status="queued",
        stage="Waiting for a worker",
    )
    db.add(job)
    db.flush()
    db.info.setdefault(_PUSH, []).append(job.id)


def ensure_queued(db: Session, study_id: int, recording_ids: Iterable[int]) -> None:
    """A figures job for each recording without a waiting or running one (3 statements)."""
    wanted = set(recording_ids)
    if not wanted:
        return
    busy = set(
        db.scalars(
            select(Job.recording_id).where(
                Job.kind == JOB_KIND,
                Job.study_id == study_id,
                Job.status.in_(("queued", "running")),
            )
        )
    )
    missing = sorted(wanted - busy)
    if not missing:
        return
    now = utcnow()
    db.execute(
        insert(Job),
        [
            {
                "kind": JOB_KIND,
                "study_id": study_id,
                "recording_id": rid,
                "params": {},
                "status": "queued",
                "stage": "Waiting for a worker",
                "progress": 0.0,
                "attempts": 0,
                "created_at": now,
            }
            for rid in missing
        ],
    )
    ids = db.scalars(
        select(Job.id).where(
            Job.kind == JOB_KIND,
            Job.recording_id.in_(missing),
            Job.status == "queued",
        )
    ).all()
    db.info.setdefault(_PUSH, []).extend(ids)


@event.listens_for(Session, "after_commit")
def _push_after_commit(session: Session) -> None:
    """Queue messages go out only once the job rows are committed (a worker can claim them)."""
    ids = session.info.pop(_PUSH, None)
    queue = session.info.get("ipr_queue")
    if not ids or queue is None:
        return  # no queue here: the reaper pushes waiting jobs (jobs.reap_stale)
    for job_id in ids:
        try:
            jobs._push(queue, job_id)
        except Exception:  # noqa: BLE001 — the row stays queued; the reaper pushes it again
            log.exception("could not push figures job %s", job_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PUSH, None)


# --- the worker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlindMoment:
    """A blind-phase moment as the figures see it (codes by codebook name, in codebook order)."""

    id: int
    role: str
    t_ms: int
    end_ms: int | None
    peaks_ms: tuple[int, ...]
    codes: tuple[str, ...]


@dataclass(frozen=True)
class ResearcherCoding:
    """One researcher's codes on one blind moment (their coder kept apart)."""

    moment_id: int
    user_id: int | None
    codes: tuple[str, ...]
    coder: str = ""
    """The coder's account e-mail (their layer's name in figures and exports)."""


@dataclass
class BlindLanes:
    """Everything a figure may be computed from: blind moments and researchers' codings."""

    duration_ms: int
    therapist: list[BlindMoment] = field(default_factory=list)
    client: list[BlindMoment] = field(default_factory=list)
    codings: list[ResearcherCoding] = field(default_factory=list)
    codebook: tuple[str, ...] = ()
    """The study's code names in codebook order (per-code tables list them in this order)."""


ExtraFigure = Callable[[BlindLanes, dict[str, Any]], Any]
EXTRA_FIGURES: dict[str, ExtraFigure] = {}
"""Further figures, each stored under its own key of ``FigureSet.data``: register a function
taking the blind lanes (with the researchers' codings) and the parameters, e.g.
``EXTRA_FIGURES["coders"] = coder_agreement``; ``compute_set`` calls every one of them."""


def load_blind_lanes(db: Session, rec: Recording, codebook: dict[int, str]) -> BlindLanes:
    """Live blind-phase moments of both lanes and the researchers' codings of them."""
    lanes = BlindLanes(duration_ms=rec.duration_ms or 0, codebook=tuple(codebook.values()))
    rows = db.execute(
        select(
            Moment.id, Moment.t_ms, Moment.end_ms, Moment.peaks_ms, Moment.codes, Participant.role
        )
        .join(RecallSession, RecallSession.id == Moment.recall_session_id)
        .join(Participant, Participant.id == RecallSession.participant_id)
        .where(
            RecallSession.recording_id == rec.id,
            Moment.deleted_at.is_(None),
            Moment.phase == "blind",
        )
        .order_by(Moment.t_ms, Moment.id)
    ).all()
    order = {cid: i for i, cid in enumerate(codebook)}

    def names(ids: Iterable[int] | None) -> tuple[str, ...]:
        known = sorted({c for c in ids or () if c in codebook}, key=order.__getitem__)
        return tuple(codebook[c] for c in known)

    for row in rows:
        end = row.end_ms if row.end_ms is not None and row.end_ms > row.t_ms else None
        m = BlindMoment(
            id=row.id,
            role=row.role,
            t_ms=row.t_ms,
            end_ms=end,
            peaks_ms=tuple(row.peaks_ms or ()) if end is not None else (),
            codes=names(row.codes),
        )
        (lanes.therapist if row.role == "therapist" else lanes.client).append(m)
    ids = [r.id for r in rows]
    if ids:
        for a in db.execute(
            select(
                ResearcherAnnotation.moment_id,
                ResearcherAnnotation.user_id,
                ResearcherAnnotation.codes,
                User.email,
            )
            .outerjoin(User, User.id == ResearcherAnnotation.user_id)
            .where(ResearcherAnnotation.moment_id.in_(ids))
            .order_by(ResearcherAnnotation.id)
        ):
            lanes.codings.append(
                ResearcherCoding(
                    a.moment_id, a.user_id, names(a.codes), a.email or "(removed account)"
                )
            )
    return lanes


def compute_set(lanes: BlindLanes, params: dict[str, Any]) -> dict[str, Any]:
    """Every agreement figure of one parameter set, JSON-ready (raises TimelineError)."""
    from ipr.timeline import Mark, agreement

    def marks(lane: Sequence[BlindMoment]) -> list[Mark]:
        return [Mark(m.id, m.t_ms, m.end_ms, m.peaks_ms, m.codes) for m in lane]

    found = agreement(
        marks(lanes.therapist),
        marks(lanes.client),
        params["tolerance_ms"],
        duration_ms=lanes.duration_ms,
        bin_ms=params["bin_ms"],
        n_shifts=params["n_shifts"] if lanes.therapist and lanes.client else 0,
        seed=params["seed"],
    )
    data = found.to_dict()
    matching = data.pop("matching")
    data["pairs"] = [
        {
            "therapist_moment_id": p["therapist_id"],
            "client_moment_id": p["client_id"],
            "lag_ms": p["lag_ms"],
        }
        for p in matching["pairs"]
    ]
    data["unmatched"] = {"therapist": matching["therapist_only"], "client": matching["client_only"]}
    for key, fn in EXTRA_FIGURES.items():
        data[key] = fn(lanes, params)
    return data


def coder_figures(lanes: BlindLanes, params: dict[str, Any]) -> dict[str, Any]:
    """Agreement between coders, and each coder with the participant, per lane and code
    (``ipr.coders``): blind moments only, at the set's tolerance and bin width."""
    from ipr.coders import PARTICIPANT, Layer, coder_agreement
    from ipr.timeline import Mark

    layers = []
    for role, lane in (("therapist", lanes.therapist), ("client", lanes.client)):
        own = tuple(Mark(m.id, m.t_ms, m.end_ms, (), m.codes) for m in lane if m.codes)
        if own:
            layers.append(Layer(role, PARTICIPANT, own))
        where = {m.id: m for m in lane}
        by_coder: dict[str, list[Mark]] = {}
        for c in lanes.codings:
            m = where.get(c.moment_id)
            if m is not None and c.codes:
                by_coder.setdefault(c.coder, []).append(Mark(m.id, m.t_ms, m.end_ms, (), c.codes))
        for coder in sorted(by_coder):
            layers.append(Layer(role, coder, tuple(by_coder[coder])))
    return coder_agreement(
        layers,
        tolerance_ms=params["tolerance_ms"],
        duration_ms=lanes.duration_ms,
        bin_ms=params["bin_ms"],
        codes=list(lanes.codebook),
    )


EXTRA_FIGURES["coders"] = coder_figures


def _analysis_stamp(storage: Storage, rec: Recording) -> list[int] | None:
    path = storage.derived(rec.storage_key, "analysis.json")
    if not path.is_file():
        return None
    stat = path.stat()
    return [stat.st_mtime_ns, stat.st_size]


def compute_synchrony(
    storage: Storage, rec: Recording, stamp: list[int], params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Synchrony of the two motion-energy curves and its segment-shuffled surrogates, with the
    study's pipeline (`params`: params_for()["synchrony"]); missing samples are counted and
    warned about, and mostly missing data gives no figure (ipr.motion)."""
    from ipr import motion
    from ipr.synchrony import SynchronyError, surrogate_baseline, synchrony

    out: dict[str, Any] = {"analysis_stamp": stamp, "grand_mean": None, "surrogate": None}
    out["error"] = None
    try:
        data = json.loads(storage.derived(rec.storage_key, "analysis.json").read_text("utf-8"))
    except (OSError, ValueError):
        data = {}
    me = data.get("motion_energy") or {} if isinstance(data, dict) else {}
    left, right, rate, _names = motion.pair(me)
    s = params or params_for(0)["synchrony"]
    out["settings"] = s
    if not left or not rate:
        out["error"] = "This recording has no motion-energy curves (no video, or not analysed)."
        return out
    missing = motion.missing_summary(me)
    out["missing"] = missing
    out["warning"] = missing["message"] if missing["warn"] else None
    if missing["mostly_missing"]:
        out["error"] = missing["message"]
        return out
    settings = motion.MotionSettings(smoothing_s=float(s.get("smoothing_s") or 0))
    try:
        x, y = motion.prepared(left, right, rate, settings)
        out.update(
            synchrony(
                x, y, rate, window_s=s["window_s"], step_s=s["step_s"], max_lag_s=s["max_lag_s"],
            ).to_dict()
        )  # fmt: skip
        out["surrogate"] = surrogate_baseline(
            x, y, rate, n=s["n_surrogates"], seed=s["seed"], segment_s=s["segment_s"],
            window_s=s["window_s"], step_s=s["step_s"], max_lag_s=s["max_lag_s"],
        ).to_dict()  # fmt: skip
    except (SynchronyError, motion.MotionSettingsInvalid) as exc:
        out["error"] = exc.message
    return out


def summary_of(data: dict[str, Any] | None) -> dict[str, Any]:
    """The few numbers the dashboard shows (so it never decodes the whole figure set)."""
    if not data:
        return {}
    chance = data.get("chance") or {}
    sync = data.get("synchrony") or {}
    surrogate = sync.get("surrogate") or {}
    kappa = data.get("kappa") or {}
    return {
        "n_therapist": data.get("n_therapist"),
        "n_client": data.get("n_client"),
        "n_pairs": data.get("n_pairs"),
        "co_marking_rate": data.get("co_marking_rate"),
        "expected_rate": chance.get("expected_rate"),
        "p_value": chance.get("p_value"),
        "kappa": kappa.get("kappa"),
        "synchrony": sync.get("grand_mean"),
        "surrogate_p": surrogate.get("p_value"),
        # "12% of samples missing: …": the figure rests on incomplete motion data
        "synchrony_warning": sync.get("warning") if sync.get("grand_mean") is not None else None,
    }


def aggregate(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Dyad and study figures from the recordings' stored summaries (nothing recomputed):
    co-marking pooled over every moment (2 × pairs / moments), synchrony as the mean of the
    recordings that have one."""
    n_t = n_c = n_p = k = 0
    syncs: list[float] = []
    for s in summaries:
        if not s:
            continue
        k += 1
        n_t += s.get("n_therapist") or 0
        n_c += s.get("n_client") or 0
        n_p += s.get("n_pairs") or 0
        if s.get("synchrony") is not None:
            syncs.append(s["synchrony"])
    return {
        "recordings": k,
        "n_therapist": n_t,
        "n_client": n_c,
        "n_pairs": n_p,
        "co_marking_rate": 2 * n_p / (n_t + n_c) if n_t + n_c else None,
        "synchrony": sum(syncs) / len(syncs) if syncs else None,
    }


def compute_recording(db: Session, storage: Storage, recording_id: int) -> int:
    """Worker: bring every figure set of the recording to its current version.

    The study's own parameter set always; extra tolerances that were asked for too. When the
    study's own set was computed, the timeline PNG exports carry is drawn as well
    (``ipr.figure_files``). Returns how many sets were computed (0 when all were current).
    """
    rec = db.get(Recording, recording_id)
    if rec is None or rec.status != "ready" or not rec.duration_ms:
        return 0
    version = rec.figures_version
    study = db.get(Study, rec.study_id)
    assert study is not None
    default = params_for(study.alignment_tolerance_ms, study.motion_settings)
    rows = {
        r.params_key: r
        for r in db.scalars(select(FigureSet).where(FigureSet.recording_id == rec.id))
    }
    wanted = {params_key(default): default}
    for key, row in rows.items():
        wanted.setdefault(key, row.params)
    todo = {
        k: p
        for k, p in wanted.items()
        if k not in rows or rows[k].moments_version != version or rows[k].status == "pending"
    }
    if not todo:
        return 0
    codebook = dict(
        db.execute(
            select(Code.id, Code.name).where(Code.study_id == rec.study_id).order_by(Code.position)
        ).all()
    )
    lanes = load_blind_lanes(db, rec, codebook)
    sync = _synchrony_for(storage, rec, rows.values(), default["synchrony"])
    now = utcnow()
    for key, params in todo.items():
        row = rows.get(key)
        if row is None:
            row = FigureSet(study_id=rec.study_id, recording_id=rec.id, params_key=key)
            row.requested_at = now
            db.add(row)
        row.params = params
        row.moments_version = version
        row.app_version = app_version()
        row.computed_at = now
        try:
            data = compute_set(lanes, params)
        except Exception as exc:  # noqa: BLE001 — stored as this set's error, others go on
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.warning("figures of recording %s (%s) failed: %s", rec.id, key[:8], message)
            row.status, row.error, row.data, row.summary = "failed", message, None, {}
            continue
        data["synchrony"] = sync
        row.status, row.error, row.data, row.summary = "ready", None, data, summary_of(data)
    db.commit()
    if params_key(default) in todo:  # the figures exports carry: their picture too
        _draw_figure(db, storage, rec.id)
    return len(todo)


def _synchrony_for(
    storage: Storage, rec: Recording, rows: Iterable[FigureSet], params: dict[str, Any]
) -> dict[str, Any] | None:
    """Synchrony depends on the analysis, not on moments: reuse a stored one while it holds."""
    stamp = _analysis_stamp(storage, rec)
    if stamp is None:
        return None
    for row in rows:
        sync = (row.data or {}).get("synchrony")
        same = (row.params or {}).get("synchrony") == params
        if sync and same and sync.get("analysis_stamp") == stamp:
            return sync
    return compute_synchrony(storage, rec, stamp, params)


@jobs.handler(JOB_KIND)
def figures_job(ctx: jobs.Context) -> None:
    """Worker entry point: compute, then forget this recording's older finished figure jobs."""
    rid = ctx.job.recording_id
    if rid is None:
        return
    ctx.report("figures", 0.0)
    compute_recording(ctx.db, Storage(ctx.config["RECORDINGS_DIR"]), rid)
    ctx.db.execute(
        delete(Job).where(
            Job.kind == JOB_KIND,
            Job.recording_id == rid,
            Job.status.in_(("done", "failed")),
            Job.id != ctx.job.id,
        )
    )
    ctx.db.commit()


def _draw_figure(db: Session, storage: Storage, recording_id: int) -> None:
    """The timeline figure exports carry, drawn now so a study bundle need not draw it
    (``ipr.figure_files``); a failure here leaves the export to draw it."""
    from ipr import figure_files  # it reads export data, which reads this module

    try:
        figure_files.prepare(db, storage, recording_id)
    except Exception:  # noqa: BLE001 — the figures are stored; the picture is a convenience
        log.exception("could not draw the timeline figure of recording %s", recording_id)
        db.rollback()


def run_queued(database: Any, config: dict[str, Any], recording_id: int | None = None) -> int:
    """Run the waiting figures jobs here, through the worker's entry point (CLI and tests)."""
    with database.session() as db:
        q = select(Job.id).where(Job.kind == JOB_KIND, Job.status == "queued").order_by(Job.id)
        if recording_id is not None:
            q = q.where(Job.recording_id == recording_id)
        ids = db.scalars(q).all()
    for job_id in ids:
        jobs.run_job(database, config, job_id)
    return len(ids)


# --- reading ----------------------------------------------------------------------------------


@dataclass
class Stored:
    """A figure set as a reader sees it: the figures and how current they are."""

    state: str  # fresh | updating | computing | failed
    params: dict[str, Any]
    data: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    moments_version: int | None = None
    current_version: int = 0
    computed_at: dt.datetime | None = None
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.state in ("updating", "computing")

    def status(self) -> dict[str, Any]:
        """What the API and exports say about these figures."""
        return {
            "state": self.state,
            "moments_version": self.moments_version,
            "current_version": self.current_version,
            "computed_at": self.computed_at.isoformat(timespec="seconds") + "Z"
            if self.computed_at
            else None,
            "error": self.error,
            "app_version": app_version(),
            "params": self.params,
        }


def _state(row: Any | None, current: int) -> str:
    if row is None or row.moments_version is None or row.moments_version < 0:
        return "computing"
    if row.moments_version < current:
        return "updating"
    if row.status == "failed":
        return "failed"
    if row.status != "ready":
        return "computing"
    return "fresh"


def read(db: Session, rec: Recording, study_tolerance_ms: int, tolerance_ms: int) -> Stored:
    """The stored figures of one recording at one tolerance (one statement when current).

    A set not stored yet is asked for (an extra tolerance evicts the oldest beyond
    MAX_EXTRA_SETS) and a worker job queued; the caller commits nothing: this does.
    """
    settings = rec.dyad.study.motion_settings
    params = params_for(tolerance_ms, settings)
    key = params_key(params)
    row = db.scalar(
        select(FigureSet).where(FigureSet.recording_id == rec.id, FigureSet.params_key == key)
    )
    current = rec.figures_version
    state = _state(row, current)
    if row is None:
        default_key = params_key(params_for(study_tolerance_ms, settings))
        _request(db, rec, key, params, default_key=default_key)
    elif state in ("updating", "computing"):
        queue_job(db, rec.id, rec.study_id)
        db.commit()
    if row is None:
        return Stored("computing", params, current_version=current)
    return Stored(
        state=state,
        params=row.params or params,
        data=row.data,
        summary=row.summary or {},
        moments_version=row.moments_version,
        current_version=current,
        computed_at=row.computed_at,
        error=row.error,
    )


def _request(
    db: Session, rec: Recording, key: str, params: dict[str, Any], *, default_key: str
) -> None:
    if key != default_key:
        kept = db.execute(
            select(FigureSet.id, FigureSet.params_key)
            .where(FigureSet.recording_id == rec.id)
            .order_by(FigureSet.requested_at.desc(), FigureSet.id.desc())
        ).all()
        extras = [r.id for r in kept if r.params_key != default_key]
        evict = extras[MAX_EXTRA_SETS - 1 :]
        if evict:
            db.execute(delete(FigureSet).where(FigureSet.id.in_(evict)))
    db.add(
        FigureSet(
            study_id=rec.study_id,
            recording_id=rec.id,
            params_key=key,
            params=params,
            moments_version=-1,
            status="pending",
            summary={},
            app_version=app_version(),
            requested_at=utcnow(),
        )
    )
    queue_job(db, rec.id, rec.study_id)
    try:
        db.commit()
    except Exception:  # another request asked for the same set at the same moment
        db.rollback()


def read_summaries(db: Session, study: Study) -> dict[int, Stored]:
    """The study tolerance's summary of every recording of the study (one statement)."""
    params = params_for(study.alignment_tolerance_ms, study.motion_settings)
    rows = db.execute(
        select(
            FigureSet.recording_id,
            FigureSet.summary,
            FigureSet.moments_version,
            FigureSet.status,
            FigureSet.error,
            FigureSet.computed_at,
            Recording.figures_version,
        )
        .join(Recording, Recording.id == FigureSet.recording_id)
        .where(FigureSet.study_id == study.id, FigureSet.params_key == params_key(params))
    ).all()
    return {
        r.recording_id: Stored(
            state=_state(r, r.figures_version),
            params=params,
            summary=r.summary or {},
            moments_version=r.moments_version,
            current_version=r.figures_version,
            computed_at=r.computed_at,
            error=r.error,
        )
        for r in rows
    }


def read_sets(db: Session, study: Study, recording_ids: Sequence[int]) -> dict[int, Stored]:
    """The study tolerance's whole figure sets of these recordings (one statement; exports)."""
    params = params_for(study.alignment_tolerance_ms, study.motion_settings)
    if not recording_ids:
        return {}
    rows = db.execute(
        select(FigureSet, Recording.figures_version)
        .join(Recording, Recording.id == FigureSet.recording_id)
        .where(
            FigureSet.recording_id.in_(list(recording_ids)),
            FigureSet.params_key == params_key(params),
        )
    ).all()
    return {
        row.recording_id: Stored(
            state=_state(row, version),
            params=row.params or params,
            data=row.data,
            summary=row.summary or {},
            moments_version=row.moments_version,
            current_version=version,
            computed_at=row.computed_at,
            error=row.error,
        )
        for row, version in rows
    }
