"""A recording whose processing fails because of the file keeps no file (issue 10, part 5)."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from ipr import jobs, recordings
from ipr.models import Recording
from ipr.storage import Storage
from tests.conftest import make_video, ready_recording


@pytest.fixture
def dyad(owner_web, study, db):
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"})
    db.expire_all()
    return study.dyads[0]


def test_a_damaged_recording_that_fails_processing_leaves_no_file(
    app,
    db,
    dyad,
    tmp_path,
    owner_web,
) -> None:
    src = make_video(tmp_path / "s.mp4", 4.0)
    data = bytearray(src.read_bytes())
    data[20_000:-1_000] = random.Random(7).randbytes(len(data) - 21_000)  # the frames, not moov
    src.write_bytes(bytes(data))
    storage = Storage(app.config["RECORDINGS_DIR"])
    rec = recordings.add_recording(
        db, storage, app.extensions["ipr_huey"], dyad, None, "S1", src, "s.mp4"
    )
    key = rec.storage_key
    assert storage.find_source(key) is not None
    job = recordings.latest_job(db, rec)
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "failed"
    db.expire_all()
    rec = db.get(Recording, rec.id)
    assert (rec.status, rec.error_code) == ("failed", "decode_failed")
    assert not storage.recording_dir(key).exists()  # source.mp4 included
    resp = owner_web.post(f"/recordings/{rec.id}/retry")
    assert resp.status_code == 422
    assert "The uploaded file was not kept" in resp.get_data(as_text=True)


def test_a_refused_duplicate_names_the_recording_it_copies_and_offers_removal_not_retry(
    app, db, dyad, tmp_path, owner_web
) -> None:
    src = tmp_path / "copy.mp4"
    src.write_bytes(b"the same session, uploaded twice\n" * 1000)  # refused before any probing
    sha = recordings.sha256_file(src)
    original = ready_recording(db, dyad, session_label="Session 3", sha256=sha)
    storage = Storage(app.config["RECORDINGS_DIR"])
    rec = recordings.add_recording(
        db, storage, app.extensions["ipr_huey"], dyad, None, "Session 4", src, "copy.mp4"
    )
    job = recordings.latest_job(db, rec)
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "failed"
    db.expire_all()
    rec = db.get(Recording, rec.id)
    assert (rec.status, rec.error_code) == ("failed", "duplicate")
    assert recordings.duplicate_of(db, rec).id == original.id
    # the dyad page's row says of which recording, with a link, and offers to remove the row
    page = owner_web.get(f"/dyads/{dyad.id}").get_data(as_text=True)
    assert f'Duplicate of <a href="/recordings/{original.id}">dyad 01, Session 3</a>' in page
    assert f'action="/recordings/{rec.id}/delete"' in page
    # the recording's own page: the same link, and Remove instead of a Try again that cannot work
    page = owner_web.get(f"/recordings/{rec.id}").get_data(as_text=True)
    assert (
        f'a duplicate of <a href="/recordings/{original.id}">dyad 01, Session 3 '
        f"(recording {original.id})</a>" in page
    )
    assert "Remove this upload" in page and "Delete recording" not in page
    assert "Try again" not in page and f"/recordings/{rec.id}/retry" not in page
    resp = owner_web.post(f"/recordings/{rec.id}/delete")
    assert (resp.status_code, resp.headers["Location"]) == (302, f"/dyads/{dyad.id}")
    db.expire_all()
    left = db.execute(select(Recording.id, Recording.status).where(Recording.dyad_id == dyad.id))
    assert [tuple(row) for row in left] == [(original.id, "ready")]
    page = owner_web.get(f"/dyads/{dyad.id}").get_data(as_text=True)
    assert "Session 4" not in page and "Duplicate of" not in page


def test_a_failure_that_is_not_a_duplicate_still_offers_try_again(db, dyad, owner_web) -> None:
    rec = ready_recording(db, dyad, status="failed", error="worker lost", error_code="internal")
    page = owner_web.get(f"/recordings/{rec.id}").get_data(as_text=True)
    assert f'action="/recordings/{rec.id}/retry"' in page and "Remove this upload" not in page
    assert recordings.duplicate_of(db, rec) is None
