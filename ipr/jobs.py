"""Queueing and the worker's task bodies.

A request only creates a ``Job`` row and enqueues its id; a worker process claims the row,
runs the handler registered for its kind, and records stage, progress, heartbeat and the
outcome in that row, which the UI polls. The queue is Huey: SQLite-backed by default (no
extra server), Redis when ``IPR_REDIS_URL`` is set. A job whose worker died is noticed by
its stale heartbeat and queued again, so nothing stays "running" forever.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ipr import logs, metrics
from ipr.db import Database
from ipr.models import Job, Recording, Worker, utcnow

log = logging.getLogger("ipr.jobs")

MAX_ATTEMPTS = 3


class JobFailed(Exception):
    """A handler's failure with a message for the researcher (no traceback shown)."""

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Context:
    """What a handler gets: its job, a database session, settings, and a progress reporter."""

    job: Job
    db: Session
    config: dict[str, Any]
    report: Callable[[str, float], None]
    cancelled: Callable[[], bool]


Handler = Callable[[Context], None]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


# --- the queue ---------------------------------------------------------------------------------

_state: dict[str, Any] = {}


def make_huey(config: dict[str, Any], instance_path: Path) -> Huey:
    """The queue for this configuration, with the task names both sides agree on."""
    if config.get("REDIS_URL"):
        huey: Huey = RedisHuey("ipr", url=config["REDIS_URL"], results=False)
    else:
        instance_path.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(
            "ipr", filename=str(instance_path / "queue.sqlite3"), results=False, timeout=30
        )
    huey._ipr_run_job = huey.task(name="ipr.run_job")(_run_job_task)  # type: ignore[attr-defined]
    return huey


def configure_worker(config: dict[str, Any], database: Database) -> None:
    """Called once in a worker process before the consumer starts."""
    _state["config"] = config
    _state["db"] = database


def enqueue(
    db: Session,
    huey: Huey,
    kind: str,
    *,
    study_id: int | None = None,
    recording_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    """Create the job row, commit it, then put its id on the queue."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    params = dict(params or {})
    request_id = logs.current_request_id()
    if request_id and "request_id" not in params:
        params["request_id"] = request_id  # the worker logs under the request's id
    job = Job(
        kind=kind,
        study_id=study_id,
        recording_id=recording_id,
        params=params,
        status="queued",
        stage="Waiting for a worker",
    )
    db.add(job)
    db.commit()
    _push(huey, job.id)
    metrics.JOBS_QUEUED.labels(kind).inc()
    log.info("job %s (%s) queued", job.id, kind)
    return job


def _push(huey: Huey, job_id: int) -> None:
    huey._ipr_run_job(job_id)  # type: ignore[attr-defined]


# --- the worker side ---------------------------------------------------------------------------


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim(db: Session, job_id: int, worker: str) -> Job | None:
    """Atomically take a queued job; None if another worker has it or it is finished."""
    now = utcnow()
    result = db.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(
            status="running",
            worker=worker,
            heartbeat_at=now,
            started_at=now,
            attempts=Job.attempts + 1,
            stage="Starting",
        )
    )
    db.commit()
    if result.rowcount != 1:
        return None
    return db.get(Job, job_id)


def run_job(database: Database, config: dict[str, Any], job_id: int) -> str:
    """Run one job to its end; returns the final status. Its log lines carry the job's id and
    the id of the request that queued it."""
    with database.session() as db:
        found = db.execute(select(Job.kind, Job.params).where(Job.id == job_id)).first()
    if found is None:
        return "skipped"
    kind, params = found
    began = time.monotonic()
    with logs.job_context(job_id, (params or {}).get("request_id")):
        status = _run_job(database, config, job_id)
        seconds = time.monotonic() - began
        if status != "skipped":
            log.info("job %s (%s) %s in %.1f s", job_id, kind, status, seconds)
    if status != "skipped":
        metrics.JOBS_STARTED.labels(kind).inc()
        metrics.JOBS_FINISHED.labels(kind, status).inc()
    if kind == "ingest" and status == "done":
        _observe_ingest(database, job_id, seconds)
    return status


def _observe_ingest(database: Database, job_id: int, seconds: float) -> None:
    with database.session() as db:
        duration_ms = db.scalar(
            select(Recording.duration_ms)
            .join(Job, Job.recording_id == Recording.id)
            .where(Job.id == job_id)
        )
    if duration_ms and seconds > 0:
        metrics.INGEST_REALTIME.observe(duration_ms / 1000 / seconds)


def _run_job(database: Database, config: dict[str, Any], job_id: int) -> str:
    worker = _worker_name()
    with database.session() as db:
        job = claim(db, job_id, worker)
        if job is None:
            return "skipped"
        stop = threading.Event()
        beat = threading.Thread(
            target=_heartbeat,
            args=(database, job_id, stop, max(1, config["WORKER_HEARTBEAT_SECONDS"])),
            daemon=True,
        )
        beat.start()
        last = [0.0]

        def report(stage: str, fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and fraction < 1.0:
                return
            last[0] = now
            with database.session() as s:
                s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.worker == worker)
                    .values(
                        stage=stage[:60],
                        progress=max(0.0, min(1.0, fraction)),
                        heartbeat_at=utcnow(),
                    )
                )
                s.commit()

        def cancelled() -> bool:
            with database.session() as s:
                return s.scalar(select(Job.status).where(Job.id == job_id)) != "running"

        ctx = Context(job=job, db=db, config=config, report=report, cancelled=cancelled)
        try:
            HANDLERS[job.kind](ctx)
        except JobFailed as exc:
            db.rollback()
            _finish(db, job_id, "failed", exc.message)
            return "failed"
        except Exception as exc:  # noqa: BLE001 — the job row must say it failed, whatever failed
            db.rollback()
            log.error("job %s (%s) failed: %s", job_id, job.kind, traceback.format_exc())
            # named domain errors (MediaError…) carry a message meant for the researcher
            message = getattr(exc, "message", None)
            if not isinstance(message, str) or not message:
                message = f"Processing failed unexpectedly ({type(exc).__name__})."
            _finish(db, job_id, "failed", message)
            return "failed"
        finally:
            stop.set()
            beat.join(timeout=5)
        _finish(db, job_id, "done", None)
        return "done"


def _finish(db: Session, job_id: int, status: str, error: str | None) -> None:
    db.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=status,
            error=error,
            finished_at=utcnow(),
            progress=1.0 if status == "done" else Job.progress,
            stage="Done" if status == "done" else "Failed",
        )
    )
    db.commit()


def _heartbeat(database: Database, job_id: int, stop: threading.Event, every: int) -> None:
    while not stop.wait(every):
        with database.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow()))
            s.commit()


def reap_stale(db: Session, heartbeat_seconds: int, on_queue: set[int] | None = None) -> list[int]:
    """Jobs to push (again): those whose worker stopped reporting (failed after 3 tries), and
    queued ones missing from the queue. ``on_queue``: the job ids the queue holds now."""
    cutoff = utcnow() - dt.timedelta(seconds=4 * heartbeat_seconds)
    stale = db.scalars(select(Job).where(Job.status == "running", Job.heartbeat_at < cutoff)).all()
    again: list[int] = []
    for job in stale:
        if job.attempts >= MAX_ATTEMPTS:
            job.status = "failed"
            job.error = (
                f"The worker processing this stopped {job.attempts} times; "
                "the file may be too demanding for this server."
            )
            job.finished_at = utcnow()
        else:
            job.status = "queued"
            job.stage = "Waiting for a worker (the previous one stopped)"
            again.append(job.id)
            metrics.JOBS_RETRIED.labels(job.kind, "worker_stopped").inc()
    # the database is the record of work: a queued job whose message is not on the queue (a
    # Redis restarted without persistence, a push that failed after the commit) is pushed
    # again; claim() makes a duplicate message harmless. Without a view of the queue, only
    # jobs nobody has started for ten minutes count as lost.
    grace = dt.timedelta(seconds=heartbeat_seconds if on_queue is not None else 600)
    waiting = db.scalars(
        select(Job).where(
            Job.status == "queued",
            Job.created_at < utcnow() - grace,
            (Job.heartbeat_at.is_(None)) | (Job.heartbeat_at < utcnow() - grace),
        )
    ).all()
    for job in waiting:
        if on_queue is not None and job.id in on_queue:
            continue
        job.heartbeat_at = utcnow()  # when it was last pushed
        again.append(job.id)
    db.commit()
    return again


def queued_job_ids(huey: Huey) -> set[int]:
    """The ids of the jobs whose message waits on the queue now."""
    return {
        int(task.args[0]) for task in huey.pending() if task.name == "ipr.run_job" and task.args
    }


def retry(db: Session, huey: Huey, job_id: int, *, user: Any, ip: str | None = None) -> Job:
    """An administrator's *Retry* of a failed job: queued again with fresh attempts (audited)."""
    from ipr import audit
    from ipr.errors import NotFound, ValidationError

    job = db.get(Job, job_id)
    if job is None:
        raise NotFound()
    if job.status != "failed":
        raise ValidationError("Only a failed job can be retried.")
    audit.record(
        db, "job_retried", user=user, study_id=job.study_id, obj=("job", job.id), ip=ip,
        details={"kind": job.kind, "error": job.error, "attempts": job.attempts},
    )  # fmt: skip
    job.status, job.error, job.attempts = "queued", None, 0
    job.stage, job.progress, job.finished_at = "Waiting for a worker (retried)", 0.0, None
    job.heartbeat_at = None
    if job.kind == "ingest" and job.recording_id is not None:
        # the recording shows "queued" again, as after the recording page's own Try again
        db.execute(
            update(Recording)
            .where(Recording.id == job.recording_id)
            .values(status="queued", error=None, error_code=None)
        )
    db.commit()
    _push(huey, job.id)
    metrics.JOBS_RETRIED.labels(job.kind, "admin").inc()
    log.info("job %s (%s) retried by %s", job.id, job.kind, getattr(user, "email", user))
    return job


def overview(db: Session, heartbeat_seconds: int) -> dict[str, Any]:
    """What the admin jobs page shows: queue depth by kind, workers, running and failed jobs."""
    now = utcnow()
    queued = db.execute(
        select(Job.kind, func.count()).where(Job.status == "queued").group_by(Job.kind)
    ).all()
    workers = []
    for w in db.scalars(select(Worker).order_by(Worker.heartbeat_at.desc())):
        age = (now - w.heartbeat_at).total_seconds()
        workers.append({"name": w.name, "started_at": w.started_at, "age_s": age,
                        "alive": age <= 4 * heartbeat_seconds})  # fmt: skip
    return {
        "queued": dict(queued),
        "depth": sum(n for _, n in queued),
        "workers": workers,
        "running": db.scalars(select(Job).where(Job.status == "running").order_by(Job.id)).all(),
        "failed": db.scalars(
            select(Job).where(Job.status == "failed").order_by(Job.finished_at.desc()).limit(50)
        ).all(),
    }


def beat(db: Session, name: str) -> None:
    """Record that the worker process ``name`` is alive (one row per process)."""
    now = utcnow()
    done = db.execute(update(Worker).where(Worker.name == name).values(heartbeat_at=now))
    if done.rowcount == 0:
        db.add(Worker(name=name, started_at=now, heartbeat_at=now))
    # a process gone for a day is history, not a worker
    db.execute(delete(Worker).where(Worker.heartbeat_at < now - dt.timedelta(days=1)))
    db.commit()


def _beat_forever(database: Database, name: str, every: int, stop: threading.Event) -> None:
    while True:
        try:
            with database.session() as db:
                beat(db, name)
        except Exception:  # noqa: BLE001 — a database blip must not kill the heartbeat
            log.warning("worker heartbeat failed", exc_info=True)
        if stop.wait(every):
            return


def _run_job_task(job_id: int) -> None:
    run_job(_state["db"], _state["config"], job_id)


def _reap_task() -> None:
    from ipr.storage import Storage
    from ipr.uploads import cleanup_expired

    database: Database = _state["db"]
    try:
        on_queue: set[int] | None = queued_job_ids(_state["huey"])
    except Exception:  # noqa: BLE001 — the queue is away: reap stale jobs all the same
        log.warning("cannot read the queue; lost jobs are looked for again next sweep")
        on_queue = None
    with database.session() as db:
        ids = reap_stale(db, _state["config"]["WORKER_HEARTBEAT_SECONDS"], on_queue)
        storage = Storage(_state["config"]["RECORDINGS_DIR"])
        cleanup_expired(db, storage)
        storage.prune_exports(24 * 3600)  # prepared moment clips: kept a day
        storage.prune_staged_imports(24 * 3600)  # previewed imports never confirmed
    for job_id in ids:
        _push(_state["huey"], job_id)


def run_worker(huey: Huey, config: dict[str, Any], database: Database, workers: int = 1) -> None:
    """Run a consumer in this process until interrupted."""
    from huey.consumer import Consumer

    configure_worker(config, database)
    _state["huey"] = huey
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep, args=(stop, max(1, config["WORKER_HEARTBEAT_SECONDS"])), daemon=True
    )
    sweeper.start()
    name = f"{socket.gethostname()}:{os.getpid()}"
    every = max(1, int(config["WORKER_HEARTBEAT_SECONDS"]))
    threading.Thread(target=_beat_forever, args=(database, name, every, stop), daemon=True).start()
    try:
        Consumer(huey, workers=workers, worker_type="thread", periodic=True).run()
    finally:
        stop.set()


def _sweep(stop: threading.Event, every: int) -> None:
    """Every heartbeat interval (and at once, for what a previous worker left behind): stale
    and lost jobs back onto the queue. A thread, not a queued task, so it also runs while
    the queue is away and catches up as soon as it is back."""
    while True:
        try:
            _reap_task()
        except Exception:  # noqa: BLE001 — the database may be restarting: try again later
            log.warning("sweep for stale jobs failed: %s", traceback.format_exc(limit=1))
        if stop.wait(every):
            return
