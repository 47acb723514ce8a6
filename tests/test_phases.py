"""Two phases kept apart: the blind phase frozen at the reveal, the response pass, and hiding."""

from __future__ import annotations

import io
import json
import re

from sqlalchemy import select

from ipr.models import AuditEvent, Moment, Recording
from tests.conftest import jpost, jsend, participant

FROZEN = (
    "This moment was made before the other person's moments were shown, so it can no longer "
    "be changed or deleted. You can respond to moments or add new ones."
)


def _reveal(recall_env) -> None:
    resp = recall_env["api"]("POST", f"/api/v1/recordings/{recall_env['rec'].id}/reveal")
    assert resp.status_code == 200, resp.json


def _two(app, db, recall_env, *, early: bool):
    """Therapist and client with one blind moment each; the therapist has finished."""
    recall_env["study"].allow_early_reveal = early
    db.commit()
    t, c = recall_env["invite"]("therapist"), recall_env["invite"]("client")
    tw, cw = participant(app, t["url"]), participant(app, c["url"])
    tm = jpost(tw, f"/recall/{t['id']}/moments", {"t_ms": 1000, "text": "T blind"}).json
    cm = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1500, "text": "C blind"}).json
    assert tm["phase"] == "blind" and cm["phase"] == "blind"
    assert jpost(tw, f"/recall/{t['id']}/finish", {}).json == {"status": "submitted"}
    return t, c, tw, cw, tm, cm


def test_reveal_freezes_blind_moments_on_the_page_and_the_api(app, db, recall_env) -> None:
    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    _reveal(recall_env)  # the client has not finished: early reveal is allowed in this study
    url = f"/recall/{c['id']}/moments/{cm['id']}"
    # the page's JSON endpoints
    resp = jsend(cw, "PATCH", url, {"text": "changed", "version": 1})
    assert resp.status_code == 409
    assert resp.json["error"] == {"code": "frozen", "message": FROZEN}
    assert jsend(cw, "DELETE", url).json["error"]["code"] == "frozen"
    voice = cw.client.post(
        f"{url}/voice",
        data={"audio": (io.BytesIO(b"OggS-voice"), "v.ogg", "audio/ogg")},
        headers={"X-CSRFToken": cw.csrf},
    )
    assert voice.status_code == 409 and voice.json["error"]["code"] == "frozen"
    # the participant API with the invitation token
    api = recall_env["api"]
    api_url = f"/api/v1/recall-sessions/{c['id']}/moments/{cm['id']}"
    resp = api("PATCH", api_url, {"text": "changed"}, bearer=c["token"])
    assert resp.status_code == 409 and resp.json["error"]["code"] == "frozen"
    assert api("DELETE", api_url, bearer=c["token"]).status_code == 409
    # the finished therapist cannot touch theirs either
    t_url = f"/recall/{t['id']}/moments/{tm['id']}"
    assert jsend(tw, "PATCH", t_url, {"text": "x", "version": 1}).json["error"]["code"] == "frozen"
    db.expire_all()
    frozen = db.get(Moment, cm["id"])
    assert (frozen.text, frozen.version, frozen.deleted_at) == ("C blind", 1, None)
    # the page tells the participant what is left to do
    page = cw.client.get(f"/recall/{c['id']}").get_data(as_text=True)
    assert "The moments you marked before are kept as they were." in page
    assert 'id="mark-btn"' in page
    data = json.loads(re.search(r'id="recall-data">(.*?)</script>', page).group(1))
    assert data["frozen_blind"] is True
    assert [m["text"] for m in data["revealed"]] == ["T blind"]


def test_response_pass_for_a_finished_and_an_unfinished_participant(app, db, recall_env) -> None:
    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    # before the reveal the finished therapist is locked and nobody can respond
    before = jpost(tw, f"/recall/{t['id']}/moments", {"t_ms": 2000})
    assert before.json["error"]["code"] == "locked"
    assert "mark-btn" not in tw.client.get(f"/recall/{t['id']}").get_data(as_text=True)
    _reveal(recall_env)
    # the finished therapist responds to the client's moment and adds a second-look moment
    t_url = f"/recall/{t['id']}/moments"
    answer = jpost(tw, t_url, {"t_ms": 1500, "text": "I saw it", "responds_to_id": cm["id"]})
    assert answer.status_code == 201
    assert (answer.json["phase"], answer.json["responds_to_id"]) == ("response", cm["id"])
    second = jpost(tw, t_url, {"t_ms": 4000, "text": "only now"})
    assert second.status_code == 201
    assert (second.json["phase"], second.json["responds_to_id"]) == ("response", None)
    # ... and may still change or remove their own responses
    edit = jsend(tw, "PATCH", f"{t_url}/{answer.json['id']}", {"text": "Yes.", "version": 1})
    assert edit.status_code == 200 and edit.json["text"] == "Yes."
    assert jsend(tw, "DELETE", f"{t_url}/{second.json['id']}").status_code == 204
    page = tw.client.get(f"/recall/{t['id']}").get_data(as_text=True)
    assert 'id="mark-btn"' in page and 'id="finish-btn"' not in page
    assert "You can respond to any of these moments." in page
    # the unfinished client responds through the participant API
    resp = recall_env["api"](
        "POST",
        f"/api/v1/recall-sessions/{c['id']}/moments",
        {"t_ms": 1000, "text": "me too", "responds_to_id": tm["id"]},
        bearer=c["token"],
    )
    assert resp.status_code == 201 and resp.json["phase"] == "response"
    # each side sees the other's response, with its phase and what it answers
    seen = cw.client.get(f"/recall/{c['id']}/moments").json["revealed"]
    assert [(m["text"], m["phase"], m["responds_to_id"]) for m in seen] == [
        ("T blind", "blind", None),
        ("Yes.", "response", cm["id"]),
    ]
    # a blind moment cannot be turned into an answer after the fact
    db.expire_all()
    phases = dict(db.execute(select(Moment.text, Moment.phase)).all())
    assert phases == {
        "T blind": "blind",
        "C blind": "blind",
        "Yes.": "response",
        "only now": "response",
        "me too": "response",
    }


def test_a_researchers_correction_is_marked_and_audited(
    app, db, recall_env, owner_web, owner
) -> None:
    recall_env["study"].allow_early_reveal = True
    db.commit()
    led = recall_env["invite"]("client", mode="researcher")
    owner_web.get(f"/recordings/{recall_env['rec'].id}")
    url = f"/recall/{led['id']}/moments"
    headers = {"X-CSRFToken": owner_web.csrf}
    mid = owner_web.client.post(url, json={"t_ms": 900, "text": "said"}, headers=headers).json["id"]
    before = owner_web.client.patch(
        f"{url}/{mid}", json={"text": "said so", "version": 1}, headers=headers
    )
    assert before.status_code == 200 and before.json["corrected_at"] is None
    _reveal(recall_env)
    after = owner_web.client.patch(
        f"{url}/{mid}", json={"text": "said so, firmly", "version": 2}, headers=headers
    )
    assert after.status_code == 200 and after.json["corrected_at"] is not None
    db.expire_all()
    m = db.get(Moment, mid)
    assert (m.phase, m.corrected_by_id, m.text) == ("blind", owner.id, "said so, firmly")
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "moment_corrected"))
    assert (event.object_type, event.object_id, event.user_id) == ("moment", str(mid), owner.id)
    section = owner_web.get(f"/recordings/{recall_env['rec'].id}/recall", htmx=True)
    assert "corrected by a researcher after the reveal" in section.get_data(as_text=True)


def test_hiding_is_refused_once_anyone_has_responded(app, db, recall_env, owner_web) -> None:
    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    rec_id = recall_env["rec"].id
    owner_web.get(f"/recordings/{rec_id}")
    _reveal(recall_env)
    # nobody answered yet: hiding takes the reveal back and the blind phase goes on
    assert (
        owner_web.post(f"/recordings/{rec_id}/reveal", {"hide": "1"}, htmx=True).status_code == 200
    )
    db.expire_all()
    assert db.get(Recording, rec_id).revealed_at is None
    c_url = f"/recall/{c['id']}/moments/{cm['id']}"
    assert jsend(cw, "PATCH", c_url, {"text": "still blind", "version": 1}).status_code == 200
    _reveal(recall_env)
    answer = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1000, "responds_to_id": tm["id"]})
    jsend(cw, "DELETE", f"/recall/{c['id']}/moments/{answer.json['id']}")  # even if withdrawn
    resp = owner_web.post(f"/recordings/{rec_id}/reveal", {"hide": "1"}, htmx=True)
    assert resp.status_code == 422
    assert "can no longer be hidden" in resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(Recording, rec_id).revealed_at is not None
    section = owner_web.get(f"/recordings/{rec_id}/recall", htmx=True).get_data(as_text=True)
    assert "Hide again" not in section
    assert "the reveal can no longer be taken back" in section


def test_a_norwegian_participant_reads_why_a_moment_is_frozen(app, db, recall_env) -> None:
    recall_env["study"].language = "nb"
    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    _reveal(recall_env)
    resp = jsend(tw, "PATCH", f"/recall/{t['id']}/moments/{tm['id']}", {"text": "x", "version": 1})
    assert resp.status_code == 409
    assert resp.json["error"]["message"] == (
        "Dette øyeblikket ble markert før du fikk se den andres øyeblikk, så det kan ikke "
        "lenger endres eller slettes. Du kan svare på øyeblikk eller legge til nye."
    )


def test_the_timeline_carries_phase_and_threads_responses(app, db, recall_env) -> None:
    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    _reveal(recall_env)
    answer = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1200, "responds_to_id": tm["id"]})
    body = recall_env["api"]("GET", f"/api/v1/recordings/{recall_env['rec'].id}/timeline").json
    lanes = {
        role: [(m["id"], m["phase"], m["responds_to_id"]) for m in body["lanes"][role]]
        for role in ("therapist", "client")
    }
    assert lanes == {
        "therapist": [(tm["id"], "blind", None)],
        "client": [(answer.json["id"], "response", tm["id"]), (cm["id"], "blind", None)],
    }


def test_the_recordings_csv_export_carries_phase_from_the_database(app, db, recall_env) -> None:
    import csv

    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    _reveal(recall_env)
    answer = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1200, "responds_to_id": tm["id"]})
    resp = recall_env["api"]("GET", f"/api/v1/recordings/{recall_env['rec'].id}/export.csv")
    rows = list(
        csv.DictReader(
            line for line in io.StringIO(resp.data.decode("utf-8-sig")) if not line.startswith("#")
        )
    )
    assert [(r["moment_id"], r["phase"], r["responds_to_id"]) for r in rows] == [
        (str(tm["id"]), "blind", ""),
        (str(answer.json["id"]), "response", str(tm["id"])),
        (str(cm["id"]), "blind", ""),
    ]


def test_a_researcher_corrects_a_self_guided_blind_moment_only_after_the_reveal(
    app, db, recall_env, owner_web, owner
) -> None:
    t, c, tw, cw, tm, cm = _two(app, db, recall_env, early=True)
    rec_id = recall_env["rec"].id
    owner_web.get(f"/recordings/{rec_id}")
    resp = owner_web.post(f"/moments/{cm['id']}/correction", {"text": "typo fixed"}, htmx=True)
    assert resp.status_code == 422
    assert "only after the reveal" in resp.get_data(as_text=True)
    _reveal(recall_env)
    section = owner_web.get(f"/recordings/{rec_id}/recall", htmx=True).get_data(as_text=True)
    assert section.count("Correct this blind moment") == 2
    resp = owner_web.post(
        f"/moments/{cm['id']}/correction", {"text": "C blind, typo fixed"}, htmx=True
    )
    assert resp.status_code == 200
    assert "corrected by a researcher after the reveal" in resp.get_data(as_text=True)
    db.expire_all()
    m = db.get(Moment, cm["id"])
    assert (m.text, m.version, m.corrected_by_id) == ("C blind, typo fixed", 2, owner.id)
    assert db.scalar(
        select(AuditEvent.object_id).where(AuditEvent.action == "moment_corrected")
    ) == str(cm["id"])
    # a response stays the participant's own
    answer = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 1200, "responds_to_id": tm["id"]})
    resp = owner_web.post(f"/moments/{answer.json['id']}/correction", {"text": "x"}, htmx=True)
    assert resp.status_code == 422
