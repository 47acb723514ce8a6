"""The JSON API: Bearer tokens, the permission rule, the documented core calls."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ipr.models import ApiToken, Study
from tests.conftest import api_token


@pytest.fixture
def api(any_db_url, tmp_path):
    from tests.conftest import make_app

    a = make_app(tmp_path / "api", any_db_url)
    session = a.extensions["ipr_db"].session()
    from ipr import auth

    users = {}
    for email in ("alice@example.org", "bob@example.org"):
        users[email] = auth.create_user(session, email, "a long password", "researcher")
    session.commit()
    tokens = {e: api_token(session, u) for e, u in users.items()}
    client = a.test_client()

    def call(method, url, who="alice@example.org", **kw):
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
        headers.update(kw.pop("headers", {}))
        return client.open(url, method=method, headers=headers, **kw)

    call.session = session
    call.tokens = tokens
    yield call
    session.close()
    a.extensions["ipr_db"].dispose()


def test_no_token_is_401(api) -> None:
    for url in ("/api/v1/studies", "/api/v1/studies/1", "/api/v1/dyads/1"):
        resp = api("GET", url, who=None)
        assert resp.status_code == 401
        assert resp.json["error"]["code"] == "unauthorized"
    resp = api("GET", "/api/v1/studies", who=None, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401


def test_cookie_session_is_not_accepted_by_the_api(app, owner_web) -> None:
    resp = owner_web.client.get("/api/v1/studies")
    assert resp.status_code == 401


def test_create_study_and_dyad(api) -> None:
    resp = api("POST", "/api/v1/studies", json={"name": "API study"})
    assert resp.status_code == 201
    study = resp.json
    assert study["name"] == "API study" and study["role"] == "owner"
    assert [s["key"] for s in study["scales"]] == ["hat"]
    resp = api("POST", f"/api/v1/studies/{study['id']}/dyads", json={"code": "12"})
    assert resp.status_code == 201
    dyad = resp.json
    assert dyad["code"] == "12"
    assert dyad["therapist"]["code"] == "T12" and dyad["client"]["code"] == "C12"
    assert isinstance(dyad["therapist"]["id"], int) and isinstance(dyad["client"]["id"], int)
    listed = api("GET", f"/api/v1/studies/{study['id']}/dyads").json["dyads"]
    assert [d["id"] for d in listed] == [dyad["id"]]
    parts = api("GET", f"/api/v1/studies/{study['id']}/participants").json["participants"]
    assert sorted(p["code"] for p in parts) == ["C12", "T12"]
    resp = api("PATCH", f"/api/v1/participants/{dyad['client']['id']}", json={"code": "C12b"})
    assert resp.status_code == 200 and resp.json["code"] == "C12b"
    resp = api("PATCH", f"/api/v1/studies/{study['id']}", json={"alignment_tolerance_ms": 3000})
    assert resp.status_code == 200 and resp.json["alignment_tolerance_ms"] == 3000
    resp = api("GET", f"/api/v1/dyads/{dyad['id']}")
    assert resp.json["client"]["code"] == "C12b"


def test_dyad_code_defaults_to_next_number(api) -> None:
    sid = api("POST", "/api/v1/studies", json={"name": "S"}).json["id"]
    first = api("POST", f"/api/v1/studies/{sid}/dyads", json={}).json
    second = api("POST", f"/api/v1/studies/{sid}/dyads", json={}).json
    assert (first["code"], first["therapist"]["code"]) == ("01", "T01")
    assert (second["code"], second["client"]["code"]) == ("02", "C02")


def test_non_member_gets_404(api) -> None:
    sid = api("POST", "/api/v1/studies", json={"name": "Private"}).json["id"]
    dyad = api("POST", f"/api/v1/studies/{sid}/dyads", json={"code": "1"}).json
    pid = dyad["therapist"]["id"]
    for method, url in [
        ("GET", f"/api/v1/studies/{sid}"),
        ("PATCH", f"/api/v1/studies/{sid}"),
        ("GET", f"/api/v1/studies/{sid}/dyads"),
        ("POST", f"/api/v1/studies/{sid}/dyads"),
        ("GET", f"/api/v1/dyads/{dyad['id']}"),
        ("PATCH", f"/api/v1/dyads/{dyad['id']}"),
        ("GET", f"/api/v1/studies/{sid}/participants"),
        ("GET", f"/api/v1/participants/{pid}"),
        ("PATCH", f"/api/v1/participants/{pid}"),
    ]:
        resp = api(method, url, who="bob@example.org", json={"name": "x", "code": "x"})
        missing = api(
            method,
            url.replace(str(sid), "999999")
            .replace(str(dyad["id"]), "999999")
            .replace(str(pid), "999999"),
            who="bob@example.org",
            json={"code": "x"},
        )
        assert resp.status_code == 404, (method, url)
        assert resp.json == missing.json  # indistinguishable from a missing object
    assert api("GET", "/api/v1/studies", who="bob@example.org").json == {"studies": []}


def test_viewer_is_read_only(api) -> None:
    from ipr import studies
    from ipr.models import User

    sid = api("POST", "/api/v1/studies", json={"name": "Shared"}).json["id"]
    s = api.session
    study = s.get(Study, sid)
    alice = s.scalar(select(User).where(User.email == "alice@example.org"))
    studies.add_member(s, study, alice, "bob@example.org", "viewer")
    s.commit()
    assert api("GET", f"/api/v1/studies/{sid}", who="bob@example.org").json["role"] == "viewer"
    resp = api("PATCH", f"/api/v1/studies/{sid}", who="bob@example.org", json={"name": "Mine"})
    assert resp.status_code == 403
    resp = api("POST", f"/api/v1/studies/{sid}/dyads", who="bob@example.org", json={"code": "3"})
    assert resp.status_code == 403
    assert api("GET", f"/api/v1/studies/{sid}").json["name"] == "Shared"


def test_validation_errors_are_422_with_a_message(api) -> None:
    resp = api("POST", "/api/v1/studies", json={"name": ""})
    assert resp.status_code == 422
    assert resp.json["error"]["message"] == "The name cannot be empty."
    resp = api("POST", "/api/v1/studies", data="not json", content_type="text/plain")
    assert resp.status_code == 422
    sid = api("POST", "/api/v1/studies", json={"name": "S"}).json["id"]
    resp = api("PATCH", f"/api/v1/studies/{sid}", json={"colour_of_sky": "blue"})
    assert resp.status_code == 422 and "Unknown study setting" in resp.json["error"]["message"]


def test_revoked_token_is_refused(api) -> None:
    from ipr.models import utcnow

    row = api.session.scalar(select(ApiToken))
    row.revoked_at = utcnow()
    api.session.commit()
    assert api("GET", "/api/v1/studies").status_code == 401


def test_openapi_document_lists_every_api_route(app) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "put", "delete"}
    }
    import re

    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "api.openapi":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1") :])
        for m in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, m))
    assert served == documented
