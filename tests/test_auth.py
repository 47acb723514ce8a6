"""Researcher accounts: login, sessions, cookies, throttling, CSRF, the CLI."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import pytest
from sqlalchemy import select

from ipr.models import AuditEvent, AuthSession, Throttle, User
from tests.conftest import PASSWORD, ROOT, Web


def test_login_and_logout(app, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    assert web.get("/studies").status_code == 302  # not logged in: to the login page
    resp = web.login("r@example.org")
    assert resp.status_code == 302 and resp.headers["Location"] == "/studies"
    assert web.get("/studies").status_code == 200
    assert web.post("/logout").status_code == 302
    resp = web.get("/studies")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_wrong_password_is_refused_and_audited(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.get("/login")
    resp = web.post("/login", {"email": "r@example.org", "password": "wrong password!"})
    assert resp.status_code == 401
    assert b"do not match" in resp.data
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
    assert [(e.object_id, e.ip) for e in events] == [("r@example.org", "127.0.0.1")]


def test_unknown_email_gives_the_same_answer(app, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.get("/login")
    a = web.post("/login", {"email": "r@example.org", "password": "wrong password!"})
    b = web.post("/login", {"email": "nobody@example.org", "password": "wrong password!"})
    assert a.status_code == b.status_code == 401

    def scrub(data: bytes, email: bytes) -> bytes:  # CSRF tokens carry a timestamp
        return re.sub(rb"[A-Za-z0-9._-]{40,}", b"", data.replace(email, b""))

    assert scrub(a.data, b"r@example.org") == scrub(b.data, b"nobody@example.org")


def test_password_is_hashed_with_argon2id(db, make_user) -> None:
    user = make_user("r@example.org")
    assert user.password_hash.startswith("$argon2id$")
    assert "m=65536" in user.password_hash  # 64 MiB: memory-hard
    assert PASSWORD not in user.password_hash


def test_repeated_failures_are_slowed_down(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.get("/login")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert (
            web.post("/login", {"email": "r@example.org", "password": "nope nope!"}).status_code
            == 401
        )
    # Now even the right password waits: the guessing is slowed down.
    resp = web.post("/login", {"email": "r@example.org", "password": PASSWORD})
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert b"Too many failed logins" in resp.data
    # Once the wait is over, the right password works again.
    for row in db.scalars(select(Throttle)):
        row.next_at -= dt.timedelta(seconds=app.config["LOGIN_LOCKOUT_SECONDS"] + 1)
    db.commit()
    assert web.post("/login", {"email": "r@example.org", "password": PASSWORD}).status_code == 302


def test_session_is_rotated_at_login_and_killed_at_logout(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.get("/login")
    before = web.client.get_cookie("ipr_session")
    web.login("r@example.org")
    first = web.client.get_cookie("ipr_session").value
    assert before is None or before.value != first
    web.login("r@example.org")  # logging in again gives a new session
    second = web.client.get_cookie("ipr_session").value
    assert second != first
    # a copy of the cookie made before logout is worthless afterwards
    stolen = Web(app)
    stolen.client.set_cookie("ipr_session", second)
    assert stolen.get("/studies").status_code == 200
    web.post("/logout")
    assert stolen.get("/studies").status_code == 302
    assert db.scalars(select(AuthSession)).all() == []


def test_cookie_flags(app, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.get("/login")
    resp = web.post("/login", {"email": "r@example.org", "password": PASSWORD})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_secure_cookie_behind_https(tmp_path, sqlite_url, db) -> None:
    from tests.conftest import make_app

    app = make_app(tmp_path, sqlite_url, SECURE_COOKIES=True)
    resp = app.test_client().get("/login", base_url="https://localhost")
    assert "Secure" in resp.headers["Set-Cookie"]


def test_idle_timeout_logs_out(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    row = db.scalar(select(AuthSession))
    row.last_seen_at -= dt.timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1)
    db.commit()
    assert web.get("/studies").status_code == 302
    assert db.scalars(select(AuthSession)).all() == []


def test_csrf_refuses_form_and_htmx_posts_without_token(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    resp = web.post("/studies", {"name": "Sneaky"}, csrf=False)
    assert resp.status_code == 400 and b"did not come from this site" in resp.data
    resp = web.post("/studies", {"name": "Sneaky"}, csrf=False, htmx=True)
    assert resp.status_code == 400
    resp = web.client.post(
        "/studies", data={"name": "Sneaky"}, headers={"HX-Request": "true", "X-CSRFToken": "forged"}
    )
    assert resp.status_code == 400
    assert db.scalars(select(User.email)).all() == ["r@example.org"]
    from ipr.models import Study

    assert db.scalars(select(Study)).all() == []
    # the login form itself is protected too
    anon = Web(app)
    resp = anon.client.post("/login", data={"email": "r@example.org", "password": PASSWORD})
    assert resp.status_code == 400


def test_open_redirect_after_login_is_refused(app, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.get("/login")
    resp = web.post(
        "/login", {"email": "r@example.org", "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert resp.headers["Location"] == "/studies"


def _flask(app, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {
        "IPR_DATABASE_URL": app.config["DATABASE_URL"],
        "IPR_SECRET_KEY": "x" * 32,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "ipr", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_create_user_reads_password_from_stdin(app, db) -> None:
    out = _flask(
        app, "create-user", "New@Example.org", "--role", "admin", stdin="a long enough password\n"
    )
    assert out.returncode == 0, out.stderr
    assert "Created admin new@example.org" in out.stdout
    user = db.scalar(select(User).where(User.email == "new@example.org"))
    assert user.role == "admin"
    web = Web(app)
    assert web.login("new@example.org", "a long enough password").status_code == 302
    again = _flask(app, "create-user", "new@example.org", stdin="a long enough password\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    short = _flask(app, "create-user", "x@example.org", stdin="short\n")
    assert short.returncode != 0 and "at least 10 characters" in short.stderr


def test_cli_token_is_usable_and_stored_hashed(app, db, make_user) -> None:
    make_user("r@example.org")
    out = _flask(app, "token", "r@example.org")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("ipr_") and len(token) > 40
    from ipr.models import ApiToken

    row = db.scalar(select(ApiToken))
    assert row.token_hash != token and token not in row.token_hash
    resp = app.test_client().get("/api/v1/studies", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


@pytest.mark.parametrize("path", ["/login", "/studies"])
def test_security_headers(app, path) -> None:
    resp = app.test_client().get(path)
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
