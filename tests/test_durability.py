"""A moment acknowledged with 2xx survives the server being killed right after."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from ipr import auth, recall, studies
from ipr.db import Database
from ipr.models import Moment, Recording
from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
             "app:create_app()"],
            cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise AssertionError(log.read_text())


def call(
    port: int,
    method: str,
    path: str,
    token: str,
    body: dict | None = None,
    headers: dict | None = None,
) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 **(headers or {})},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


def test_acknowledged_moments_survive_a_killed_server(any_db_url: str, tmp_path: Path) -> None:
    database = Database(any_db_url)
    with database.session() as db:
        user = auth.create_user(db, "r@example.org", "a long password")
        study = studies.create_study(db, user, "Durable")
        dyad = studies.create_dyad(db, study, user, "01")
        rec = Recording(
            study_id=study.id,
            dyad_id=dyad.id,
            session_label="S1",
            storage_key="6f1c3c3e-9f5a-4a8e-9d0a-1a2b3c4d5e6f",
            status="ready",
            duration_ms=3_000_000,
        )
        db.add(rec)
        db.flush()
        rs, token = recall.create_session(
            db, rec, dyad.participant("client"), "self", user, days=14
        )
        db.commit()
        rs_id = rs.id
    database.dispose()
    env = {
        "PATH": os.environ["PATH"],
        "IPR_DATABASE_URL": any_db_url,
        "IPR_INSTANCE_PATH": str(tmp_path / "instance"),
        "IPR_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "IPR_SECRET_KEY": "s" * 32,
    }
    port = free_port()
    server = start_server(env, port, tmp_path / "server.log")
    acknowledged = []
    try:
        for i in range(25):
            status, moment = call(
                port,
                "POST",
                f"/api/v1/recall-sessions/{rs_id}/moments",
                token,
                {"t_ms": 1000 * i, "text": f"moment {i}", "ratings": {"hat": 5}},
                {"Idempotency-Key": f"durable-{i:04d}"},
            )
            assert status == 201
            acknowledged.append((moment["id"], f"moment {i}"))
        status, _ = call(
            port,
            "PATCH",
            f"/api/v1/recall-sessions/{rs_id}/moments/{acknowledged[0][0]}",
            token,
            {"text": "changed", "version": 1},
        )
        assert status == 200
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # no shutdown, no flush: pulled plug
        server.wait(timeout=30)
    acknowledged[0] = (acknowledged[0][0], "changed")
    database = Database(any_db_url)
    with database.session() as db:
        rows = db.execute(
            select(Moment.id, Moment.text)
            .where(Moment.recall_session_id == rs_id)
            .order_by(Moment.id)
        ).all()
    database.dispose()
    assert [tuple(r) for r in rows] == acknowledged
    # and the restarted server serves them, and a retried save is still not a duplicate
    port = free_port()
    server = start_server(env, port, tmp_path / "server.log")
    try:
        status, listed = call(port, "GET", f"/api/v1/recall-sessions/{rs_id}/moments", token)
        assert [(m["id"], m["text"]) for m in listed["moments"]] == acknowledged
        status, again = call(
            port,
            "POST",
            f"/api/v1/recall-sessions/{rs_id}/moments",
            token,
            {"t_ms": 24000, "text": "moment 24"},
            {"Idempotency-Key": "durable-0024"},
        )
        assert status == 200 and again["id"] == acknowledged[-1][0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if not hasattr(os, "killpg"):  # pragma: no cover
    pytest.skip("needs POSIX process groups", allow_module_level=True)
