"""`ipr backup` while the app writes, `ipr restore` into a fresh instance: every row and file.

A writer thread keeps saving moments (each with its audit event in the same transaction, and a
file on disk written before the commit) while the backup runs. The restored instance must hold
a consistent cut: the moments are an unbroken prefix of what was written, each with its audit
event and its file, every other row equal to the source, every file byte for byte; and it must
work (the API and the Bearer media URL answer from it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from ipr import audit, backup, studies
from ipr.models import AuditEvent, Base, Moment, RecallSession, Recording
from ipr.storage import Storage
from tests.conftest import POSTGRES_URL, make_app, scratch_postgres

WRITER_TABLES = {"moments", "audit_events"}


@pytest.fixture
def target_url(request, any_db_url, tmp_path) -> Iterator[str]:
    """An empty database of the same kind as ``any_db_url``, for the restored instance."""
    if any_db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'ipr.sqlite3'}"
        return
    with scratch_postgres(POSTGRES_URL, "ipr_restore_") as url:
        yield url


def rows(url: str) -> dict[str, list[tuple]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in backup.media_files(root)}


class Writer(threading.Thread):
    """Saves moments one transaction at a time until stopped; remembers the committed ids."""

    def __init__(self, app, rs_id: int, notes: Path) -> None:
        super().__init__(daemon=True)
        self.app, self.rs_id, self.notes = app, rs_id, notes
        self.committed: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def wait_for(self, n: int) -> None:
        while len(self.committed) < n and self.is_alive():
            self.stop.wait(0.01)

    def run(self) -> None:
        try:
            with self.app.extensions["ipr_db"].session() as db:
                rs = db.get(RecallSession, self.rs_id)
                i = 0
                while not self.stop.is_set():
                    i += 1
                    m = Moment(study_id=rs.study_id, recall_session_id=rs.id, t_ms=i, text=f"w{i}")
                    db.add(m)
                    db.flush()
                    (self.notes / f"{m.id}.txt").write_text(f"note {m.id}")
                    audit.record(db, "test_write", actor="writer", study_id=rs.study_id,
                                 obj=("moment", m.id))  # fmt: skip
                    db.commit()
                    self.committed.append(m.id)
        except BaseException as exc:  # noqa: BLE001 — reported by the test
            self.error = exc


def test_backup_during_writes_restores_every_row_and_file(any_db_url, target_url, tmp_path):
    src_app = make_app(tmp_path / "source", any_db_url)
    src_db = src_app.extensions["ipr_db"]
    from ipr import auth

    with src_db.session() as db:
        owner = auth.create_user(db, "owner@example.org", "a long enough password")
        study = studies.create_study(db, owner, "Backed up")
        dyad = studies.create_dyad(db, study, owner, "01")
        key = Storage.new_key()
        rec = Recording(study_id=study.id, dyad_id=dyad.id, session_label="S1", storage_key=key,
                        status="ready", duration_ms=5000)  # fmt: skip
        db.add(rec)
        db.flush()
        rs = RecallSession(study_id=study.id, recording_id=rec.id,
                           participant_id=dyad.participants[0].id, mode="researcher")  # fmt: skip
        db.add(rs)
        db.commit()
        _, token = auth.create_api_token(db, owner, "script")
        db.commit()
        rec_id, rs_id = rec.id, rs.id
    storage = src_app.extensions["ipr_storage"]
    derived = storage.derived_dir(key)
    (derived / "clips").mkdir(parents=True)
    playable = bytes(range(256)) * 64
    (derived / "playable.mp4").write_bytes(playable)
    (derived / "clips" / "001.mp4").write_bytes(b"clip one")
    (storage.root / ".exports").mkdir()
    (storage.root / ".exports" / "cache.zip").write_bytes(b"a cache, not data")
    notes = storage.recording_dir(key) / "notes"
    notes.mkdir()

    writer = Writer(src_app, rs_id, notes)
    writer.start()
    writer.wait_for(20)
    out = src_app.test_cli_runner().invoke(args=["ipr", "backup", str(tmp_path / "bk")])
    during = len(writer.committed)
    writer.wait_for(during + 20)  # the writes went on after the snapshot as well
    writer.stop.set()
    writer.join(30)
    assert writer.error is None, writer.error
    assert out.exit_code == 0, out.output
    assert "Backed up the " in out.output

    manifest = backup.read_manifest(tmp_path / "bk")
    assert ".exports/cache.zip" not in {e["path"] for e in manifest["media"]}

    dst_app = make_app(tmp_path / "restored", target_url)
    result = dst_app.test_cli_runner().invoke(args=["ipr", "restore", str(tmp_path / "bk")])
    assert result.exit_code == 0, result.output

    source, restored = rows(any_db_url), rows(target_url)
    # a consistent cut: an unbroken prefix of the committed moments, each with its audit event
    ids = [r[0] for r in restored["moments"]]
    assert 20 <= len(ids) < len(writer.committed)
    assert ids == writer.committed[: len(ids)]
    audited = [int(r.object_id) for r in restored_events(target_url) if r.action == "test_write"]
    assert audited == ids
    for table, found in restored.items():
        if table in WRITER_TABLES:
            by_id = {r[0]: r for r in source[table]}
            assert [by_id.get(r[0]) for r in found] == found, table
        elif table != "workers":
            assert found == source[table], table
    # every file byte for byte; every restored moment's file is there (the database went first)
    mine = files(dst_app.extensions["ipr_storage"].root)
    theirs = files(storage.root)
    assert {k: theirs[k] for k in mine} == mine
    assert {f"{key}/notes/{i}.txt" for i in ids} <= set(mine)
    assert mine[f"{key}/derived/playable.mp4"] == playable
    assert ".exports/cache.zip" not in mine

    # the restored instance works: the API and a Bearer media range answer from it
    client = dst_app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    got = client.get(f"/api/v1/recordings/{rec_id}", headers=bearer)
    assert (got.status_code, got.json["media_url"]) == (
        200, f"/recordings/{rec_id}/media/playable.mp4",
    )  # fmt: skip
    media = client.get(got.json["media_url"], headers={**bearer, "Range": "bytes=0-1023"})
    assert (media.status_code, media.get_data()) == (206, playable[:1024])

    # a target that holds data is refused unless forced; a damaged backup is refused
    again = dst_app.test_cli_runner().invoke(args=["ipr", "restore", str(tmp_path / "bk")])
    assert again.exit_code != 0 and "The target is not empty" in again.output
    forced = dst_app.test_cli_runner().invoke(
        args=["ipr", "restore", "--force", str(tmp_path / "bk")]
    )
    assert forced.exit_code == 0, forced.output
    assert rows(target_url) == restored
    clip = tmp_path / "bk" / "media" / key / "derived" / "clips" / "001.mp4"
    clip.write_bytes(b"clip 0ne")
    damaged = dst_app.test_cli_runner().invoke(
        args=["ipr", "restore", "--force", str(tmp_path / "bk")]
    )
    assert damaged.exit_code != 0
    assert f"damaged: media/{key}/derived/clips/001.mp4 does not match" in damaged.output
    refused = src_app.test_cli_runner().invoke(args=["ipr", "backup", str(tmp_path / "bk")])
    assert refused.exit_code != 0 and "is not empty" in refused.output
    for app in (src_app, dst_app):
        app.extensions["ipr_db"].dispose()


def restored_events(url: str) -> list[AuditEvent]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)))
    finally:
        engine.dispose()
