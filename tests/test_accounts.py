"""Accounts fit for health data: an atomic login throttle that cannot lock the owner out, TOTP
two-factor with recovery codes, a study that requires it, password change and reset, headers."""

from __future__ import annotations

import base64
import html
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pyotp
import pytest
from sqlalchemy import func, select

from ipr import auth
from ipr.db import upgrade
from ipr.errors import TooManyAttempts
from ipr.models import AuditEvent, AuthSession, RecoveryCode, Study, User
from tests.conftest import PASSWORD, ROOT, Web, api_token, make_app
from tests.qr import decode_png


def _count(db, action: str) -> int:
    db.expire_all()
    return db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == action))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_forty_parallel_wrong_logins_get_at_most_five_checks(tmp_path, request, backend) -> None:
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        upgrade(url)
    else:
        url = request.getfixturevalue("sqlite_url")
    app = make_app(tmp_path, url)
    database = app.extensions["ipr_db"]
    with database.session() as s:
        auth.create_user(s, "owner@example.org", PASSWORD)
        s.commit()
    outcomes: list[str] = []
    start = threading.Barrier(40)

    def guess() -> None:
        with database.session() as s:
            start.wait()
            try:
                user = auth.authenticate(
                    s, "owner@example.org", "wrong password!", ip="203.0.113.9",
                    max_failures=5, lockout_seconds=60,
                )  # fmt: skip
                outcomes.append("checked" if user is None else "in")
            except TooManyAttempts:
                outcomes.append("refused")

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with database.session() as s:
        failed = s.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "login_failed")
        )
        # the owner, from their own address, is not locked out by the guesser's failures
        owner = auth.authenticate(
            s, "owner@example.org", PASSWORD, ip="198.51.100.7", max_failures=5, lockout_seconds=60
        )
        assert owner is not None and owner.email == "owner@example.org"
    assert len(outcomes) == 40 and "in" not in outcomes
    assert 1 <= outcomes.count("checked") <= 5
    assert failed == outcomes.count("checked")
    database.dispose()


def test_guesses_from_another_address_do_not_lock_the_owner_out(app, db, make_user) -> None:
    make_user("r@example.org")
    attacker, owner = Web(app), Web(app)
    attacker.get("/login")
    env_a = {"REMOTE_ADDR": "203.0.113.9"}
    statuses = [
        attacker.post(
            "/login", {"email": "r@example.org", "password": "nope nope!"}, environ_base=env_a
        ).status_code
        for _ in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3
    owner.get("/login")
    resp = owner.post(
        "/login",
        {"email": "r@example.org", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/studies"


def _enrol(web: Web) -> tuple[str, list[str]]:
    """Turn two-factor on as someone who types the key by hand (the page's text fallback);
    reading the QR code is the test after this one, with a fixed key."""
    page = web.post("/account/2fa/begin").get_data(as_text=True)
    secret = re.search(r'Key: <code id="totp-secret">([A-Z2-7]{32})</code>', page).group(1)
    uri = re.search(r'id="totp-uri" href="([^"]+)"', page).group(1)
    assert uri.startswith("otpauth://totp/IPR%20annotator:") and f"secret={secret}&" in uri
    assert 'id="totp-qr" src="data:image/png;base64,' in page
    resp = web.post("/account/2fa/confirm", {"code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f-]{19})</code></li>", resp.get_data(as_text=True))
    return secret, codes


# A fixed key whose code both of OpenCV's QR detectors read, in OpenCV 4.14 and 5.0 alike; a
# random key's code is missed by the classic detector about once in 40 (tests/qr.py).
FIXED_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_2fa_key_is_offered_as_a_qr_code_a_link_and_text(app, db, make_user) -> None:
    user = make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    assert web.post("/account/2fa/begin").status_code == 200
    user.totp_secret = FIXED_SECRET
    db.commit()
    page = web.get("/account").get_data(as_text=True)
    uri = (
        "otpauth://totp/IPR%20annotator:r%40example.org"
        f"?secret={FIXED_SECRET}&issuer=IPR%20annotator"
    )
    assert html.unescape(re.search(r'id="totp-uri" href="([^"]+)"', page).group(1)) == uri
    # for whoever cannot scan: the key as text, to type into the app
    assert f'Key: <code id="totp-secret">{FIXED_SECRET}</code>' in page
    img = re.search(r'<img id="totp-qr" src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    assert img.group(2) == "QR code of the key for your authenticator app"
    assert decode_png(base64.b64decode(img.group(1))) == uri


def test_totp_enrolment_login_and_single_use_recovery_codes(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    assert web.post("/account/2fa/confirm", {"code": "123456"}).status_code == 422
    secret, codes = _enrol(web)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = db.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not any(c.replace("-", "") in stored for c in codes)
    user = db.scalar(select(User).where(User.email == "r@example.org"))
    db.refresh(user)
    assert user.has_2fa
    # the password alone no longer logs in: the second step asks for a code
    fresh = Web(app)
    fresh.get("/login")
    resp = fresh.post("/login", {"email": "r@example.org", "password": PASSWORD})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login/code"
    assert fresh.get("/studies").status_code == 302  # not logged in yet
    fresh.get("/login/code")
    assert fresh.post("/login/code", {"code": "000000"}).status_code == 401
    # the code the enrolment used cannot be replayed (its 30-second step is remembered; the
    # code is taken at that step, not now(): a step may have ended since)
    used_code = pyotp.TOTP(secret).at(user.totp_last_step * 30)
    replayed = fresh.post("/login/code", {"code": used_code}).status_code
    assert replayed == 401
    # a recovery code works, once
    resp = fresh.post("/login/code", {"code": codes[0].upper()})
    assert resp.status_code == 302 and resp.headers["Location"] == "/studies"
    assert fresh.get("/studies").status_code == 200
    again = Web(app)
    again.get("/login")
    again.post("/login", {"email": "r@example.org", "password": PASSWORD})
    again.get("/login/code")
    assert again.post("/login/code", {"code": codes[0]}).status_code == 401
    assert _count(db, "2fa_recovery_code_used") == 1 and _count(db, "2fa_failed") == 3


def test_totp_code_logs_in(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    secret, _ = _enrol(web)
    # A code is accepted once: pretend the enrolment's code belonged to an earlier step.
    user = db.scalar(select(User).where(User.email == "r@example.org"))
    user.totp_last_step -= 2
    db.commit()
    fresh = Web(app)
    fresh.get("/login")
    fresh.post("/login", {"email": "r@example.org", "password": PASSWORD})
    fresh.get("/login/code")
    resp = fresh.post("/login/code", {"code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 302 and fresh.get("/studies").status_code == 200


def test_study_requiring_2fa_is_hidden_from_members_without_it(
    app, db, owner, owner_web, study, make_user
) -> None:
    # the owner cannot require what they do not use themselves
    resp = owner_web.post(f"/studies/{study.id}/settings", {"require_2fa": "on"}, htmx=True)
    assert resp.status_code == 422 and b"two-factor" in resp.data
    _enrol(owner_web)
    member = make_user("member@example.org")
    owner_web.post(
        f"/studies/{study.id}/members", {"email": "member@example.org", "role": "editor"}
    )
    token = api_token(db, member)
    mweb = Web(app)
    mweb.login("member@example.org")
    assert mweb.get(f"/studies/{study.id}").status_code == 200
    resp = owner_web.post(
        f"/studies/{study.id}/settings",
        {"name": study.name, "require_2fa": "on"},
        htmx=True,
    )
    assert resp.status_code == 200
    db.expire_all()
    assert db.get(Study, study.id).require_2fa is True
    assert mweb.get(f"/studies/{study.id}").status_code == 404
    api = app.test_client()
    resp = api.get("/api/v1/studies", headers={"Authorization": f"Bearer {token}"})
    assert resp.json["studies"] == []
    page = mweb.get("/account").get_data(as_text=True)
    assert "Recall study" in page and "require two-factor" in page
    _enrol(mweb)
    assert mweb.get(f"/studies/{study.id}").status_code == 200
    resp = api.get("/api/v1/studies", headers={"Authorization": f"Bearer {token}"})
    assert [s["id"] for s in resp.json["studies"]] == [study.id]
    # while a study requires it, it cannot be turned off
    resp = mweb.post("/account/2fa/disable", {"current_password": PASSWORD})
    assert resp.status_code == 422
    assert owner_web.get(f"/studies/{study.id}").status_code == 200


def test_password_change_ends_other_sessions(app, db, make_user) -> None:
    make_user("r@example.org")
    web, other = Web(app), Web(app)
    web.login("r@example.org")
    other.login("r@example.org")
    new = "a brand new passphrase"
    resp = web.post(
        "/account/password",
        {"current_password": "wrong wrong", "new_password": new, "confirm_password": new},
    )
    assert resp.status_code == 401
    resp = web.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
    )
    assert resp.status_code == 200 and b"Your password was changed" in resp.data
    assert web.get("/studies").status_code == 200
    assert other.get("/studies").status_code == 302
    assert Web(app).login("r@example.org", new).status_code == 302
    assert _count(db, "password_changed") == 1


def test_cli_set_password_resets_and_ends_sessions(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    cli = app.test_cli_runner()
    out = cli.invoke(args=["ipr", "set-password", "R@example.org"], input="reset by the admin\n")
    assert out.exit_code == 0, out.output
    assert "Password of r@example.org set" in out.output
    assert web.get("/studies").status_code == 302
    assert db.scalar(select(func.count(AuthSession.id))) == 0
    assert Web(app).login("r@example.org", "reset by the admin").status_code == 302
    missing = cli.invoke(args=["ipr", "set-password", "nobody@example.org"], input="x" * 12)
    assert missing.exit_code != 0 and "No user" in missing.output
    short = cli.invoke(args=["ipr", "set-password", "r@example.org"], input="short\n")
    assert short.exit_code != 0 and "at least 10 characters" in short.output


def test_hsts_and_host_prefixed_cookie_over_https(tmp_path, sqlite_url, db) -> None:
    app = make_app(tmp_path, sqlite_url, SECURE_COOKIES=True)
    auth.create_user(db, "r@example.org", PASSWORD)
    db.commit()
    client = app.test_client()
    resp = client.get("/login", base_url="https://localhost")
    assert resp.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-ipr_session=") and "Secure" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie
    plain = make_app(tmp_path / "plain", sqlite_url).test_client().get("/login")
    assert "Strict-Transport-Security" not in plain.headers
    assert plain.headers["Set-Cookie"].startswith("ipr_session=")
    app.extensions["ipr_db"].dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("server", ["gunicorn", "werkzeug"])
def test_no_server_banner(tmp_path, sqlite_url, server) -> None:
    port = _free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "IPR_DATABASE_URL": sqlite_url,
        "IPR_INSTANCE_PATH": str(tmp_path / "instance"),
        "IPR_RECORDINGS_DIR": str(tmp_path / "rec"),
        "IPR_SECRET_KEY": "test",
    }
    bindir = ROOT / ".venv" / "bin"
    if server == "gunicorn":
        args = [str(bindir / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "app:create_app()"]
    else:
        args = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                resp = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"{server} did not start")
        assert resp.status == 200 and "Server" not in resp.headers
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_behind_nginx_the_forwarded_address_keys_the_login_count(tmp_path, sqlite_url, db) -> None:
    app = make_app(tmp_path, sqlite_url, PROXY_HOPS=1)
    auth.create_user(db, "r@example.org", PASSWORD)
    db.commit()
    nginx = {"REMOTE_ADDR": "127.0.0.1"}
    attacker, owner = Web(app), Web(app)
    attacker.get("/login")
    wrong = {"email": "r@example.org", "password": "nope nope!"}
    statuses = [
        attacker.post(
            "/login", wrong, environ_base=nginx, headers={"X-Forwarded-For": "203.0.113.9"}
        ).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    owner.get("/login")
    resp = owner.post(
        "/login",
        {"email": "r@example.org", "password": PASSWORD},
        environ_base=nginx,
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert resp.status_code == 302
    ips = db.scalars(select(AuditEvent.ip).where(AuditEvent.action == "login_failed")).all()
    assert set(ips) == {"203.0.113.9"}
    app.extensions["ipr_db"].dispose()


def test_cli_reset_2fa_for_a_lost_phone(app, db, make_user) -> None:
    make_user("r@example.org")
    web = Web(app)
    web.login("r@example.org")
    _enrol(web)
    out = app.test_cli_runner().invoke(args=["ipr", "reset-2fa", "r@example.org"])
    assert out.exit_code == 0 and "Two-factor of r@example.org is off" in out.output
    db.expire_all()
    user = db.scalar(select(User).where(User.email == "r@example.org"))
    assert not user.has_2fa and db.scalars(select(RecoveryCode)).all() == []
    fresh = Web(app)
    assert fresh.login("r@example.org").headers["Location"] == "/studies"  # no second step
    actors = db.scalars(select(AuditEvent.actor).where(AuditEvent.action == "2fa_disabled"))
    assert actors.all() == ["cli"]


def test_stale_throttle_keys_are_dropped(app, db, monkeypatch) -> None:
    import datetime as dt

    from ipr import throttle
    from ipr.models import Throttle

    policy = throttle.Policy(free=5, delay_seconds=60)
    throttle.reserve(db, "login:203.0.113.9:gone@example.org", policy)
    throttle.reserve(db, "pin:rs:1", throttle.Policy(free=1, delay_seconds=0, lock_after=1))
    for row in db.scalars(select(Throttle)):
        row.updated_at -= dt.timedelta(days=2)
    db.commit()
    monkeypatch.setattr(throttle, "PRUNE_CHANCE", 1.0)
    throttle.reserve(db, "login:198.51.100.7:r@example.org", policy)
    db.expire_all()
    keys = sorted(db.scalars(select(Throttle.key)))
    assert keys == ["login:198.51.100.7:r@example.org", "pin:rs:1"]  # a lock stays until lifted
