"""docs/api.md's pipelines, Python and R, run as written against a live server (gunicorn and
a worker)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ipr.db import Database
from ipr.models import Recording
from ipr.storage import Storage
from tests.conftest import PASSWORD, ROOT, make_video
from tests.e2e.conftest import free_port

STARTUP_SECONDS = 120


def code_block(doc: Path, language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, f"docs/api.md should hold exactly one {language} pipeline"
    return blocks[0]


@dataclass
class Live:
    """A gunicorn server and a worker on a fresh SQLite instance, with one researcher's token."""

    base: str
    token: str
    env: dict[str, str]
    db_url: str
    tmp: Path
    worker_port: int
    log: Path


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    (tmp_path / "recordings").mkdir()
    db_url = f"sqlite:///{tmp_path / 'ipr.sqlite3'}"
    env = {
        **os.environ,
        "IPR_INSTANCE_PATH": str(tmp_path / "instance"),
        "IPR_DATABASE_URL": db_url,
        "IPR_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "IPR_SECRET_KEY": "docs-" + uuid.uuid4().hex,
        "IPR_REDIS_URL": "",
        "IPR_WORKER_HEARTBEAT_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }

    def flask(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "ipr", *args], cwd=ROOT, env=env,
            input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    flask("init-db")
    flask("create-user", "scripter@example.org", stdin=PASSWORD + "\n")
    token = flask("token", "scripter@example.org").strip()
    port, worker_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", "4", "--timeout", str(STARTUP_SECONDS), "--no-control-socket",
         "app:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "ipr", "worker",
         "--metrics-port", str(worker_port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail((tmp_path / "server.log").read_text())
                time.sleep(0.2)
        yield Live(base, token, env, db_url, tmp_path, worker_port, tmp_path / "server.log")
    finally:
        for proc in (worker, server):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def check_pipeline_result(live: Live, result: dict, out: Path) -> None:
    """What either pipeline printed matches the database and the clips it wrote match ours."""
    assert result["duration_ms"] == 4000
    assert result["lags_ms"] == [500]  # therapist at 1000 ms, client at 1500 ms
    assert result["motion_rate_hz"] > 0
    assert result["motion_samples"] == round(4 * result["motion_rate_hz"])
    database = Database(live.db_url)
    try:
        with database.session() as db:
            rec = db.get(Recording, result["recording_id"])
            assert rec.status == "ready"
            expected = [[c.index, c.start_ms, c.end_ms] for c in rec.clips]
            assert result["clips"] == expected and expected
            storage = Storage(live.tmp / "recordings")
            for index, _, _ in expected:
                clip = storage.derived(rec.storage_key, f"clips/{index:03d}.mp4")
                assert (out / f"clip{index:03d}.mp4").read_bytes() == clip.read_bytes()
    finally:
        database.dispose()


def run_pipeline(live: Live, command: list[str]) -> tuple[dict, Path]:
    video = make_video(live.tmp / "session3.mp4", 4.0)
    out = live.tmp / "clips"
    run = subprocess.run(
        command,
        env={**live.env, "IPR_URL": live.base, "IPR_TOKEN": live.token, "IPR_VIDEO": str(video),
             "IPR_OUT": str(out)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + live.log.read_text()
    return json.loads(run.stdout.strip().splitlines()[-1]), out


@pytest.mark.slow
def test_python_pipeline_in_docs_runs_against_a_live_server(live: Live) -> None:
    result, out = run_pipeline(
        live, [sys.executable, "-c", code_block(ROOT / "docs" / "api.md", "python")]
    )
    base, token = live.base, live.token
    # the check, literally: curl with the token and a range on the media_url
    ask = urllib.request.Request(
        f"{base}/api/v1/recordings/{result['recording_id']}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(ask, timeout=30) as resp:
        media_url = json.loads(resp.read())["media_url"]
    curl = subprocess.run(
        ["curl", "-s", "-o", str(live.tmp / "head.bin"), "-w", "%{http_code}",
         "-H", f"Authorization: Bearer {token}", "-r", "0-1023", base + media_url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert curl.stdout == "206"
    assert (live.tmp / "head.bin").stat().st_size == 1024
    # the live server's /metrics sees the worker process's ingest and its heartbeat
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        lines = resp.read().decode().splitlines()
    with urllib.request.urlopen(f"http://127.0.0.1:{live.worker_port}/metrics", timeout=30) as r:
        from_worker = r.read().decode().splitlines()
    assert 'ipr_jobs{kind="ingest",status="done"} 1.0' in lines
    assert any(line.startswith("ipr_queue_depth ") for line in lines)  # figures jobs may wait
    assert "ipr_workers_alive 1.0" in lines
    # the worker process's own counters, on its --metrics-port
    assert 'ipr_jobs_finished_total{kind="ingest",status="done"} 1.0' in from_worker
    assert "ipr_ingest_realtime_factor_count 1.0" in from_worker
    check_pipeline_result(live, result, out)


RSCRIPT = shutil.which("Rscript")


@pytest.mark.slow
def test_r_pipeline_in_docs_runs_against_a_live_server(live: Live) -> None:
    """The httr2 block, as written, in Debian's R (scripts/setup installs r-base-core and
    r-cran-httr2 with the test tools)."""
    if RSCRIPT is None:
        if os.environ.get("IPR_REQUIRE_SERVICES") == "1":
            pytest.fail("Rscript is missing (scripts/setup installs r-base-core, r-cran-httr2)")
        pytest.skip("Rscript is not installed (scripts/setup installs it with the test tools)")
    script = live.tmp / "pipeline.R"
    script.write_text(code_block(ROOT / "docs" / "api.md", "r"), encoding="utf-8")
    result, out = run_pipeline(live, [RSCRIPT, "--vanilla", str(script)])
    check_pipeline_result(live, result, out)
