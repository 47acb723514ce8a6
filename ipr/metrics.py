"""Prometheus metrics: what this process counted, and what the database says at scrape time.

Two kinds of figure, on purpose:

* **Counters and histograms of this process** (requests, job transitions, ingest speed, moments
  saved), through ``prometheus_client``. Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an
  empty folder (emptied at each start) so every worker process writes its values there and one
  scrape adds them up.
* **The state of the work, read from the database** at each scrape (jobs by kind and status,
  queue depth, retries, worker heartbeats, recent ingest speed). The database is the record of
  work shared by every web and worker host, so these are right whichever host is scraped.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from ipr.db import Database
from ipr.models import Job, Moment, Recording, Worker, utcnow

log = logging.getLogger("ipr.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOB_STATUSES = ("queued", "running", "done", "failed")

PROCESS = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "ipr_http_requests",
    "HTTP requests answered by the app, by route (the URL rule), method and status.",
    ["route", "method", "status"],
    registry=PROCESS,
)
HTTP_SECONDS = Histogram(
    "ipr_http_request_duration_seconds",
    "Time the app took to answer, by route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=PROCESS,
)
JOBS_QUEUED = Counter(
    "ipr_jobs_queued", "Jobs put on the queue, by kind.", ["kind"], registry=PROCESS
)
JOBS_STARTED = Counter(
    "ipr_jobs_started", "Jobs a worker of this process claimed, by kind.", ["kind"],
    registry=PROCESS,
)  # fmt: skip
JOBS_FINISHED = Counter(
    "ipr_jobs_finished",
    "Jobs this process ran to their end, by kind and outcome (done or failed).",
    ["kind", "status"],
    registry=PROCESS,
)
JOBS_RETRIED = Counter(
    "ipr_jobs_retried",
    "Jobs queued again: after their worker stopped, or by an administrator's Retry.",
    ["kind", "reason"],
    registry=PROCESS,
)
INGEST_REALTIME = Histogram(
    "ipr_ingest_realtime_factor",
    "Ingest speed: seconds of recording processed per second of work (x realtime).",
    buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
    registry=PROCESS,
)
MOMENTS_SAVED = Counter(
    "ipr_moments_saved", "Moments committed to the database by this process.", registry=PROCESS
)


# --- moments saved: counted when their transaction commits, not when it is attempted --------


@event.listens_for(Session, "after_flush")
def _count_new_moments(session: Session, _context: Any) -> None:
    n = sum(1 for obj in session.new if isinstance(obj, Moment))
    if n:
        session.info["ipr_new_moments"] = session.info.get("ipr_new_moments", 0) + n


@event.listens_for(Session, "after_commit")
def _moments_committed(session: Session) -> None:
    n = session.info.pop("ipr_new_moments", 0)
    if n:
        MOMENTS_SAVED.inc(n)


@event.listens_for(Session, "after_rollback")
def _moments_rolled_back(session: Session) -> None:
    session.info.pop("ipr_new_moments", None)


# --- the database's view ---------------------------------------------------------------------


class WorkCollector(Collector):
    """Jobs, queue depth, retries, workers and recent ingest speed, read at scrape time."""

    def __init__(self, database: Database, heartbeat_seconds: int) -> None:
        self.database = database
        self.heartbeat_seconds = heartbeat_seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ipr_database_up", "1 when the database answered this scrape.")
        try:
            yield from self._collect()
        except Exception:  # noqa: BLE001 — a scrape during an outage still answers
            log.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        with self.database.session() as db:
            by_status = db.execute(
                select(Job.kind, Job.status, func.count(), func.sum(Job.attempts)).group_by(
                    Job.kind, Job.status
                )
            ).all()
            workers = db.execute(select(Worker.name, Worker.heartbeat_at)).all()
            recent = db.execute(
                select(Recording.duration_ms, Job.started_at, Job.finished_at)
                .join(Recording, Recording.id == Job.recording_id)
                .where(Job.kind == "ingest", Job.status == "done")
                .order_by(Job.finished_at.desc())
                .limit(20)
            ).all()
        jobs = GaugeMetricFamily(
            "ipr_jobs", "Jobs in the database, by kind and status.", labels=["kind", "status"]
        )
        retried = GaugeMetricFamily(
            "ipr_job_retries",
            "Extra attempts (attempts beyond the first) of the jobs in the database, by kind.",
            labels=["kind"],
        )
        depth = 0
        extra: dict[str, int] = {}
        kinds = sorted({kind for kind, *_ in by_status})
        counts = {(kind, status): n for kind, status, n, _ in by_status}
        for kind, status, n, attempts in by_status:
            if status in ("done", "failed", "running"):
                extra[kind] = extra.get(kind, 0) + max(0, int(attempts or 0) - n)
        for kind in kinds:
            for status in JOB_STATUSES:
                jobs.add_metric([kind, status], counts.get((kind, status), 0))
            depth += counts.get((kind, "queued"), 0)
            retried.add_metric([kind], extra.get(kind, 0))
        yield jobs
        yield retried
        yield GaugeMetricFamily("ipr_queue_depth", "Jobs waiting for a worker.", value=depth)
        now = utcnow()
        alive = 0
        ages = GaugeMetricFamily(
            "ipr_worker_heartbeat_age_seconds",
            "Seconds since each worker process last reported.",
            labels=["worker"],
        )
        for name, beat in workers:
            age = (now - beat).total_seconds()
            ages.add_metric([name], age)
            alive += age <= 4 * self.heartbeat_seconds
        yield ages
        yield GaugeMetricFamily(
            "ipr_workers_alive",
            "Worker processes that reported within 4 heartbeat intervals.",
            value=alive,
        )
        factors = [
            duration / 1000 / (finished - started).total_seconds()
            for duration, started, finished in recent
            if duration and started and finished and finished > started
        ]
        yield GaugeMetricFamily(
            "ipr_ingest_realtime_factor_recent",
            "Median x realtime of the last 20 finished ingests (any host); 0 before the first.",
            value=statistics.median(factors) if factors else 0.0,
        )


def exposition(database: Database, heartbeat_seconds: int) -> bytes:
    """The text format for one scrape: process counters (all processes in multi-process mode)
    followed by the database's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    else:
        counted = PROCESS
    work = CollectorRegistry(auto_describe=False)
    work.register(WorkCollector(database, heartbeat_seconds))
    return generate_latest(counted) + generate_latest(work)


def serve_worker_metrics(port: int, bind: str = "127.0.0.1") -> None:
    """A worker process's own counters (jobs it ran, ingest speed) on ``bind:port``, for a
    worker host without a web process; the database's figures come from the web's /metrics."""
    from prometheus_client import start_http_server

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = PROCESS
    start_http_server(port, addr=bind, registry=registry)
