"""Shared fixtures: every test gets its own database, instance folder and media folder."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from ipr import auth, studies
from ipr.db import upgrade
from ipr.models import Dyad, Moment, RecallSession, Recording
from ipr.storage import Storage
from tests.interview_helpers import tone

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PASSWORD = "correct horse battery"
POSTGRES_URL = os.environ.get("IPR_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("IPR_TEST_REDIS_URL", "")


REQUIRE_SERVICES = os.environ.get("IPR_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """CI must run the PostgreSQL, Redis and Chromium tests: there a skip is a failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"IPR_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def corpus(relative: str = "") -> Path:
    """A file or folder of the shared corpus (``<repo>/../shared/corpus``, the one place every
    test looks), or skip the test saying exactly where it looked."""
    path = CORPUS / relative if relative else CORPUS
    if not path.exists():
        pytest.skip(f"corpus: {path} is not present (the corpus is looked for at {CORPUS})")
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test copies the file (fast, and still the real migrations)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "ipr.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@contextmanager
def scratch_postgres(server_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL server of ``server_url``, named
    ``<prefix><random>``; dropped afterwards, its connections ended first. The tests', the
    backup test's restored instance and the benchmarks' (bench/study_scale.py)."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not POSTGRES_URL:
        skip_or_fail("IPR_TEST_POSTGRES_URL is not set (CI sets it; see .ci/run)")
    with scratch_postgres(POSTGRES_URL, "ipr_test_") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


def make_app(tmp_path: Path, db_url: str, **overrides: Any):
    from app import create_app

    media = tmp_path / "recordings"
    media.mkdir(parents=True, exist_ok=True)
    config = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": db_url,
        "RECORDINGS_DIR": str(media),
        "SECRET_KEY": "test-" + uuid.uuid4().hex,
        "TESTING": True,
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def app(tmp_path: Path, sqlite_url: str):
    app = make_app(tmp_path, sqlite_url)
    yield app
    app.extensions["ipr_db"].dispose()


@pytest.fixture
def db(app):
    session = app.extensions["ipr_db"].session()
    yield session
    session.close()


class Web:
    """A test client that behaves like a browser: keeps cookies, sends the CSRF token."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = app.test_client()
        self.csrf: str | None = None

    def _refresh_csrf(self, html: str) -> None:
        m = re.search(r'name="csrf_token" value="([^"]+)"', html)
        if m:
            self.csrf = m.group(1)

    def get(self, url: str, *, htmx: bool = False, **kw: Any):
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        resp = self.client.get(url, headers=headers, **kw)
        if resp.mimetype == "text/html":
            self._refresh_csrf(resp.get_data(as_text=True))
        return resp

    def post(
        self,
        url: str,
        data: dict | None = None,
        *,
        htmx: bool = False,
        csrf: bool = True,
        **kw: Any,
    ):
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        if csrf:
            if self.csrf is None:
                self.get("/login")
            headers["X-CSRFToken"] = self.csrf
        resp = self.client.post(url, data=data or {}, headers=headers, **kw)
        if resp.mimetype == "text/html":
            self._refresh_csrf(resp.get_data(as_text=True))
        return resp

    def login(self, email: str, password: str = PASSWORD):
        self.get("/login")
        resp = self.post("/login", {"email": email, "password": password})
        self.get("/studies")  # the session was rotated: pick up the new CSRF token
        return resp


@pytest.fixture
def make_user(app, db):
    def _make(email: str, role: str = "researcher"):
        user = auth.create_user(db, email, PASSWORD, role)
        db.commit()
        return user

    return _make


@pytest.fixture
def web(app):
    return Web(app)


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def owner_web(app, owner):
    w = Web(app)
    assert w.login(owner.email).status_code == 302
    return w


@pytest.fixture
def study(owner_web, db):
    from sqlalchemy import select

    from ipr.models import Study

    resp = owner_web.post("/studies", {"name": "Recall study"})
    assert resp.status_code == 302
    return db.scalar(select(Study).where(Study.name == "Recall study"))


def api_token(db, user) -> str:
    _, token = auth.create_api_token(db, user, "test")
    db.commit()
    return token


def make_video(
    path: Path, seconds: float = 4.0, *, audio: bool = True, size: str = "320x180", rate: int = 25
) -> Path:
    """A small real H.264/AAC MP4 from ffmpeg's lavfi sources (test pattern + tone)."""
    import subprocess

    args = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(rate)]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    args += ["-movflags", "+faststart", str(path)]
    subprocess.run(args, check=True, timeout=120)
    return path


# --- recall fixtures: a ready recording of dyad 01 and helpers for participant browsers -----


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("media") / "playable.mp4", 6.0)


@pytest.fixture
def recall_env(app, db, owner, owner_web, study, sample_mp4):
    """A ready recording of dyad 01 (T01/C01), and the owner's API token."""
    dyad = studies.create_dyad(db, study, owner, "01")
    studies.add_code(db, study, owner, {"name": "Insight", "colour": "#123456", "shortcut": "i"})
    key = Storage.new_key()
    rec = Recording(
        study_id=study.id,
        dyad_id=dyad.id,
        session_label="Session 3",
        storage_key=key,
        status="ready",
        duration_ms=6000,
        width=320,
        height=180,
        fps_num=25,
        fps_den=1,
        has_audio=True,
    )
    db.add(rec)
    db.commit()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(key)
    derived.mkdir(parents=True)
    shutil.copy(sample_mp4, derived / "playable.mp4")
    token = api_token(db, owner)
    client = app.test_client()

    def api(method, url, json=None, bearer=token, headers=None):
        h = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        h.update(headers or {})
        return client.open(url, method=method, json=json, headers=h)

    def invite(role: str, mode: str = "self", pin: str | None = None):
        p = dyad.participant(role)
        body = {"participant_id": p.id, "mode": mode}
        if pin:
            body["pin"] = pin
        resp = api("POST", f"/api/v1/recordings/{rec.id}/recall-sessions", body)
        assert resp.status_code == 201, resp.json
        return resp.json

    return {"rec": rec, "dyad": dyad, "api": api, "invite": invite, "study": study}


@pytest.fixture
def api_objects(app, db, owner, study, sample_mp4):
    """One object of each kind the API serves, written straight to the database: a dyad, a
    code, a ready recording with its playable copy, a researcher-led recall session of the
    therapist and a moment in it."""
    dyad = studies.create_dyad(db, study, owner, "01")
    studies.add_code(db, study, owner, {"name": "Insight", "colour": "#123456"})
    key = Storage.new_key()
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Session 1", storage_key=key,
        status="ready", duration_ms=6000, width=320, height=180, fps_num=25, fps_den=1,
        has_audio=True,
    )  # fmt: skip
    db.add(rec)
    db.flush()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(key)
    derived.mkdir(parents=True)
    shutil.copy(sample_mp4, derived / "playable.mp4")
    therapist = dyad.participant("therapist")
    rs = RecallSession(
        study_id=study.id, recording_id=rec.id, participant_id=therapist.id, mode="researcher"
    )
    db.add(rs)
    db.flush()
    moment = Moment(study_id=study.id, recall_session_id=rs.id, t_ms=1000, text="a moment")
    db.add(moment)
    db.commit()
    return {"study": study, "dyad": dyad, "rec": rec, "rs": rs, "moment": moment}


def participant(app, link: str) -> Web:
    """A browser that opened its personal link."""
    web = Web(app)
    path = re.sub(r"^https?://[^/]+", "", link)
    resp = web.get(path)
    assert resp.status_code == 303
    web.landing = resp.headers["Location"]
    return web


def jpost(web: Web, url: str, body: dict, **headers):
    if web.csrf is None:
        web.get("/login")
    return web.client.post(url, json=body, headers={"X-CSRFToken": web.csrf or "", **headers})


def jsend(web: Web, method: str, url: str, body: dict | None = None):
    if web.csrf is None:
        web.get("/login")
    return web.client.open(url, method=method, json=body, headers={"X-CSRFToken": web.csrf or ""})


def ready_recording(db, dyad: Dyad, **fields: Any) -> Recording:
    """A ready recording of ``dyad``, session S1: one minute, 320×180 at 25 fps with audio
    (no media on disk); ``fields`` add to or replace these."""
    rec = Recording(**{
        "study_id": dyad.study_id, "dyad_id": dyad.id, "session_label": "S1",
        "storage_key": Storage.new_key(), "status": "ready", "duration_ms": 60_000, "width": 320,
        "height": 180, "fps_num": 25, "fps_den": 1, "has_audio": True, **fields,
    })  # fmt: skip
    db.add(rec)
    db.commit()
    return rec


# --- the recall interview: a researcher-led session with three stops, and its audio ----------


@pytest.fixture(scope="session")
def interview_wav(tmp_path_factory) -> bytes:
    """Ten seconds of a 440 Hz tone, 8 kHz mono WAV (160 kB)."""
    out = tmp_path_factory.mktemp("interview") / "interview.wav"
    return tone(out, 10, "-ac", "1", "-ar", "8000")


@pytest.fixture
def interview_env(app, db, owner, owner_web, study):
    """A ready recording of dyad 01 and a researcher-led recall session of C01 with moments at
    5000, 9000 and 12 000 ms (`interview_helpers.events` makes them its stops), driven through
    the owner's API token; ``session(role, mode)`` opens another session."""
    dyad = studies.create_dyad(db, study, owner, "01")
    rec = ready_recording(db, dyad, original_name="s1.mp4")
    token = api_token(db, owner)
    client = app.test_client()

    def api(method, url, bearer=token, headers=None, **kw):
        h = {"Authorization": f"Bearer {bearer}", **(headers or {})}
        return client.open(url, method=method, headers=h, **kw)

    def session(role: str, mode: str) -> dict:
        body = {"participant_id": dyad.participant(role).id, "mode": mode}
        resp = api("POST", f"/api/v1/recordings/{rec.id}/recall-sessions", json=body)
        assert resp.status_code == 201, resp.json
        return resp.json

    rs = session("client", "researcher")
    ids = []
    for t in (5000, 9000, 12000):
        resp = api("POST", f"/api/v1/recall-sessions/{rs['id']}/moments", json={"t_ms": t})
        assert resp.status_code == 201, resp.json
        ids.append(resp.json["id"])
    return {"api": api, "rs": rs, "moments": ids, "rec": rec, "dyad": dyad, "session": session,
            "storage": app.extensions["ipr_storage"], "study": study, "web": owner_web}  # fmt: skip


MEDIA_DATA = (bytes(range(256)) * 4)[:1000]  # 1000 bytes whose every offset is recognisable


@pytest.fixture
def rec(owner_web, study, db, app) -> Recording:
    """A ready recording with every derived file present on disk."""
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "05"})
    dyad = db.scalar(select(Dyad).where(Dyad.study_id == study.id))
    storage = app.extensions["ipr_storage"]
    key = storage.new_key()
    r = Recording(
        study_id=study.id,
        dyad_id=dyad.id,
        session_label="Session 3/ä",
        storage_key=key,
        original_name="s3.mp4",
        status="ready",
    )
    db.add(r)
    db.commit()
    out = storage.derived_dir(key)
    (out / "clips").mkdir(parents=True)
    for name in ("playable.mp4", "sprite.jpg", "waveform.json", "analysis.json"):
        (out / name).write_bytes(MEDIA_DATA)
    (out / "clips" / "001.mp4").write_bytes(MEDIA_DATA)
    (out / "clips" / "001.jpg").write_bytes(MEDIA_DATA[:10])
    return r
