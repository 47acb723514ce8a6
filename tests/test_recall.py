"""Recall sessions: links, participant access, moments that are never lost, blinding, reveal."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from ipr.auth import hash_token
from ipr.models import (
    AuditEvent,
    Moment,
    MomentRevision,
    RecallSession,
    VoiceNote,
)
from ipr.storage import Storage
from tests.conftest import Web, jpost, jsend, participant


def test_invitation_token_is_long_random_hashed_and_shown_once(recall_env, db) -> None:
    created = recall_env["invite"]("therapist")
    token = created["token"]
    assert len(token) >= 43  # 32 random bytes, URL-safe base64: 256 bits
    assert created["url"].endswith(f"/r/{token}")
    rs = db.get(RecallSession, created["id"])
    assert rs.token_hash == hash_token(token) and token not in rs.token_hash
    assert (rs.token_expires_at - rs.created_at).days == 14
    listed = recall_env["api"](
        "GET", f"/api/v1/recordings/{recall_env['rec'].id}/recall-sessions"
    ).json
    assert "token" not in listed["recall_sessions"][0]
    assert listed["recall_sessions"][0]["url"] is None
    events = db.scalars(select(AuditEvent.action).where(AuditEvent.study_id == rs.study_id))
    assert {"recall_session_created", "invitation_issued"} <= set(events)


def test_link_is_exchanged_for_a_cookie_and_leaves_the_address_bar(app, recall_env) -> None:
    created = recall_env["invite"]("therapist")
    web = participant(app, created["url"])
    assert web.landing == f"/recall/{created['id']}"
    assert created["token"] not in web.landing
    resp = web.client.get(f"/recall/{created['id']}/moments")
    assert resp.status_code == 200 and resp.json == {"moments": [], "revealed": None}


def test_moments_create_retry_edit_delete_with_history(app, db, recall_env) -> None:
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    url = f"/recall/{created['id']}/moments"
    body = {"t_ms": 1234, "text": "I felt heard", "ratings": {"hat": 8}}
    first = jpost(web, url, body, **{"Idempotency-Key": "key-0001"})
    assert first.status_code == 201
    again = jpost(web, url, body, **{"Idempotency-Key": "key-0001"})  # a retried save
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert (
        db.scalar(select(Moment.id).where(Moment.recall_session_id == created["id"]))
        == first.json["id"]
    )
    assert len(db.scalars(select(Moment)).all()) == 1
    mid = first.json["id"]
    resp = jsend(
        web,
        "PATCH",
        f"{url}/{mid}",
        {"text": "I felt really heard", "version": 1, "end_ms": 3000, "peaks_ms": [2000]},
    )
    assert resp.status_code == 200
    assert (resp.json["version"], resp.json["end_ms"], resp.json["peaks_ms"]) == (2, 3000, [2000])
    # another tab still holding version 1 does not overwrite silently
    stale = jsend(web, "PATCH", f"{url}/{mid}", {"text": "older text", "version": 1})
    assert stale.status_code == 409
    assert stale.json["moment"]["text"] == "I felt really heard"
    assert jsend(web, "DELETE", f"{url}/{mid}").status_code == 204
    assert web.client.get(url).json["moments"] == []
    history = db.scalars(
        select(MomentRevision).where(MomentRevision.moment_id == mid).order_by(MomentRevision.id)
    ).all()
    assert [(h.action, h.version) for h in history] == [("create", 1), ("update", 2), ("delete", 3)]
    assert history[1].data["text"] == "I felt really heard"
    assert db.get(Moment, mid).deleted_at is not None  # kept, out of every view


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"t_ms": 7000, "text": ""}, "The time is outside the recording."),
        ({"t_ms": 100, "ratings": {"hat": 10}}, "A rating on 'hat' is from 1 to 9."),
        ({"t_ms": 100, "ratings": {"mood": 3}}, "Unknown rating scale 'mood'."),
        ({"t_ms": 500, "end_ms": 400}, "The end comes before the start."),
        ({"t_ms": 500, "peaks_ms": [100]}, "Peaks lie between the start and the end."),
        ({"t_ms": "soon"}, "t_ms must be a whole number of milliseconds."),
        ({"t_ms": 100, "codes": [1]}, "This study does not ask participants for codes."),
    ],
)
def test_invalid_moments_are_refused_with_a_reason(app, db, recall_env, body, message) -> None:
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    code_id = recall_env["study"].codes[0].id
    body = {k: ([code_id] if k == "codes" else v) for k, v in body.items()}
    resp = jpost(web, f"/recall/{created['id']}/moments", body)
    assert resp.status_code == 422 and resp.json["error"]["message"] == message
    assert db.scalars(select(Moment)).all() == []


def test_blinding_until_reveal(app, db, recall_env, owner_web) -> None:
    t = recall_env["invite"]("therapist")
    c = recall_env["invite"]("client")
    tw, cw = participant(app, t["url"]), participant(app, c["url"])
    tm = jpost(tw, f"/recall/{t['id']}/moments", {"t_ms": 1000, "text": "THERAPIST-SECRET"}).json
    cm = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1500, "text": "CLIENT-SECRET"}).json
    jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 4500, "text": "CLIENT-TWO"})
    # each sees only their own, in JSON and through the participant API
    t_view = tw.client.get(f"/recall/{t['id']}/moments").get_data(as_text=True)
    assert "THERAPIST-SECRET" in t_view and "CLIENT" not in t_view
    via_api = recall_env["api"](
        "GET", f"/api/v1/recall-sessions/{t['id']}/moments", bearer=t["token"]
    ).json
    assert [m["text"] for m in via_api["moments"]] == ["THERAPIST-SECRET"]
    assert via_api["revealed"] is None
    # the other's moment and session are simply not there
    assert (
        jsend(
            tw, "PATCH", f"/recall/{t['id']}/moments/{cm['id']}", {"text": "x", "version": 1}
        ).status_code
        == 404
    )
    assert tw.client.get(f"/recall/{c['id']}/moments").status_code == 404
    assert jsend(tw, "DELETE", f"/recall/{c['id']}/moments/{cm['id']}").status_code == 404
    resp = recall_env["api"]("GET", f"/api/v1/recall-sessions/{c['id']}/moments", bearer=t["token"])
    assert resp.status_code == 404
    # a response to a moment they cannot see is refused like a missing one
    resp = jpost(tw, f"/recall/{t['id']}/moments", {"t_ms": 10, "responds_to_id": cm["id"]})
    assert resp.status_code == 404
    # the researcher sees both lanes
    page = owner_web.get(f"/recordings/{recall_env['rec'].id}/recall", htmx=True).get_data(
        as_text=True
    )
    assert "THERAPIST-SECRET" in page and "CLIENT-SECRET" in page and "CLIENT-TWO" in page
    # a reveal before both have finished is refused (the study does not allow it) ...
    resp = recall_env["api"]("POST", f"/api/v1/recordings/{recall_env['rec'].id}/reveal")
    assert resp.status_code == 422
    for who, rs_id in ((tw, t["id"]), (cw, c["id"])):
        assert jpost(who, f"/recall/{rs_id}/finish", {}).json == {"status": "submitted"}
    # ... and allowed after, audited
    assert (
        recall_env["api"]("POST", f"/api/v1/recordings/{recall_env['rec'].id}/reveal").status_code
        == 200
    )
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "lanes_revealed"))
    t_view = tw.client.get(f"/recall/{t['id']}/moments").json
    assert [m["text"] for m in t_view["revealed"]] == ["CLIENT-SECRET", "CLIENT-TWO"]
    c_view = cw.client.get(f"/recall/{c['id']}/moments").json
    assert [m["text"] for m in c_view["revealed"]] == ["THERAPIST-SECRET"]
    del tm


def test_finish_locks_and_the_researcher_can_reopen(app, db, recall_env, owner_web) -> None:
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    url = f"/recall/{created['id']}/moments"
    mid = jpost(web, url, {"t_ms": 10}).json["id"]
    jpost(web, f"/recall/{created['id']}/finish", {})
    resp = jpost(web, url, {"t_ms": 20})
    assert resp.status_code == 409 and resp.json["error"]["code"] == "locked"
    assert jsend(web, "DELETE", f"{url}/{mid}").status_code == 409
    owner_web.post(f"/recall-sessions/{created['id']}/reopen", htmx=True)
    assert jpost(web, url, {"t_ms": 20}).status_code == 201


def test_revoked_expired_and_wrong_tokens_are_refused(app, db, recall_env, owner_web) -> None:
    created = recall_env["invite"]("therapist")
    web = participant(app, created["url"])
    rs_id = created["id"]
    assert (
        web.client.get(
            f"/recall/{rs_id}/media/playable.mp4", headers={"Range": "bytes=0-9"}
        ).status_code
        == 206
    )
    owner_web.post(f"/recall-sessions/{rs_id}/revoke", htmx=True)
    # the next request is refused, media included
    assert web.client.get(f"/recall/{rs_id}/moments").status_code == 401
    assert web.client.get(f"/recall/{rs_id}/media/playable.mp4").status_code == 404
    assert Web(app).get(re.sub(r"^https?://[^/]+", "", created["url"])).status_code == 401
    api = recall_env["api"]
    assert (
        api("GET", f"/api/v1/recall-sessions/{rs_id}/moments", bearer=created["token"]).status_code
        == 401
    )
    # a new link works; the old one does not
    page = owner_web.post(f"/recall-sessions/{rs_id}/link", htmx=True).get_data(as_text=True)
    new_link = re.search(r'value="(http[^"]+/r/[^"]+)"', page).group(1)
    fresh = participant(app, new_link)
    assert fresh.client.get(f"/recall/{rs_id}/moments").status_code == 200
    # expiry
    rs = db.get(RecallSession, rs_id)
    rs.token_expires_at = rs.created_at - dt.timedelta(seconds=1)
    db.commit()
    assert fresh.client.get(f"/recall/{rs_id}/moments").status_code == 401
    assert Web(app).get(re.sub(r"^https?://[^/]+", "", new_link)).status_code == 401
    assert api("GET", "/api/v1/recall-sessions/1/moments", bearer="nonsense").status_code == 401


def test_pin_is_asked_before_anything_opens(app, recall_env) -> None:
    created = recall_env["invite"]("client", pin="4711")
    web = Web(app)
    path = re.sub(r"^https?://[^/]+", "", created["url"])
    resp = web.get(path)
    assert resp.headers["Location"] == f"/recall/{created['id']}/pin"
    assert web.client.get(f"/recall/{created['id']}/moments").status_code == 404
    web.get(f"/recall/{created['id']}/pin")
    assert web.post(f"/recall/{created['id']}/pin", {"pin": "1234"}).status_code == 401
    resp = web.post(f"/recall/{created['id']}/pin", {"pin": "4711"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/recall/{created['id']}"
    assert web.client.get(f"/recall/{created['id']}/moments").status_code == 200


def test_voice_note_is_served_to_its_owner_and_deleted_with_the_moment(
    app, db, recall_env, tmp_path
) -> None:
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    base = f"/recall/{created['id']}/moments"
    mid = jpost(web, base, {"t_ms": 100}).json["id"]
    import io

    audio = b"\x1aE\xdf\xa3" + b"voice" * 200
    resp = web.client.post(
        f"{base}/{mid}/voice",
        headers={"X-CSRFToken": web.csrf},
        data={"audio": (io.BytesIO(audio), "note.webm", "audio/webm")},
    )
    assert resp.status_code == 201 and resp.json["voice_url"] == f"{base}/{mid}/voice"
    got = web.client.get(f"{base}/{mid}/voice")
    assert got.status_code == 200 and got.data == audio and got.mimetype == "audio/webm"
    note = db.scalar(select(VoiceNote))
    path = Storage(app.config["RECORDINGS_DIR"]).voice_path(
        recall_env["rec"].storage_key, note.storage_name
    )
    assert path.read_bytes() == audio
    other = participant(app, recall_env["invite"]("therapist")["url"])
    assert other.client.get(f"{base}/{mid}/voice").status_code == 404
    assert jsend(web, "DELETE", f"{base}/{mid}").status_code == 204
    assert not path.exists() and db.scalars(select(VoiceNote)).all() == []


def test_researcher_led_session_records_who_entered(app, db, recall_env, owner_web, owner) -> None:
    created = recall_env["invite"]("client", mode="researcher")
    assert "token" not in created
    rs_id = created["id"]
    owner_web.get(f"/recordings/{recall_env['rec'].id}")
    resp = owner_web.client.post(
        f"/recall/{rs_id}/moments",
        json={"t_ms": 900, "text": "said"},
        headers={"X-CSRFToken": owner_web.csrf},
    )
    assert resp.status_code == 201
    assert db.get(Moment, resp.json["id"]).entered_by_id == owner.id
    # a researcher cannot open a self-guided participant's page
    self_rs = recall_env["invite"]("therapist")
    assert owner_web.client.get(f"/recall/{self_rs['id']}/moments").status_code == 404


RESEARCHER_ONLY = {
    "api_interview.upload_audio",
    "api_interview.get_recall_session",
    "api_interview.interview_audio",
    "api_interview.import_transcript",
    "api_prompts.get_answers",
    "api_prompts.put_answers",
    "api_transcripts.transcribe",
    *(f"api_interview_chunks.{view}" for view in (
        "start_take", "list_takes", "take_status", "append_chunk", "put_events", "finish_take",
        "discard_take")),
}  # fmt: skip


def test_participant_token_opens_no_other_object(app, db, recall_env, make_user) -> None:
    """Every route a participant can reach, tried with another session's grant and token."""
    mine = recall_env["invite"]("therapist")
    theirs = recall_env["invite"]("client")
    cw = participant(app, theirs["url"])
    their_moment = jpost(cw, f"/recall/{theirs['id']}/moments", {"t_ms": 5, "text": "x"}).json
    web = participant(app, mine["url"])
    web.get("/login")
    ids = {
        "rs_id": theirs["id"],
        "moment_id": their_moment["id"],
        "index": 1,
        "token": "not-a-token",
        "take": "a" * 32,
    }
    tried = 0
    for rule in app.url_map.iter_rules():
        if not (rule.endpoint.startswith("recall.") or rule.rule.startswith("/api/v1/recall-")):
            continue
        if rule.endpoint in ("recall.enter",):
            continue
        url = rule.build({a: ids[a] for a in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if url.startswith("/api/"):
                resp = recall_env["api"](method, url, {"t_ms": 1}, bearer=mine["token"])
            else:
                resp = web.client.open(
                    url, method=method, json={"t_ms": 1}, headers={"X-CSRFToken": web.csrf}
                )
            # the interview's researcher routes take API tokens only: a link token is none (401)
            want = 401 if rule.endpoint in RESEARCHER_ONLY else 404
            assert resp.status_code == want, (method, url, resp.status_code)
            assert b"x" not in resp.data.replace(b"error", b"") or resp.is_json is False
            tried += 1
    assert tried >= 14
    assert db.scalar(select(Moment.text).where(Moment.id == their_moment["id"])) == "x"


def test_kinds_of_session_are_refused_correctly(app, db, recall_env) -> None:
    p = recall_env["dyad"].participant("therapist")
    api = recall_env["api"]
    resp = api(
        "POST",
        f"/api/v1/recordings/{recall_env['rec'].id}/recall-sessions",
        {"participant_id": p.id, "mode": "telepathy"},
    )
    assert resp.status_code == 422
    recall_env["invite"]("therapist")
    resp = api(
        "POST",
        f"/api/v1/recordings/{recall_env['rec'].id}/recall-sessions",
        {"participant_id": p.id, "mode": "self"},
    )
    assert (
        resp.status_code == 422 and "already has a recall session" in resp.json["error"]["message"]
    )


def test_second_pass_after_reveal_is_open_to_finished_participants(app, db, recall_env) -> None:
    t, c = recall_env["invite"]("therapist"), recall_env["invite"]("client")
    tw, cw = participant(app, t["url"]), participant(app, c["url"])
    cm = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1500, "text": "client"}).json
    for who, rs_id in ((tw, t["id"]), (cw, c["id"])):
        jpost(who, f"/recall/{rs_id}/finish", {})
    assert (
        recall_env["api"]("POST", f"/api/v1/recordings/{recall_env['rec'].id}/reveal").status_code
        == 200
    )
    url = f"/recall/{t['id']}/moments"
    second_look = jpost(tw, url, {"t_ms": 10, "text": "new"})  # a new, response-phase moment
    assert second_look.status_code == 201 and second_look.json["phase"] == "response"
    resp = jpost(tw, url, {"t_ms": 1500, "text": "I saw that too", "responds_to_id": cm["id"]})
    assert resp.status_code == 201 and resp.json["responds_to_id"] == cm["id"]
    edit = jsend(tw, "PATCH", f"{url}/{resp.json['id']}", {"text": "Yes.", "version": 1})
    assert edit.status_code == 200


def test_researcher_hears_voice_notes_participants_cannot_reach_theirs(
    app, recall_env, owner_web
) -> None:
    import io

    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    mid = jpost(web, f"/recall/{created['id']}/moments", {"t_ms": 100}).json["id"]
    web.client.post(
        f"/recall/{created['id']}/moments/{mid}/voice",
        headers={"X-CSRFToken": web.csrf},
        data={"audio": (io.BytesIO(b"\x1aE\xdf\xa3abc"), "v.webm", "audio/webm")},
    )
    page = owner_web.get(f"/recordings/{recall_env['rec'].id}").get_data(as_text=True)
    assert f'src="/moments/{mid}/voice"' in page
    got = owner_web.client.get(f"/moments/{mid}/voice")
    assert got.status_code == 200 and got.data == b"\x1aE\xdf\xa3abc"
    assert web.client.get(f"/moments/{mid}/voice").status_code in (302, 401)  # researchers only


def test_participant_reads_errors_and_endings_in_the_study_language(
    app, db, recall_env, owner_web
) -> None:
    study = recall_env["study"]
    study.language = "nb"
    db.commit()
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    resp = jpost(web, f"/recall/{created['id']}/moments", {"t_ms": 100, "ratings": {"hat": 12}})
    assert resp.status_code == 422
    assert resp.json["error"]["message"] == "En vurdering på 'hat' går fra 1 til 9."
    owner_web.post(f"/recall-sessions/{created['id']}/revoke", htmx=True)
    ended = web.client.get(f"/recall/{created['id']}")
    assert ended.status_code == 401
    html = ended.get_data(as_text=True)
    assert '<html lang="nb"' in html and "Something went wrong" not in html


def test_researcher_codes_a_moment_in_a_layer_of_their_own(
    app, db, recall_env, owner_web, make_user
) -> None:
    from ipr.models import ResearcherAnnotation

    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    mid = jpost(web, f"/recall/{created['id']}/moments", {"t_ms": 100, "text": "mine"}).json["id"]
    code_id = recall_env["study"].codes[0].id
    owner_web.get(f"/recordings/{recall_env['rec'].id}")
    resp = owner_web.post(
        f"/moments/{mid}/annotation",
        {"codes": [str(code_id)], "note": "rupture marker?"},
        htmx=True,
    )
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f'name="codes" value="{code_id}" data-shortcut="i" checked' in html
    row = db.scalar(select(ResearcherAnnotation).where(ResearcherAnnotation.moment_id == mid))
    assert (row.codes, row.note) == ([code_id], "rupture marker?")
    # the participant's own moment is untouched, and the participant never sees the layer
    moment = web.client.get(f"/recall/{created['id']}/moments").json["moments"][0]
    assert moment["codes"] == [] and "rupture marker" not in json.dumps(moment)
    # a viewer may not code
    make_user("viewer@example.org")
    owner_web.post(
        f"/studies/{recall_env['study'].id}/members",
        {"email": "viewer@example.org", "role": "viewer"},
    )
    viewer = Web(app)
    viewer.login("viewer@example.org")
    assert viewer.post(f"/moments/{mid}/annotation", {"note": "x"}, htmx=True).status_code == 403


def test_progress_shows_the_furthest_point_watched_not_the_last(app, db, recall_env, owner_web):
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    pos = f"/recall/{created['id']}/position"
    for t_ms in (4200, 2500, 1000):  # watched to 0:04, then went back to look again
        assert jpost(web, pos, {"t_ms": t_ms}).status_code == 204
    rs = db.get(RecallSession, created["id"])
    db.refresh(rs)
    assert (rs.last_position_ms, rs.furthest_ms) == (1000, 4200)
    html = owner_web.get(f"/recordings/{recall_env['rec'].id}").get_data(as_text=True)
    assert "watched to 0:04" in html and "watched to 0:01" not in html
    # the participant comes back where they were, not where they had got to
    page = web.client.get(f"/recall/{created['id']}").get_data(as_text=True)
    assert '"last_position_ms": 1000' in page


def test_a_finished_participant_sees_no_break_stop_or_mark(app, db, recall_env) -> None:
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    page = f"/recall/{created['id']}"
    before = web.client.get(page).get_data(as_text=True)
    assert all(f'id="{b}"' in before for b in ("break-btn", "stop-btn", "finish-btn", "mark-btn"))
    jpost(web, f"/recall/{created['id']}/finish", {})
    after = web.client.get(page).get_data(as_text=True)
    assert not any(
        f'id="{b}"' in after for b in ("break-btn", "stop-btn", "finish-btn", "mark-btn")
    )
    assert 'id="locked-note"' in after
