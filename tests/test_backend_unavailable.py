"""The database or the queue away: 503 + Retry-After, and the database stays the record of work."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ipr import auth, jobs, studies
from ipr.models import Job, Recording
from tests.conftest import REDIS_URL, make_app, make_video, skip_or_fail

# a port nothing listens on: connections are refused at once, as while a server restarts
CLOSED = "127.0.0.1:9"


def test_database_away_answers_503_with_retry_after(tmp_path) -> None:
    app = make_app(tmp_path, f"postgresql+psycopg://postgres@{CLOSED}/ipr")
    client = app.test_client()
    resp = client.get("/api/v1/studies", headers={"Authorization": "Bearer " + "x" * 43})
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "2"
    assert resp.json["error"]["code"] == "unavailable"
    page = client.get("/r/" + "x" * 43)  # a participant's link: the same 503, as a page
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "2"
    assert "briefly unavailable" in page.get_data(as_text=True)
    app.extensions["ipr_db"].dispose()


def test_queue_away_answers_503_and_the_job_row_is_kept(tmp_path, sqlite_url) -> None:
    app = make_app(tmp_path, sqlite_url, REDIS_URL=f"redis://{CLOSED}/0")
    with app.extensions["ipr_db"].session() as db:
        user = auth.create_user(db, "r@example.org", "a long password")
        study = studies.create_study(db, user, "Queue away")
        dyad = studies.create_dyad(db, study, user, "01")
        _, token = auth.create_api_token(db, user, "t")
        db.commit()
        dyad_id = dyad.id
    video = make_video(tmp_path / "s1.mp4", 1.0)
    with video.open("rb") as fh:
        resp = app.test_client().post(
            f"/api/v1/dyads/{dyad_id}/recordings",
            data={"file": (fh, "s1.mp4"), "session_label": "S1"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "2"
    with app.extensions["ipr_db"].session() as db:
        rec = db.scalars(select(Recording)).one()
        job = db.scalars(select(Job)).one()
        assert (rec.status, job.status, job.recording_id) == ("queued", "queued", rec.id)
        # the worker's sweep finds it missing from the (empty) queue and pushes it again
        assert jobs.reap_stale(db, heartbeat_seconds=30, on_queue=set()) == []  # not yet: grace
        job.created_at -= dt.timedelta(seconds=31)
        db.commit()
        assert jobs.reap_stale(db, heartbeat_seconds=30, on_queue=set()) == [job.id]
        assert jobs.reap_stale(db, heartbeat_seconds=30, on_queue=set()) == []  # just pushed
        assert jobs.reap_stale(db, heartbeat_seconds=30, on_queue=None) == []  # 10 min rule
    app.extensions["ipr_db"].dispose()


@pytest.mark.redis
def test_queued_job_survives_a_flushed_redis(tmp_path, sqlite_url) -> None:
    if not REDIS_URL:
        skip_or_fail("IPR_TEST_REDIS_URL is not set (CI sets it; see .ci/run)")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    app = make_app(tmp_path, sqlite_url, REDIS_URL=REDIS_URL)
    huey = app.extensions["ipr_huey"]
    with app.extensions["ipr_db"].session() as db:
        user = auth.create_user(db, "r@example.org", "a long password")
        study = studies.create_study(db, user, "Redis restart")
        db.commit()
        lost = jobs.enqueue(db, huey, "ingest", study_id=study.id)
        kept = jobs.enqueue(db, huey, "ingest", study_id=study.id)
        assert jobs.queued_job_ids(huey) == {lost.id, kept.id}
        redis.Redis.from_url(REDIS_URL).flushdb()  # a restart without persistence
        jobs._push(huey, kept.id)  # (pushed again after the restart, say by a retry)
        for job in (lost, kept):
            job.created_at -= dt.timedelta(seconds=31)
        db.commit()
        assert jobs.queued_job_ids(huey) == {kept.id}
        again = jobs.reap_stale(db, 30, jobs.queued_job_ids(huey))
        assert again == [lost.id]
        for job_id in again:
            jobs._push(huey, job_id)
        assert jobs.queued_job_ids(huey) == {lost.id, kept.id}
    redis.Redis.from_url(REDIS_URL).flushdb()
    app.extensions["ipr_db"].dispose()


def test_write_counter_falls_back_to_the_process_while_redis_is_away() -> None:
    """A participant's save must not fail because the rate counter's Redis is restarting; the
    allowance still holds, counted in the process meanwhile."""
    from ipr.ratelimit import RateLimited, RateLimiter

    limiter = RateLimiter(3, f"redis://{CLOSED}/0")
    for _ in range(3):
        limiter.hit("rs:1")
    with pytest.raises(RateLimited):
        limiter.hit("rs:1")
