"""Recordings end to end through the real queue, worker and ffmpeg: import, process, refuse."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from ipr import jobs, recordings
from ipr.models import Clip, Job, Recording
from ipr.storage import Storage
from tests.conftest import REDIS_URL, ROOT, make_video, skip_or_fail


def _env(app) -> dict[str, str]:
    return {
        "IPR_DATABASE_URL": app.config["DATABASE_URL"],
        "IPR_RECORDINGS_DIR": app.config["RECORDINGS_DIR"],
        "IPR_INSTANCE_PATH": app.instance_path,
        "IPR_SECRET_KEY": "k" * 32,
        "IPR_REDIS_URL": app.config["REDIS_URL"],
        "PATH": os.environ["PATH"],
    }


def flask_cli(app, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "ipr", *args],
        cwd=ROOT, capture_output=True, text=True, env=_env(app), timeout=timeout,
    )  # fmt: skip


def import_cli(app, src, session: str, *extra: str) -> subprocess.CompletedProcess:
    """`flask ipr import` of ``src`` into the test study's dyad 01."""
    return flask_cli(app, "import", str(src), "--study", "Recall study", "--dyad", "01",
                     "--session", session, *extra)  # fmt: skip


@pytest.fixture
def dyad(owner_web, study, db):
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"})
    db.expire_all()
    return study.dyads[0]


def test_cli_import_wait_processes_a_real_file(app, db, dyad, tmp_path) -> None:
    src = make_video(tmp_path / "session3.mp4", 6.0)
    out = import_cli(app, src, "Session 3", "--wait")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rec = db.get(Recording, result["recording_id"])
    assert result == {"recording_id": rec.id, "status": "ready"}
    assert (rec.width, rec.height, rec.fps_num, rec.fps_den, rec.has_audio) == (
        320,
        180,
        25,
        1,
        True,
    )
    assert abs(rec.duration_ms - 6000) <= 40
    assert rec.remuxed is True  # H.264/AAC CFR already qualifies: copied, not transcoded
    assert rec.sha256 == recordings.sha256_file(src)
    assert [(c.index, c.start_ms) for c in rec.clips] == [(1, 0)]  # 6 s < the 5 min default
    storage = Storage(app.config["RECORDINGS_DIR"])
    derived = storage.derived_dir(rec.storage_key)
    for name in (
        "playable.mp4",
        "sprite.jpg",
        "analysis.json",
        "waveform.json",
        "clips/001.mp4",
        "clips/001.jpg",
    ):
        assert (derived / name).is_file(), name
    job = db.scalar(select(Job).where(Job.recording_id == rec.id))
    assert (job.kind, job.status, job.progress) == ("ingest", "done", 1.0)
    # the same file again is a duplicate, refused before anything is stored
    again = import_cli(app, src, "Session 3 again")
    assert again.returncode != 0 and "already uploaded as dyad 01, Session 3" in again.stderr


def test_refused_file_leaves_nothing_behind(app, db, dyad, tmp_path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my session notes, not a video\n" * 100)
    out = import_cli(app, fake, "Session 5", "--wait")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "failed" and result["error"]
    rec = db.get(Recording, result["recording_id"])
    assert rec.error_code and rec.error == result["error"]
    assert not Storage(app.config["RECORDINGS_DIR"]).recording_dir(rec.storage_key).exists()
    job = db.scalar(select(Job).where(Job.recording_id == rec.id))
    assert job.status == "failed" and job.error == rec.error


def _wait_for(db, rec_id: int, timeout: float = 120) -> Recording:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.expire_all()
        rec = db.get(Recording, rec_id)
        if rec.status in ("ready", "failed"):
            return rec
        time.sleep(0.3)
    raise AssertionError(f"recording {rec_id} still {rec.status}")


def _queue_and_work(app, db, dyad, tmp_path) -> None:
    src = make_video(tmp_path / "s.mp4", 3.0)
    rec = recordings.add_recording(
        db,
        Storage(app.config["RECORDINGS_DIR"]),
        app.extensions["ipr_huey"],
        dyad,
        None,
        "Session 1",
        src,
        "s.mp4",
    )
    # the request side only queued: nothing has been processed
    assert rec.status == "queued" and rec.duration_ms is None
    assert db.scalar(select(Job.status).where(Job.recording_id == rec.id)) == "queued"
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "ipr", "worker"],
        cwd=ROOT, env=_env(app), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        rec = _wait_for(db, rec.id)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert rec.status == "ready", output
    assert rec.sha256 == recordings.sha256_file(src)  # computed by the worker
    assert len(rec.clips) == 1


def test_worker_on_embedded_queue(app, db, dyad, tmp_path) -> None:
    assert app.config["REDIS_URL"] == ""
    _queue_and_work(app, db, dyad, tmp_path)


@pytest.mark.redis
def test_worker_on_redis(tmp_path, sqlite_url) -> None:
    if not REDIS_URL:
        skip_or_fail("IPR_TEST_REDIS_URL is not set (CI sets it; see .ci/run)")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    from ipr import auth, studies
    from tests.conftest import make_app

    app = make_app(tmp_path, sqlite_url, REDIS_URL=REDIS_URL)
    assert type(app.extensions["ipr_huey"]).__name__ == "RedisHuey"
    with app.extensions["ipr_db"].session() as db:
        user = auth.create_user(db, "r@example.org", "a long password")
        study = studies.create_study(db, user, "Redis study")
        dyad = studies.create_dyad(db, study, user, "01")
        db.commit()
        _queue_and_work(app, db, dyad, tmp_path)


def test_stale_running_job_is_picked_up_again(app, db, dyad) -> None:
    job = Job(
        kind="ingest",
        status="running",
        attempts=1,
        study_id=dyad.study_id,
        heartbeat_at=dt.datetime(2020, 1, 1),
        worker="dead-host:1:1",
    )
    fresh = Job(
        kind="ingest",
        status="running",
        attempts=1,
        study_id=dyad.study_id,
        heartbeat_at=jobs.utcnow(),
        worker="live-host:2:2",
    )
    tired = Job(
        kind="ingest",
        status="running",
        attempts=3,
        study_id=dyad.study_id,
        heartbeat_at=dt.datetime(2020, 1, 1),
    )
    db.add_all([job, fresh, tired])
    db.commit()
    assert jobs.reap_stale(db, heartbeat_seconds=30) == [job.id]
    db.expire_all()
    assert (job.status, fresh.status, tired.status) == ("queued", "running", "failed")
    assert "stopped 3 times" in tired.error
    # a queued job can be claimed exactly once
    assert jobs.claim(db, job.id, "w1") is not None
    assert jobs.claim(db, job.id, "w2") is None


def test_failed_job_can_be_retried(app, db, dyad, tmp_path, owner_web) -> None:
    src = make_video(tmp_path / "s.mp4", 2.0)
    storage = Storage(app.config["RECORDINGS_DIR"])
    rec = recordings.add_recording(
        db, storage, app.extensions["ipr_huey"], dyad, None, "S1", src, "s.mp4"
    )
    job = recordings.latest_job(db, rec)
    db.execute(
        Job.__table__.update().where(Job.id == job.id).values(status="failed", error="worker lost")
    )
    rec.status = "failed"
    rec.error = "worker lost"
    db.commit()
    page = owner_web.get(f"/recordings/{rec.id}").get_data(as_text=True)
    assert "could not be used: worker lost" in page and "Try again" in page
    resp = owner_web.post(f"/recordings/{rec.id}/retry")
    assert resp.status_code == 302
    db.expire_all()
    assert rec.status == "queued"
    new_job = recordings.latest_job(db, rec)
    assert new_job.id != job.id and new_job.status == "queued"  # a new attempt; history kept
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), new_job.id) == "done"
    db.expire_all()
    assert rec.status == "ready"


def test_status_fragment_polls_until_done(app, db, dyad, tmp_path, owner_web) -> None:
    src = make_video(tmp_path / "s.mp4", 2.0)
    storage = Storage(app.config["RECORDINGS_DIR"])
    rec = recordings.add_recording(
        db, storage, app.extensions["ipr_huey"], dyad, None, "S1", src, "s.mp4"
    )
    frag = owner_web.get(f"/recordings/{rec.id}/status", htmx=True).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in frag and "Waiting to be processed" in frag
    jobs.run_job(app.extensions["ipr_db"], dict(app.config), recordings.latest_job(db, rec).id)
    resp = owner_web.get(f"/recordings/{rec.id}/status?was=processing", htmx=True)
    assert "hx-trigger" not in resp.get_data(as_text=True)
    assert resp.headers.get("HX-Refresh") == "true"


def test_delete_recording_removes_rows_and_files(app, db, dyad, tmp_path, owner_web) -> None:
    src = make_video(tmp_path / "s.mp4", 2.0)
    storage = Storage(app.config["RECORDINGS_DIR"])
    rec = recordings.add_recording(
        db, storage, app.extensions["ipr_huey"], dyad, None, "S1", src, "s.mp4"
    )
    jobs.run_job(app.extensions["ipr_db"], dict(app.config), recordings.latest_job(db, rec).id)
    folder = storage.recording_dir(rec.storage_key)
    assert (folder / "derived" / "playable.mp4").is_file()
    rec_id = rec.id
    resp = owner_web.post(f"/recordings/{rec_id}/delete")
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(Recording, rec_id) is None
    assert db.scalars(select(Clip).where(Clip.recording_id == rec_id)).all() == []
    assert db.scalars(select(Job).where(Job.recording_id == rec_id)).all() == []
    assert not folder.exists()


def test_researcher_resegments_and_moves_a_boundary(app, db, dyad, tmp_path, owner_web) -> None:
    src = make_video(tmp_path / "s.mp4", 6.0)  # a keyframe every second
    storage = Storage(app.config["RECORDINGS_DIR"])
    huey = app.extensions["ipr_huey"]
    rec = recordings.add_recording(db, storage, huey, dyad, None, "S1", src, "s.mp4")
    run = lambda job: jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id)  # noqa: E731
    assert run(recordings.latest_job(db, rec)) == "done"
    db.expire_all()
    assert [(c.start_ms, c.end_ms) for c in rec.clips] == [(0, 6000)]
    resp = owner_web.post(
        f"/recordings/{rec.id}/segments",
        {"strategy": "fixed", "fixed_s": "2", "min_s": "1", "max_s": "10"},
    )
    assert resp.status_code == 302
    assert run(recordings.latest_job(db, rec)) == "done"
    db.expire_all()
    assert [(c.index, c.start_ms, c.end_ms) for c in rec.clips] == [
        (1, 0, 2000),
        (2, 2000, 4000),
        (3, 4000, 6000),
    ]
    clips = storage.derived_dir(rec.storage_key) / "clips"
    assert sorted(p.name for p in clips.iterdir()) == [
        "001.jpg",
        "001.mp4",
        "002.jpg",
        "002.mp4",
        "003.jpg",
        "003.mp4",
    ]
    # a hand-moved boundary is exact (that clip is re-encoded rather than snapped)
    first = rec.clips[0]
    owner_web.post(f"/clips/{first.id}", {"end_s": "2.5"})
    assert run(recordings.latest_job(db, rec)) == "done"
    db.expire_all()
    assert [(c.start_ms, c.end_ms) for c in rec.clips] == [(0, 2500), (2500, 4000), (4000, 6000)]
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(clips / "002.mp4"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert abs(float(probe.stdout) - 1.5) <= 0.04  # ±1 frame at 25 fps
    # out of range is refused with the reason, nothing queued
    resp = owner_web.post(f"/clips/{first.id}", {"end_s": "5.5"})
    assert resp.status_code == 422 and b"must end between" in resp.data
