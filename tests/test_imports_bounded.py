"""Imports are bounded and all-or-nothing: streamed, row- and size-limited, one transaction."""

from __future__ import annotations

import io
import json
import os
import select as io_select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from ipr import auth, dataset, studies
from ipr.exports import import_csv
from ipr.exports.imports import ImportTooLarge, ImportUnreadable
from ipr.models import (
    AuditEvent,
    Moment,
    MomentRevision,
    RecallSession,
    Recording,
    ResearcherAnnotation,
)
from ipr.storage import Storage
from tests.conftest import ROOT, Web, make_app

DURATION_MS = 3_600_000


def _ready_recording(db, study, dyad) -> Recording:
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Session 1",
        storage_key=Storage.new_key(), status="ready", duration_ms=DURATION_MS,
        width=320, height=180, fps_num=25, fps_den=1, has_audio=True,
    )  # fmt: skip
    db.add(rec)
    db.commit()
    return rec


@pytest.fixture
def env(app, db, owner, owner_web, study):
    dyad = studies.create_dyad(db, study, owner, "01")
    db.commit()
    rec = _ready_recording(db, study, dyad)
    return {"rec": rec, "client": dyad.participant("client"), "web": owner_web}


def _csv(rows: int, start: int = 0) -> bytes:
    return b"start_ms,text\r\n" + b"".join(b"%d,m\r\n" % (start + i) for i in range(rows))


def _import(web: Web, rec, participant, data: bytes, name: str = "paper.csv"):
    # encoded here: the test client would spool a large body to a file it never closes
    boundary, body = encode_multipart(
        {"participant_id": str(participant.id), "file": FileStorage(io.BytesIO(data), name)}
    )
    return web.post(
        f"/recordings/{rec.id}/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def _nothing_stored(db, rec) -> None:
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Moment)) == 0
    assert db.scalar(select(RecallSession).where(RecallSession.recording_id == rec.id)) is None
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "moments_imported")) is None


def test_a_300000_row_csv_is_refused_after_reading_only_past_the_row_limit() -> None:
    data = _csv(300_000)
    stream = io.BytesIO(data)
    with pytest.raises(ImportTooLarge) as caught:
        import_csv(stream, max_rows=10_000)
    assert caught.value.problems == [
        "the file holds more than 10000 moments, the most one import may add "
        "(setting IPR_IMPORT_MAX_ROWS); split it into smaller files"
    ]
    # streamed: it stopped a read-ahead buffer after row 10,001, far from the end of the file
    assert stream.tell() < len(data) // 10


def test_a_300000_row_import_through_the_page_is_refused_and_stores_nothing(env, db) -> None:
    resp = _import(env["web"], env["rec"], env["client"], _csv(300_000))
    assert resp.status_code == 413
    assert "more than 10000 moments" in resp.get_data(as_text=True)
    _nothing_stored(db, env["rec"])


def test_an_import_is_written_in_one_commit_with_one_audit_event(app, env, db) -> None:
    commits: list[int] = []

    def count(conn) -> None:
        commits.append(1)

    engine = app.extensions["ipr_db"].engine
    event.listen(engine, "commit", count)
    try:
        resp = _import(env["web"], env["rec"], env["client"], _csv(2_500))
    finally:
        event.remove(engine, "commit", count)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "Imported 2500 moments into C01" in resp.get_data(as_text=True)
    assert len(commits) == 1  # session, 2,500 moments, revisions and the audit event together
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Moment)) == 2500
    assert db.scalar(select(func.count()).select_from(MomentRevision)) == 2500
    times = db.scalars(select(Moment.t_ms).order_by(Moment.t_ms)).all()
    assert times == list(range(2500))
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "moments_imported")).all()
    assert [e.details for e in events] == [{"format": "csv", "count": 2500, "participant": "C01"}]


def test_a_file_over_the_import_size_limit_is_refused(tmp_path, sqlite_url, db) -> None:
    app = make_app(tmp_path, sqlite_url, IMPORT_MAX_BYTES=1000)
    session = app.extensions["ipr_db"].session()
    owner = auth.create_user(session, "o@example.org", "correct horse battery", "researcher")
    study = studies.create_study(session, owner, "S")
    dyad = studies.create_dyad(session, study, owner, "01")
    session.commit()
    rec = _ready_recording(session, study, dyad)
    web = Web(app)
    web.login("o@example.org")
    resp = _import(web, rec, dyad.participant("client"), _csv(200))  # 1,504 bytes
    assert resp.status_code == 413
    assert "larger than 1000 bytes" in resp.get_data(as_text=True)
    resp = _import(web, rec, dyad.participant("client"), _csv(20_000))  # past the body cap
    assert resp.status_code == 413
    assert session.scalar(select(func.count()).select_from(Moment)) == 0
    session.close()
    app.extensions["ipr_db"].dispose()


def test_a_cell_over_the_csv_field_limit_is_a_400_naming_the_line(env, db) -> None:
    data = b"start_ms,text\r\n1000,short\r\n2000," + b"x" * 140_000 + b"\r\n"
    resp = _import(env["web"], env["rec"], env["client"], data)
    assert resp.status_code == 400
    assert "line 3: a cell is longer than 131072 characters" in resp.get_data(as_text=True)
    _nothing_stored(db, env["rec"])


def test_unreadable_csv_names_where_it_broke() -> None:
    with pytest.raises(ImportUnreadable) as caught:
        import_csv(b"start_ms,text\n1,ok\n2,caf\xe9\n")
    assert caught.value.problems == ["line 3: the file is not UTF-8 text (save it as 'CSV UTF-8')"]
    with pytest.raises(ImportUnreadable) as caught:
        import_csv(b"start_ms,text\n1,ok\n2,x" + b"y" * 200_000)
    assert caught.value.problems == ["line 3: a cell is longer than 131072 characters"]


CHILD = r"""
import json, sys, time
from sqlalchemy import event
from app import create_app
from ipr import dataset
from ipr.models import Participant, Recording, User

cfg, ids, csv_path = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
app = create_app(cfg)
with app.app_context():
    db = app.extensions["ipr_db"].session()

    @event.listens_for(app.extensions["ipr_db"].engine, "after_cursor_execute")
    def pause(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO MOMENTS"):
            print("INSERTED", flush=True)  # the first batch is in the open transaction
            time.sleep(60)

    rec = db.get(Recording, ids["rec"])
    with open(csv_path, "rb") as fh:
        found = dataset.read_import(rec.dyad.study, fh, "csv", max_rows=10_000)
    dataset.import_moments(
        db, rec, db.get(Participant, ids["participant"]), found,
        user=db.get(User, ids["user"]), fmt="csv",
    )
    print("COMMITTED", flush=True)
"""


def test_an_import_killed_mid_transaction_leaves_nothing(any_db_url: str, tmp_path: Path) -> None:
    app = make_app(tmp_path, any_db_url)
    db = app.extensions["ipr_db"].session()
    owner = auth.create_user(db, "o@example.org", "correct horse battery", "researcher")
    study = studies.create_study(db, owner, "S")
    dyad = studies.create_dyad(db, study, owner, "01")
    db.commit()
    rec = _ready_recording(db, study, dyad)
    csv_path = tmp_path / "big.csv"
    csv_path.write_bytes(_csv(3_000))  # three batches: killed after the first is inserted
    cfg = {
        "INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": any_db_url,
        "RECORDINGS_DIR": str(tmp_path / "recordings"), "SECRET_KEY": "kill-test",
    }  # fmt: skip
    ids = {"rec": rec.id, "participant": dyad.participant("client").id, "user": owner.id}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(cfg), json.dumps(ids), str(csv_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        ready, _, _ = io_select.select([child.stdout], [], [], 60)  # never hang the suite
        assert ready and child.stdout.readline().strip() == "INSERTED"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    _nothing_stored(db, rec)
    db.close()
    app.extensions["ipr_db"].dispose()


def test_the_same_import_not_killed_commits_every_row(any_db_url: str, tmp_path: Path) -> None:
    """The control for the kill test: the child's import, left alone, stores all 3,000."""
    app = make_app(tmp_path, any_db_url)
    db = app.extensions["ipr_db"].session()
    owner = auth.create_user(db, "o@example.org", "correct horse battery", "researcher")
    study = studies.create_study(db, owner, "S")
    dyad = studies.create_dyad(db, study, owner, "01")
    db.commit()
    rec = _ready_recording(db, study, dyad)
    with io.BytesIO(_csv(3_000)) as fh:
        found = dataset.read_import(study, fh, "csv", max_rows=10_000)
    dataset.import_moments(db, rec, dyad.participant("client"), found, user=owner, fmt="csv")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Moment)) == 3000
    db.close()
    app.extensions["ipr_db"].dispose()


def test_imported_moments_carry_their_revision_and_the_researchers_layer(env, db, study) -> None:
    studies.add_code(db, study, study.memberships[0].user, {"name": "Insight", "colour": "#123456"})
    db.commit()
    data = (
        b"start_ms,end_ms,peaks_ms,text,rating_hat,researcher_codes,researcher_note\r\n"
        b"1000,3000,2000,felt heard,8,Insight,key moment\r\n"
        b"5000,,,plain,,,\r\n"
    )
    resp = _import(env["web"], env["rec"], env["client"], data)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    db.expire_all()
    first, second = db.scalars(select(Moment).order_by(Moment.t_ms)).all()
    assert (first.end_ms, first.peaks_ms, first.ratings, first.phase) == (
        3000, [2000], {"hat": 8}, "blind"
    )  # fmt: skip
    revisions = db.scalars(select(MomentRevision).order_by(MomentRevision.moment_id)).all()
    assert [(r.moment_id, r.version, r.action) for r in revisions] == [
        (first.id, 1, "create"), (second.id, 1, "create")
    ]  # fmt: skip
    assert revisions[0].data == {
        "t_ms": 1000, "end_ms": 3000, "peaks_ms": [2000], "text": "felt heard", "codes": [],
        "ratings": {"hat": 8},
    }  # fmt: skip
    notes = db.scalars(select(ResearcherAnnotation)).all()
    assert [(n.moment_id, n.codes, n.note) for n in notes] == [
        (first.id, [study.codes[0].id], "key moment")
    ]
    rs = db.scalar(select(RecallSession).where(RecallSession.recording_id == env["rec"].id))
    assert (rs.status, rs.mode) == ("in_progress", "researcher")


def test_the_import_page_states_its_limits(env) -> None:
    page = env["web"].get(f"/recordings/{env['rec'].id}/import").get_data(as_text=True)
    assert "(at most 10,000 moments and 16.0 MB)" in page
