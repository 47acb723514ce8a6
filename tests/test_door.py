"""The participant's one door: PIN bound on the server, counted attempts, ended devices, limits."""

from __future__ import annotations

import io
import re

from sqlalchemy import func, select

from ipr import door
from ipr.models import AuditEvent, Moment, ParticipantDevice, Throttle, VoiceNote
from ipr.ratelimit import RateLimited, RateLimiter
from tests.conftest import REDIS_URL, Web, jpost, participant, skip_or_fail


def _path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def _events(db, action: str) -> int:
    db.expire_all()
    return db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == action))


def test_api_refuses_a_pin_link_until_the_pin_is_proved(app, db, recall_env) -> None:
    created = recall_env["invite"]("client", pin="4711")
    api, rs_id, link = recall_env["api"], created["id"], created["token"]
    url = f"/api/v1/recall-sessions/{rs_id}/moments"
    for method, body in (("GET", None), ("POST", {"t_ms": 100})):
        resp = api(method, url, body, bearer=link)
        assert resp.status_code == 401 and resp.json["error"]["code"] == "pin_required"
    assert db.scalar(select(func.count(Moment.id))) == 0
    assert api("POST", "/api/v1/recall/devices", {"pin": "0000"}, bearer=link).status_code == 401
    resp = api("POST", "/api/v1/recall/devices", {"pin": "4711"}, bearer=link)
    assert resp.status_code == 201 and resp.json["recall_session_id"] == rs_id
    device = resp.json["device_token"]
    assert device.startswith("ipd_")
    assert api("POST", url, {"t_ms": 100}, bearer=device).status_code == 201
    assert [m["t_ms"] for m in api("GET", url, bearer=device).json["moments"]] == [100]
    # a device token opens its own session only
    other = recall_env["invite"]("therapist")
    assert (
        api("GET", f"/api/v1/recall-sessions/{other['id']}/moments", bearer=device).status_code
        == 404
    )
    assert _events(db, "pin_failed") == 1


def test_wrong_pins_from_fresh_opens_and_replayed_cookies_lock_the_link(
    app, db, recall_env, owner_web
) -> None:
    app.config["PIN_DELAY_SECONDS"] = 0  # the lock alone, without the growing waits
    created = recall_env["invite"]("client", pin="4711")
    rs_id, link = created["id"], _path(created["url"])
    first = Web(app)
    assert first.get(link).status_code == 303
    first.get(f"/recall/{rs_id}/pin")
    replay = first.client.get_cookie("ipr_session").value
    statuses = []
    for i in range(30):
        web = Web(app)
        if i % 2:  # an older cookie, replayed: it holds no count to reset
            web.client.set_cookie("ipr_session", replay)
        else:  # the link opened afresh
            assert web.get(link).status_code == 303
        web.get(f"/recall/{rs_id}/pin")
        statuses.append(web.post(f"/recall/{rs_id}/pin", {"pin": f"{1000 + i}"}).status_code)
    assert statuses == [401] * 10 + [429] * 20
    assert _events(db, "pin_failed") == 10 and _events(db, "pin_locked") == 1
    # locked: even the right PIN is refused now, on the page and through the API
    web = Web(app)
    web.get(link)
    web.get(f"/recall/{rs_id}/pin")
    resp = web.post(f"/recall/{rs_id}/pin", {"pin": "4711"})
    assert resp.status_code == 429 and b"locked after too many wrong PINs" in resp.data
    api = recall_env["api"]
    resp = api("POST", "/api/v1/recall/devices", {"pin": "4711"}, bearer=created["token"])
    assert resp.status_code == 429 and resp.json["error"]["code"] == "locked_out"
    # the researcher sees the lock and lifts it (audited); the right PIN then opens the page
    section = owner_web.get(f"/recordings/{recall_env['rec'].id}/recall", htmx=True)
    assert b"locked after too many wrong PINs" in section.data
    resp = owner_web.post(f"/recall-sessions/{rs_id}/unlock", htmx=True)
    assert resp.status_code == 200 and b"locked after too many" not in resp.data
    assert _events(db, "pin_unlocked") == 1
    resp = web.post(f"/recall/{rs_id}/pin", {"pin": "4711"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/recall/{rs_id}"
    assert web.client.get(f"/recall/{rs_id}/moments").status_code == 200


def test_wrong_pins_wait_longer_each_time(app, db, recall_env) -> None:
    created = recall_env["invite"]("client", pin="4711")
    rs_id = created["id"]
    web = Web(app)
    web.get(_path(created["url"]))
    web.get(f"/recall/{rs_id}/pin")
    for _ in range(3):  # PIN_FREE_ATTEMPTS
        assert web.post(f"/recall/{rs_id}/pin", {"pin": "0000"}).status_code == 401
    resp = web.post(f"/recall/{rs_id}/pin", {"pin": "4711"})  # even the right one waits
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) in (1, 2, 3)
    wait = f"Too many wrong PINs. Please wait {resp.headers['Retry-After']} seconds"
    assert wait in resp.get_data(as_text=True)
    row = db.get(Throttle, f"pin:rs:{rs_id}")
    assert (row.failures, (row.next_at - row.updated_at).total_seconds()) == (3, 2.0)
    row.next_at = row.updated_at
    db.commit()
    assert web.post(f"/recall/{rs_id}/pin", {"pin": "0000"}).status_code == 401
    db.expire_all()
    row = db.get(Throttle, f"pin:rs:{rs_id}")
    assert (row.failures, (row.next_at - row.updated_at).total_seconds()) == (4, 4.0)


def test_stop_revoke_and_new_link_end_old_cookies_and_device_tokens(
    app, db, recall_env, owner_web
) -> None:
    created = recall_env["invite"]("therapist")
    rs_id, api = created["id"], recall_env["api"]
    url = f"/recall/{rs_id}/moments"
    api_url = f"/api/v1/recall-sessions/{rs_id}/moments"

    def devices():
        web = participant(app, created["url"])
        cookie = web.client.get_cookie("ipr_session").value
        token = api("POST", "/api/v1/recall/devices", bearer=created["token"]).json
        return web, cookie, token["device_token"]

    def alive(cookie: str, token: str) -> tuple[int, int]:
        replay = app.test_client()
        replay.set_cookie("ipr_session", cookie)
        return replay.get(url).status_code, api("GET", api_url, bearer=token).status_code

    web, cookie, token = devices()
    assert alive(cookie, token) == (200, 200)
    web.get(f"/recall/{rs_id}")
    assert web.post(f"/recall/{rs_id}/stop").status_code == 200
    assert alive(cookie, token) == (401, 401)
    web, cookie, token = devices()  # the link itself still opens the recall again
    assert alive(cookie, token) == (200, 200)
    owner_web.post(f"/recall-sessions/{rs_id}/revoke", htmx=True)
    assert alive(cookie, token) == (401, 401)
    page = owner_web.post(f"/recall-sessions/{rs_id}/link", htmx=True).get_data(as_text=True)
    new_link = re.search(r'value="(http[^"]+/r/[^"]+)"', page).group(1)
    created = {"url": new_link, "token": new_link.rsplit("/", 1)[1]}
    web, cookie, token = devices()
    assert alive(cookie, token) == (200, 200)
    owner_web.post(f"/recall-sessions/{rs_id}/link", htmx=True)
    assert alive(cookie, token) == (401, 401)


def test_moment_count_and_text_length_are_limited(app, db, recall_env) -> None:
    app.config.update(MOMENTS_PER_SESSION=3, MOMENT_TEXT_MAX=5)
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    url = f"/recall/{created['id']}/moments"
    assert [jpost(web, url, {"t_ms": t}).status_code for t in (1, 2, 3)] == [201] * 3
    resp = jpost(web, url, {"t_ms": 4})
    assert resp.status_code == 400 and resp.json["error"] == {
        "code": "limit_reached",
        "message": "This recall holds 3 moments, the most it may; change or delete one instead.",
    }
    resp = recall_env["api"](
        "POST", f"/api/v1/recall-sessions/{created['id']}/moments", {"t_ms": 4}, created["token"]
    )
    assert resp.status_code == 400 and resp.json["error"]["code"] == "limit_reached"
    first = jpost(web, url, {"t_ms": 4}).status_code
    assert first == 400
    mid = db.scalar(select(Moment.id).where(Moment.t_ms == 1))
    resp = web.client.patch(
        f"{url}/{mid}", json={"text": "sixsix", "version": 1}, headers={"X-CSRFToken": web.csrf}
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "text"
    assert db.scalar(select(func.count(Moment.id))) == 3


def test_voice_note_size_is_checked_while_it_streams(app, db, recall_env) -> None:
    app.config["VOICE_NOTE_MAX_BYTES"] = 1000
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    base = f"/recall/{created['id']}/moments"
    mid = jpost(web, base, {"t_ms": 100}).json["id"]

    def send(size: int):
        return web.client.post(
            f"{base}/{mid}/voice",
            headers={"X-CSRFToken": web.csrf},
            data={"audio": (io.BytesIO(b"v" * size), "note.webm", "audio/webm")},
        )

    resp = send(200_000)  # far past the limit: the body is refused while it is read
    assert resp.status_code == 413 and resp.json["error"] == {
        "code": "too_large",
        "message": "A voice note can be at most 0 MB.",
    }
    resp = send(1001)  # just past: refused while copied, and no file is left behind
    assert resp.status_code == 413 and resp.json["error"]["code"] == "too_large"
    voice_dir = (
        app.extensions["ipr_storage"]
        .voice_path(recall_env["rec"].storage_key, "0" * 32 + ".webm")
        .parent
    )
    assert not voice_dir.exists() or list(voice_dir.iterdir()) == []
    assert db.scalars(select(VoiceNote)).all() == []
    assert send(1000).status_code == 201


def test_writes_per_link_and_per_researcher_are_rate_limited(
    app, db, recall_env, owner_web
) -> None:
    mine, theirs = recall_env["invite"]("client"), recall_env["invite"]("therapist")
    app.extensions["ipr_rate"] = RateLimiter(3)  # a fresh minute, three writes each
    web = participant(app, mine["url"])
    url = f"/recall/{mine['id']}/moments"
    statuses = [jpost(web, url, {"t_ms": t}).status_code for t in (1, 2, 3, 4)]
    assert statuses == [201, 201, 201, 429]
    resp = jpost(web, url, {"t_ms": 5})
    assert (
        resp.json["error"]["code"] == "rate_limited" and 1 <= int(resp.headers["Retry-After"]) <= 61
    )
    other = participant(app, theirs["url"])  # another link has its own allowance
    assert jpost(other, f"/recall/{theirs['id']}/moments", {"t_ms": 1}).status_code == 201
    study_id = recall_env["study"].id
    codes = [
        owner_web.post(f"/studies/{study_id}/dyads", {"code": f"9{i}"}, htmx=True).status_code
        for i in range(4)
    ]
    assert codes[3] == 429 and 429 not in codes[:3]


def test_rate_limit_is_shared_by_workers_through_redis() -> None:
    if not REDIS_URL:
        skip_or_fail("IPR_TEST_REDIS_URL is not set")
    import uuid

    key = f"test:{uuid.uuid4().hex}"
    one, two = RateLimiter(2, REDIS_URL), RateLimiter(2, REDIS_URL)  # two gunicorn workers
    one.hit(key)
    two.hit(key)
    try:
        one.hit(key)
    except RateLimited as exc:
        assert exc.status == 429 and exc.retry_after >= 1
    else:
        raise AssertionError("the third write in a minute was allowed")


def test_devices_are_stored_hashed_and_capped(app, db, recall_env) -> None:
    created = recall_env["invite"]("client")
    webs = [participant(app, created["url"]) for _ in range(door.MAX_DEVICES + 2)]
    devices = db.scalars(select(ParticipantDevice)).all()
    assert len(devices) == door.MAX_DEVICES
    assert all(len(d.secret_hash) == 64 and d.kind == "cookie" for d in devices)
    cookie = webs[-1].client.get_cookie("ipr_session").value
    assert all(d.secret_hash not in cookie for d in devices)
    url = f"/recall/{created['id']}/moments"
    assert webs[-1].client.get(url).status_code == 200
    assert webs[0].client.get(url).status_code == 401  # the oldest device was let go


def test_device_endpoint_wants_a_live_invitation_token(app, db, recall_env, owner) -> None:
    api = recall_env["api"]
    assert api("POST", "/api/v1/recall/devices", bearer=None).status_code == 401
    assert api("POST", "/api/v1/recall/devices", bearer="nonsense").status_code == 401
    assert api("POST", "/api/v1/recall/devices").status_code == 401  # a researcher's API token
    assert db.scalars(select(ParticipantDevice)).all() == []


def test_limits_and_the_pin_lock_speak_the_study_language(app, db, recall_env) -> None:
    study = recall_env["study"]
    study.language = "nb"
    db.commit()
    app.config.update(MOMENTS_PER_SESSION=1, PIN_LOCK_AFTER=1, PIN_DELAY_SECONDS=0)
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    url = f"/recall/{created['id']}/moments"
    assert jpost(web, url, {"t_ms": 1}).status_code == 201
    assert jpost(web, url, {"t_ms": 2}).json["error"]["message"] == (
        "Denne gjennomgangen har 1 øyeblikk, det meste den kan ha. Endre eller slett et i stedet."
    )
    locked = recall_env["invite"]("therapist", pin="4711")
    pin_web = Web(app)
    pin_web.get(_path(locked["url"]))
    pin_web.get(f"/recall/{locked['id']}/pin")
    assert pin_web.post(f"/recall/{locked['id']}/pin", {"pin": "0000"}).status_code == 401
    resp = pin_web.post(f"/recall/{locked['id']}/pin", {"pin": "4711"})
    assert resp.status_code == 429
    assert "Denne lenken er låst etter for mange feil PIN-koder." in resp.get_data(as_text=True)
