"""One source of truth for the API's shapes: the schemas that generate /api/v1/openapi.json also
validate every request (422 in the app's error shape) and serialise every answer."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from ipr import recall
from ipr.models import Membership, Moment, Study
from tests.conftest import api_token


@pytest.fixture
def env(app, db, owner, api_objects):
    """The API's objects (tests/conftest.py), the owner's API caller and the document."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(db, owner)}"}

    def call(method, url, **kw):
        return client.open("/api/v1" + url, method=method, headers=headers, **kw)

    doc = client.get("/api/v1/openapi.json").get_json()
    return {**api_objects, "call": call, "client": client, "doc": doc}


def documented(doc, name: str) -> set[str]:
    return set(doc["components"]["schemas"][name]["properties"])


def test_every_answer_has_exactly_the_documented_fields(env, db) -> None:
    """The serialiser and the document are one schema: no key undocumented, none missing."""
    call, doc, rec, rs = env["call"], env["doc"], env["rec"], env["rs"]
    answers = {
        "Study": call("GET", f"/studies/{env['study'].id}").json,
        "Dyad": call("GET", f"/dyads/{env['dyad'].id}").json,
        "Participant": call("GET", f"/participants/{rs.participant_id}").json,
        "Recording": call("GET", f"/recordings/{rec.id}").json,
        "RecallSessionDetail": call("GET", f"/recall-sessions/{rs.id}").json,
        "Timeline": call("GET", f"/recordings/{rec.id}/timeline").json,
    }
    for name, answer in answers.items():
        assert set(answer) == documented(doc, name), name
    moments = call("GET", f"/recall-sessions/{rs.id}/moments").json["moments"]
    assert len(moments) == 1 and set(moments[0]) == documented(doc, "Moment")
    client_id = env["dyad"].participant("client").id
    created = call(
        "POST", f"/recordings/{rec.id}/recall-sessions", json={"participant_id": client_id}
    )
    assert created.status_code == 201
    assert set(created.json) == documented(doc, "NewRecallSession")  # with its token, once
    assert created.json["token"] and created.json["url"].endswith(created.json["token"])
    listed = call("GET", f"/recordings/{rec.id}/recall-sessions").json["recall_sessions"]
    assert [set(r) for r in listed] == [documented(doc, "RecallSession")] * 2  # no token
    assert documented(doc, "NewRecallSession") - documented(doc, "RecallSession") == {"token"}


def test_the_answers_carry_the_values(env) -> None:
    """Computed fields (role, nested segmentation, URLs, the participants) come out right."""
    call, rec, study = env["call"], env["rec"], env["study"]
    got = call("GET", f"/studies/{study.id}").json
    assert got["role"] == "owner"
    assert got["segmentation"] == {
        "strategy": study.segmentation_strategy, "fixed_ms": study.segment_fixed_ms,
        "min_ms": study.segment_min_ms, "max_ms": study.segment_max_ms,
    }  # fmt: skip
    assert [(s["key"], s["min"], s["max"]) for s in got["scales"]] == [("hat", 1, 9)]
    dyad = call("GET", f"/dyads/{env['dyad'].id}").json
    assert (dyad["therapist"]["code"], dyad["client"]["code"]) == ("T01", "C01")
    got = call("GET", f"/recordings/{rec.id}").json
    assert got["media_url"] == f"/recordings/{rec.id}/media/playable.mp4"
    assert (got["fps"], got["stage"], got["progress"], got["clips"]) == (25.0, None, None, [])
    assert set(got["analysis"]) == {"scene_cuts_ms", "silences_ms", "motion_energy"}


def test_invalid_input_is_422_naming_the_field(env, db) -> None:
    call, rs, study = env["call"], env["rs"], env["study"]
    moments = f"/recall-sessions/{rs.id}/moments"
    cases = [
        ("POST", "/studies", {"name": 5}, "name", "name: Not a valid string."),
        ("PATCH", f"/studies/{study.id}", {"alignment_tolerance_ms": "x"},
         "alignment_tolerance_ms", "alignment_tolerance_ms: Not a valid integer."),
        ("POST", moments, {"text": "no time"}, "t_ms", "t_ms: Missing data for required field."),
        ("POST", moments, {"t_ms": "1000"}, "t_ms", "t_ms: Not a valid integer."),
        ("POST", f"/studies/{study.id}/dyads", {"code": 12}, "code", "code: Not a valid string."),
        ("POST", moments, {"t_ms": -1}, "t_ms",
         "t_ms: Must be greater than or equal to 0."),
        ("POST", moments, {"t_ms": 10, "ratings": {"hat": "x"}}, "ratings.hat",
         "ratings.hat: Not a valid integer."),
        ("POST", moments, {"t_ms": 10, "codes": [1, "a"]}, "codes.1",
         "codes.1: Not a valid integer."),
        ("POST", moments, {"t_ms": 10, "colour": "red"}, "colour", "colour: Unknown field."),
        ("POST", f"/recordings/{env['rec'].id}/recall-sessions", {"mode": "self"},
         "participant_id", "participant_id: Missing data for required field."),
    ]  # fmt: skip
    for method, url, body, field, message in cases:
        resp = call(method, url, json=body)
        assert resp.status_code == 422, (url, body, resp.json)
        assert resp.json == {"error": {"code": "invalid", "message": message, "field": field}}
    assert db.scalar(select(func.count()).select_from(Moment)) == 1  # nothing was saved
    # what the domain always took stays accepted: a whole float, null for "none"
    body = {"t_ms": 1500.0, "end_ms": None, "text": None, "codes": None, "ratings": {"hat": None}}
    resp = call("POST", moments, json=body)
    assert resp.status_code == 201, resp.json
    assert (resp.json["t_ms"], resp.json["text"], resp.json["codes"]) == (1500, "", [])
    assert resp.json["ratings"] == {}
    for body in ("[1, 2]", "not json"):
        resp = call("POST", moments, data=body, content_type="application/json")
        assert resp.status_code == 422
        assert resp.json["error"]["message"] == (
            "Send a JSON object with Content-Type: application/json."
        )


def test_multipart_input_is_checked_by_its_schema(env) -> None:
    call = env["call"]
    resp = call("POST", f"/dyads/{env['dyad'].id}/recordings", data={"session_label": "S2"})
    assert resp.status_code == 422
    assert resp.json["error"] == {
        "code": "invalid",
        "message": "Send the recording as multipart/form-data field 'file'.",
        "field": "file",
    }
    form = {"participant_id": "seven", "file": (io.BytesIO(b"start_ms,text\n1,x\n"), "m.csv")}
    resp = call("POST", f"/recordings/{env['rec'].id}/imports", data=form)
    assert (resp.status_code, resp.json["error"]["field"]) == (422, "participant_id")


def test_permission_is_checked_before_the_body(env, db, make_user) -> None:
    """An outsider learns nothing from a 422: a bad body to a study not theirs is 404, and a
    viewer's bad body is 403, exactly as a good one."""
    study = env["study"]
    viewer, outsider = make_user("viewer@example.org"), make_user("outsider@example.org")
    db.add(Membership(study_id=study.id, user_id=viewer.id, role="viewer"))
    db.commit()
    for who, status in ((outsider, 404), (viewer, 403)):
        headers = {"Authorization": f"Bearer {api_token(db, who)}"}
        for body in ({"alignment_tolerance_ms": "x"}, {"name": "Fine"}, "not json"):
            url = f"/api/v1/studies/{study.id}"
            if isinstance(body, str):
                resp = env["client"].patch(url, data=body, headers=headers)
            else:
                resp = env["client"].patch(url, json=body, headers=headers)
            assert resp.status_code == status, (who.email, body)
    db.expire_all()
    assert db.get(Study, study.id).name != "Fine"


def test_a_device_token_needs_no_body_without_a_pin(env, app, db, owner) -> None:
    """The device exchange reads its optional body only for a PIN-protected link."""
    rec = env["rec"]
    client_p = env["dyad"].participant("client")
    _, token = recall.create_session(db, rec, client_p, "self", owner, days=14)
    db.commit()
    http = app.test_client()
    resp = http.post("/api/v1/recall/devices", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, resp.json
    assert resp.json["device_token"].startswith("ipd_")


def test_the_document_is_generated_from_the_schemas(env) -> None:
    from ipr.web import schemas

    doc = env["doc"]
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/api/v1"}]
    assert documented(doc, "Study") == set(schemas.StudySchema().fields)
    assert documented(doc, "MomentIn") == set(schemas.MomentIn().fields)
    post = doc["paths"]["/studies"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/StudyCreateIn"}
    assert doc["components"]["schemas"]["StudyCreateIn"]["required"] == ["name"]
    assert doc["components"]["schemas"]["Recording"]["properties"]["media_url"]["type"] == [
        "string",
        "null",
    ]
    assert "default" not in post["responses"]  # every answer is listed, no catch-all
    assert sorted(post["responses"]) == ["201", "401", "422", "429"]
