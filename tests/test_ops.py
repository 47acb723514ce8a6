"""Operations: health and readiness, /metrics (who may read it, what moves), request ids in the
worker's logs, and the admin jobs page with its audited Retry."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ipr import jobs, logs
from ipr.models import AuditEvent, Job, Recording
from tests.conftest import Web, api_token, make_app, make_video


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


# --- health and readiness ----------------------------------------------------------------------


def test_healthz_needs_no_database(tmp_path) -> None:
    app = make_app(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:9/none")
    client = app.test_client()
    client.set_cookie("ipr_session", "whatever")
    resp = client.get("/healthz")
    assert (resp.status_code, resp.json) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"] == "5"
    assert ready.json["status"] == "not ready"
    assert ready.json["failed"] == ["database"]
    assert ready.json["checks"]["database"]["ok"] is False
    assert ready.json["checks"]["database"]["detail"].startswith("OperationalError")
    scraped = scrape(client)  # an outage still gets an answer, saying so
    assert value(scraped, "ipr_database_up") == 0


def test_readyz_names_each_failure(app, monkeypatch, tmp_path) -> None:
    client = app.test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.json
    assert resp.json["failed"] == []
    assert resp.json["checks"]["queue"] == {"ok": True, "detail": "0 waiting"}
    assert set(resp.json["checks"]) == {"database", "queue", "media", "ffmpeg"}

    monkeypatch.setattr(app.extensions["ipr_storage"], "root", tmp_path / "gone")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on it
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json["failed"] == ["media", "ffmpeg"]
    assert resp.json["checks"]["ffmpeg"]["detail"] == "not found on PATH: ffmpeg, ffprobe"
    assert "gone is not writable" in resp.json["checks"]["media"]["detail"]


def test_readyz_reports_a_queue_that_does_not_answer(tmp_path, sqlite_url) -> None:
    app = make_app(tmp_path, sqlite_url, REDIS_URL="redis://127.0.0.1:9/0")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["failed"] == ["queue"]
    assert resp.json["checks"]["queue"]["detail"].startswith("ConnectionError")


# --- who may read /metrics -------------------------------------------------------------------


def test_metrics_are_not_public(app) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # from 127.0.0.1, the default allow list
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 403  # came through the proxy: an outside caller
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert outside.status_code == 403
    app.config["METRICS_ALLOW"] = "10.0.0.0/8"
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 no longer listed
    app.config["METRICS_TOKEN"] = "s3cret-scrape"
    far = {"REMOTE_ADDR": "198.51.100.7"}
    ok = client.get("/metrics", environ_base=far, headers={"Authorization": "Bearer s3cret-scrape"})
    assert ok.status_code == 200
    bad = client.get("/metrics", environ_base=far, headers={"Authorization": "Bearer guess"})
    assert bad.status_code == 403


# --- an ingest moves the job counters; its request id reaches the worker's log -------------


@pytest.fixture
def dyad(owner, study, db):
    from ipr import studies

    d = studies.create_dyad(db, study, owner, "01")
    db.commit()
    return d


def test_metrics_follow_an_ingest_and_the_request_id_reaches_the_worker_log(
    app, db, owner, dyad, tmp_path
) -> None:
    client = app.test_client()
    token = api_token(db, owner)
    src = make_video(tmp_path / "s.mp4", 2.0)
    before = scrape(client)
    with src.open("rb") as fh:
        resp = client.post(
            f"/api/v1/dyads/{dyad.id}/recordings",
            data={"file": (fh, "s.mp4"), "session_label": "Session 1"},
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-ingest-1"},
            content_type="multipart/form-data",
        )
    assert resp.status_code == 201, resp.json
    assert resp.headers["X-Request-Id"] == "req-ingest-1"
    job = db.scalar(select(Job).where(Job.recording_id == resp.json["id"]))
    assert job.params["request_id"] == "req-ingest-1"

    queued = scrape(client)
    assert value(queued, "ipr_jobs", kind="ingest", status="queued") == 1
    assert value(queued, "ipr_queue_depth") == 1
    assert value(queued, "ipr_jobs_queued_total", kind="ingest") == (
        value(before, "ipr_jobs_queued_total", kind="ingest") + 1
    )
    route = "/api/v1/dyads/<int:dyad_id>/recordings"
    assert value(queued, "ipr_http_requests_total", route=route, method="POST", status="201") == (
        value(before, "ipr_http_requests_total", route=route, method="POST", status="201") + 1
    )

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger("ipr").addHandler(handler)
    try:
        assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
    finally:
        logging.getLogger("ipr").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finished = [x for x in lines if x["message"].startswith(f"job {job.id} (ingest) done in ")]
    assert len(finished) == 1
    assert (finished[0]["request_id"], finished[0]["job_id"]) == ("req-ingest-1", job.id)
    assert finished[0]["logger"] == "ipr.jobs" and finished[0]["level"] == "INFO"

    done = scrape(client)
    assert value(done, "ipr_jobs", kind="ingest", status="queued") == 0
    assert value(done, "ipr_jobs", kind="ingest", status="done") == 1
    assert value(done, "ipr_queue_depth") == 0
    for name, labels in (
        ("ipr_jobs_started_total", {"kind": "ingest"}),
        ("ipr_jobs_finished_total", {"kind": "ingest", "status": "done"}),
        ("ipr_ingest_realtime_factor_count", {}),
    ):
        assert value(done, name, **labels) == value(queued, name, **labels) + 1, name
    assert value(done, "ipr_ingest_realtime_factor_recent") > 0
    assert value(done, "ipr_database_up") == 1


def test_moments_saved_and_worker_heartbeats(app, db, recall_env) -> None:
    client = app.test_client()
    before = scrape(client)
    rs = recall_env["invite"]("therapist", mode="researcher")
    resp = recall_env["api"]("POST", f"/api/v1/recall-sessions/{rs['id']}/moments",
                             {"t_ms": 1500, "text": "here"})  # fmt: skip
    assert resp.status_code == 201, resp.json
    bad = recall_env["api"]("POST", f"/api/v1/recall-sessions/{rs['id']}/moments", {"t_ms": -5})
    assert bad.status_code == 422
    jobs.beat(db, "host-a:101")
    jobs.beat(db, "host-a:101")
    after = scrape(client)
    assert value(after, "ipr_moments_saved_total") == value(before, "ipr_moments_saved_total") + 1
    assert value(after, "ipr_workers_alive") == 1
    age = value(after, "ipr_worker_heartbeat_age_seconds", worker="host-a:101")
    assert 0 <= age < 60


# --- request ids -------------------------------------------------------------------------------


def test_request_ids(app) -> None:
    client = app.test_client()
    assert (
        client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"]
        == "abc-123"
    )
    made = client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    odd = client.get("/healthz", headers={"X-Request-Id": "has spaces\tand tabs"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-Id"])


def test_json_log_lines(tmp_path, sqlite_url) -> None:
    app = make_app(tmp_path, sqlite_url, LOG_FORMAT="json")
    ours = next(h for h in logging.getLogger().handlers if getattr(h, "_ipr", False))
    stream = io.StringIO()
    old = ours.setStream(stream)
    try:
        app.test_client().get("/studies", headers={"X-Request-Id": "page-7"})
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["logger"] == "ipr.requests"
        assert (line["request_id"], line["route"], line["status"]) == ("page-7", "/studies", 302)
        assert line["message"].startswith("GET /studies 302 ")
        assert line["ts"].endswith("+00:00")
    finally:
        ours.setStream(old)
        logs.configure("INFO", "text")


# --- the admin jobs page -------------------------------------------------------------------------


def test_admin_jobs_page_and_audited_retry(app, db, make_user, dyad, owner_web, tmp_path) -> None:
    from ipr import recordings
    from ipr.storage import Storage

    src = make_video(tmp_path / "s.mp4", 1.0)
    rec = recordings.add_recording(
        db, Storage(app.config["RECORDINGS_DIR"]), app.extensions["ipr_huey"], dyad, None, "S1",
        src, "s.mp4",
    )  # fmt: skip
    job = recordings.latest_job(db, rec)
    job.status, job.error, job.attempts = "failed", "The worker ran out of memory.", 3
    rec.status = "failed"
    db.commit()
    jobs.beat(db, "worker-host:42")

    assert owner_web.get("/admin/jobs").status_code == 404  # a researcher, not an admin
    assert (
        owner_web.post(f"/admin/jobs/{job.id}/retry").status_code == 404
    )  # like the page: not an admin, no such page
    admin = make_user("admin@example.org", role="admin")
    web = Web(app)
    web.login(admin.email)
    page = web.get("/admin/jobs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "The worker ran out of memory." in html
    assert "worker-host:42" in html and ">alive<" in html
    assert f'action="/admin/jobs/{job.id}/retry"' in html
    assert "<strong>0</strong> jobs waiting" in html

    resp = web.post(f"/admin/jobs/{job.id}/retry", htmx=True)
    assert resp.status_code == 200
    assert "<strong>1</strong> job waiting for a worker:" in resp.get_data(as_text=True)
    db.expire_all()
    job = db.get(Job, job.id)
    assert (job.status, job.error, job.attempts) == ("queued", None, 0)
    assert db.get(Recording, rec.id).status == "queued"
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "job_retried"))
    assert (event.user_id, event.object_id) == (admin.id, str(job.id))
    assert event.details == {"kind": "ingest", "error": "The worker ran out of memory.",
                             "attempts": 3}  # fmt: skip
    assert web.post(f"/admin/jobs/{job.id}/retry").status_code == 422  # not failed any more
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
    db.expire_all()
    assert db.get(Recording, rec.id).status == "ready"


def test_multiprocess_mode_adds_up_the_processes(tmp_path, sqlite_url) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (gunicorn), counters of every process reach one scrape."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    folder = tmp_path / "prom"
    folder.mkdir()
    count = "from ipr import metrics; metrics.MOMENTS_SAVED.inc({n})"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin"}
    for n in (2, 3):  # two processes, as two gunicorn workers
        subprocess.run([sys.executable, "-c", count.format(n=n)], cwd=ROOT, env=env, check=True,
                       timeout=120)  # fmt: skip
    scrape_code = (
        "from ipr import metrics; from ipr.db import Database; "
        f"print(metrics.exposition(Database({sqlite_url!r}), 30).decode())"
    )
    out = subprocess.run([sys.executable, "-c", scrape_code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    assert "ipr_moments_saved_total 5.0" in out.splitlines()
    assert "ipr_queue_depth 0.0" in out.splitlines()


def test_work_figures_on_each_database(any_db_url, tmp_path) -> None:
    """The scrape's database queries on SQLite and on PostgreSQL."""
    app = make_app(tmp_path, any_db_url)
    with app.extensions["ipr_db"].session() as db:
        db.add_all(
            [
                Job(kind="ingest", status="queued"),
                Job(kind="ingest", status="failed", attempts=3, error="x"),
                Job(kind="moment_clips", status="running", attempts=2),
            ]
        )
        db.commit()
        jobs.beat(db, "pg-or-lite:7")
    try:
        got = scrape(app.test_client())
    finally:
        app.extensions["ipr_db"].dispose()
    assert value(got, "ipr_jobs", kind="ingest", status="queued") == 1
    assert value(got, "ipr_jobs", kind="ingest", status="failed") == 1
    assert value(got, "ipr_jobs", kind="moment_clips", status="running") == 1
    assert value(got, "ipr_jobs", kind="moment_clips", status="done") == 0
    assert value(got, "ipr_job_retries", kind="ingest") == 2
    assert value(got, "ipr_job_retries", kind="moment_clips") == 1
    assert value(got, "ipr_queue_depth") == 1
    assert value(got, "ipr_workers_alive") == 1
    assert value(got, "ipr_database_up") == 1
