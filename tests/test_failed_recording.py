"""A recording whose processing fails because of the file keeps no file (issue 10, part 5)."""

from __future__ import annotations

import random

import pytest

from ipr import jobs, recordings
from ipr.models import Recording
from ipr.storage import Storage
from tests.conftest import make_video


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
