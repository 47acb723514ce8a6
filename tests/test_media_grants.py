"""Media grants: a repeat media request is answered without the database, never to the wrong
person, never for longer than MEDIA_GRANT_SECONDS, and exactly as the full check answers it."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import delete, event

from ipr.models import Membership
from ipr.web.media_grants import MAX_GRANTS, Grant, MediaGrants
from tests.conftest import MEDIA_DATA as DATA
from tests.conftest import Web
from tests.test_media_serving import URLS, get, url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    """The app's grants, on a clock the test moves by hand."""
    c = Clock()
    grants = app.extensions["ipr_media_grants"]
    grants._clock = c
    return c


@contextmanager
def counting_statements(app):
    """Every SQL statement the app's engine runs inside the block."""
    engine = app.extensions["ipr_db"].engine
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_repeat_request_is_served_without_the_database(app, owner_web, rec, clock) -> None:
    with counting_statements(app) as first:
        a = get(owner_web, url(rec), Range="bytes=10-19")
    assert a.status_code == 206 and a.get_data() == DATA[10:20]
    assert first, "the first request takes the full check"
    with counting_statements(app) as repeat:
        b = get(owner_web, url(rec), Range="bytes=500-999")
        c = get(owner_web, url(rec), Range="bytes=990-1200")
    assert repeat == []
    assert b.status_code == 206 and b.get_data() == DATA[500:1000]
    assert b.headers["Content-Range"] == "bytes 500-999/1000"
    assert c.status_code == 206 and c.get_data() == DATA[990:]
    assert get(owner_web, url(rec), Range="bytes=5000-").status_code == 416


def test_granted_answer_has_the_same_headers(app, owner_web, rec, clock) -> None:
    checked = get(owner_web, url(rec), Range="bytes=0-9")
    granted = get(owner_web, url(rec), Range="bytes=0-9")
    assert len(app.extensions["ipr_media_grants"]) == 1
    skip = {"Date"}
    assert {k: v for k, v in checked.headers if k not in skip} == {
        k: v for k, v in granted.headers if k not in skip
    }
    for name, value in [
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Accept-Ranges", "bytes"),
    ]:
        assert granted.headers[name] == value
    assert "default-src 'self'" in granted.headers["Content-Security-Policy"]
    assert granted.get_data() == checked.get_data() == DATA[:10]


def test_other_credentials_never_use_a_grant(app, owner_web, rec, make_user, clock) -> None:
    assert get(owner_web, url(rec)).status_code == 200
    stranger = make_user("stranger@example.org")
    stranger_web = Web(app)
    stranger_web.login(stranger.email)
    assert get(stranger_web, url(rec)).status_code == 404
    anonymous = app.test_client()
    assert anonymous.get(url(rec)).status_code == 302  # to the login page


def test_revoked_membership_reaches_media_within_the_grant_time(
    app, owner_web, rec, make_user, db, clock
) -> None:
    member = make_user("member@example.org")
    db.add(Membership(study_id=rec.study_id, user_id=member.id, role="viewer"))
    db.commit()
    web = Web(app)
    web.login(member.email)
    for rest in URLS:
        assert get(web, url(rec, rest)).status_code == 200, rest
    db.execute(delete(Membership).where(Membership.user_id == member.id))
    db.commit()
    clock.now += 4.9  # a grant made by the full check still holds...
    assert get(web, url(rec)).status_code == 200
    clock.now += 0.2  # ...and expires after MEDIA_GRANT_SECONDS (5 s by default)
    for rest in URLS:
        assert get(web, url(rec, rest)).status_code == 404, rest


def test_logout_forgets_the_grants_at_once(app, owner_web, rec, clock) -> None:
    assert get(owner_web, url(rec)).status_code == 200
    assert get(owner_web, url(rec, "clips/1.mp4")).status_code == 200
    cookie_before = owner_web.client.get_cookie("ipr_session").value
    owner_web.post("/logout")
    assert len(app.extensions["ipr_media_grants"]) == 0
    # Even a client that kept the old cookie is sent to the login page now.
    replay = app.test_client()
    replay.set_cookie("ipr_session", cookie_before)
    assert replay.get(url(rec)).status_code == 302


def test_a_grant_never_outlives_its_file(app, owner_web, rec, clock) -> None:
    assert get(owner_web, url(rec)).status_code == 200
    storage = app.extensions["ipr_storage"]
    storage.derived(rec.storage_key, "playable.mp4").unlink()
    assert get(owner_web, url(rec)).status_code == 404


def test_x_accel_hand_off_from_a_grant(app, owner_web, rec, clock) -> None:
    app.config["X_ACCEL_REDIRECT"] = "/protected-media/"
    first = get(owner_web, url(rec, "clips/1/download"))
    with counting_statements(app) as repeat:
        again = get(owner_web, url(rec, "clips/1/download"), Range="bytes=0-9")
        third = owner_web.client.head(url(rec, "clips/1/download"))
    assert repeat == []
    assert {k: v for k, v in first.headers if k != "Date"} == {
        k: v for k, v in third.headers if k != "Date"
    }
    assert first.headers["Content-Length"] == "0" and first.headers["Vary"] == "Cookie"
    for resp in (first, again, third):
        assert resp.headers["X-Accel-Redirect"] == (
            f"/protected-media/{rec.storage_key}/derived/clips/001.mp4"
        )
        assert resp.headers["Content-Disposition"].endswith('filename="05_Session-3_clip001.mp4"')
        assert resp.get_data() == b""


def test_grants_off_checks_every_request(tmp_path, sqlite_url) -> None:
    from tests.conftest import make_app

    app = make_app(tmp_path, sqlite_url, MEDIA_GRANT_SECONDS=0)
    try:
        grants = app.extensions["ipr_media_grants"]
        environ = {"HTTP_COOKIE": "ipr_session=x", "PATH_INFO": "/r", "QUERY_STRING": ""}
        grants.remember(environ, Grant(tmp_path, "video/mp4"))
        assert grants.lookup(environ) is None and len(grants) == 0
    finally:
        app.extensions["ipr_db"].dispose()


def test_grant_store_keys_and_limits(tmp_path) -> None:
    clock = Clock()
    grants = MediaGrants(5, clock=clock)
    grant = Grant(tmp_path / "a.mp4", "video/mp4")
    env = {"HTTP_COOKIE": "ipr_session=abc", "PATH_INFO": "/recordings/1/media/playable.mp4"}
    grants.remember(env, grant)
    assert grants.lookup(env) is grant
    assert grants.lookup({**env, "HTTP_COOKIE": "ipr_session=abd"}) is None
    assert grants.lookup({**env, "PATH_INFO": "/recordings/2/media/playable.mp4"}) is None
    assert grants.lookup({**env, "QUERY_STRING": "x=1"}) is None
    assert grants.lookup({**env, "HTTP_AUTHORIZATION": "Bearer t"}) is None
    # A request without any credentials is never granted.
    bare = {"PATH_INFO": env["PATH_INFO"]}
    grants.remember(bare, grant)
    assert grants.lookup(bare) is None
    for i in range(MAX_GRANTS + 10):
        grants.remember({**env, "PATH_INFO": f"/r/{i}"}, grant)
    assert len(grants) == MAX_GRANTS
    assert grants.lookup(env) is None  # the oldest went first
    clock.now += 5
    assert grants.lookup({**env, "PATH_INFO": f"/r/{MAX_GRANTS + 9}"}) is None
