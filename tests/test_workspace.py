"""The researcher's workspace: studies, dyads, codebook, scales, instructions, members."""

from __future__ import annotations

import html
import re
import uuid

import pytest
from sqlalchemy import select

from ipr.models import (
    ApiToken,
    AuditEvent,
    Clip,
    Code,
    Dyad,
    Membership,
    Moment,
    RatingScale,
    RecallSession,
    Recording,
    Study,
    Upload,
    User,
)
from ipr.studies import suggest_dyad_code
from tests.conftest import Web, api_token


def errors(resp) -> list[str]:
    found = re.findall(r'class="error" role="alert">([^<]*)<', resp.get_data(as_text=True))
    return [html.unescape(e) for e in found]


def test_create_study_gives_owner_and_default_hat_scale(owner_web, study, owner) -> None:
    assert study.memberships[0].user_id == owner.id and study.memberships[0].role == "owner"
    (hat,) = study.scales
    assert (hat.key, hat.min_value, hat.max_value) == ("hat", 1, 9)
    assert hat.labels["1"] == "Extremely hindering" and hat.labels["9"] == "Extremely helpful"
    page = owner_web.get("/studies").get_data(as_text=True)
    assert "Recall study" in page


def test_create_study_by_htmx_navigates_to_it(owner_web, db) -> None:
    resp = owner_web.post("/studies", {"name": "Pilot"}, htmx=True)
    study = db.scalar(select(Study).where(Study.name == "Pilot"))
    assert resp.status_code == 204 and resp.headers["HX-Location"] == f"/studies/{study.id}"
    resp = owner_web.post("/studies", {"name": "  "}, htmx=True)
    assert resp.status_code == 422 and errors(resp) == ["The name cannot be empty."]


def test_fragment_for_htmx_full_page_otherwise(owner_web, study) -> None:
    page = owner_web.get(f"/studies/{study.id}/codebook")
    frag = owner_web.get(f"/studies/{study.id}/codebook", htmx=True)
    assert page.status_code == frag.status_code == 200
    assert b"<html" in page.data and b'id="codebook"' in page.data
    assert b"<html" not in frag.data and frag.data.lstrip().startswith(b'<section id="codebook"')
    assert "HX-Request" in frag.headers["Vary"]


def test_dyad_creates_therapist_and_client_codes(owner_web, study, db) -> None:
    resp = owner_web.post(f"/studies/{study.id}/dyads", {"code": "05"}, htmx=True)
    assert resp.status_code == 200
    dyad = db.scalar(select(Dyad).where(Dyad.study_id == study.id))
    assert dyad.code == "05"
    assert {(p.role, p.code) for p in dyad.participants} == {
        ("therapist", "T05"),
        ("client", "C05"),
    }
    html = resp.get_data(as_text=True)
    assert 'value="T05"' in html and 'value="C05"' in html
    # a duplicate dyad code is refused with a message, nothing changes
    resp = owner_web.post(f"/studies/{study.id}/dyads", {"code": "05"}, htmx=True)
    assert resp.status_code == 422 and errors(resp) == ["There is already a dyad 05 in this study."]
    # participant codes are editable and unique within the study
    therapist = dyad.participant("therapist")
    resp = owner_web.post(f"/participants/{therapist.id}", {"code": "TH-A"}, htmx=True)
    assert resp.status_code == 200
    db.expire_all()
    assert dyad.participant("therapist").code == "TH-A"
    client = dyad.participant("client")
    resp = owner_web.post(f"/participants/{client.id}", {"code": "TH-A"}, htmx=True)
    assert resp.status_code == 422
    assert errors(resp) == ["The code TH-A is already used in this study."]


def test_new_dyad_field_suggests_the_next_free_code_in_the_study_pattern(owner_web, study) -> None:
    def placeholder() -> str:
        page = owner_web.get(f"/studies/{study.id}").get_data(as_text=True)
        return re.search(r'id="new-dyad-code"[^>]*placeholder="([^"]*)"', page).group(1)

    assert placeholder() == "e.g. 01"  # no dyads yet
    for code in ("01", "02", "03"):
        owner_web.post(f"/studies/{study.id}/dyads", {"code": code})
    assert placeholder() == "e.g. 04"  # not 03, which exists
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "P-009"})
    assert placeholder() == "e.g. P-010"  # the pattern of the latest numbered code
    # after a save the section re-renders with the suggestion moved on
    resp = owner_web.post(f"/studies/{study.id}/dyads", {"code": "P-010"}, htmx=True)
    assert 'placeholder="e.g. P-011"' in resp.get_data(as_text=True)


def test_suggested_dyad_code_is_free_with_its_participant_codes() -> None:
    assert suggest_dyad_code([]) == "01"
    assert suggest_dyad_code(["01", "02", "03"]) == "04"
    assert suggest_dyad_code(["01", "05", "02"]) == "06"  # after the highest, not the count
    assert suggest_dyad_code(["7", "8", "9"]) == "10"
    assert suggest_dyad_code(["001", "002"]) == "003"
    assert suggest_dyad_code(["01", "P-1", "02"]) == "03"  # the latest numbered code's pattern
    assert suggest_dyad_code(["pilot", "intake"]) == "01"
    assert suggest_dyad_code(["01", "03"], frozenset({"T02", "C03"})) == "04"
    assert suggest_dyad_code(["01"], frozenset({"T02"})) == "03"  # T02 was given to another


def test_codebook_editor(owner_web, study, db) -> None:
    url = f"/studies/{study.id}/codes"
    resp = owner_web.post(url, {"name": "Insight", "colour": "#1F77B4", "shortcut": "I"}, htmx=True)
    assert resp.status_code == 200
    code = db.scalar(select(Code).where(Code.study_id == study.id))
    assert (code.name, code.colour, code.shortcut) == ("Insight", "#1f77b4", "i")
    resp = owner_web.post(url, {"name": "Other", "colour": "#000000", "shortcut": "i"}, htmx=True)
    assert resp.status_code == 422 and "already used by 'Insight'" in errors(resp)[0]
    resp = owner_web.post(url, {"name": "Space", "colour": "#000000", "shortcut": "m"}, htmx=True)
    assert resp.status_code == 422 and "used by the player" in errors(resp)[0]
    resp = owner_web.post(url, {"name": "Bad", "colour": "red"}, htmx=True)
    assert resp.status_code == 422 and errors(resp) == ["A colour is written like #1f77b4."]
    resp = owner_web.post(
        f"/codes/{code.id}",
        {"name": "Insight moment", "colour": "#ff0000", "shortcut": ""},
        htmx=True,
    )
    assert resp.status_code == 200
    db.expire_all()
    assert (code.name, code.colour, code.shortcut) == ("Insight moment", "#ff0000", None)
    assert owner_web.post(f"/codes/{code.id}/delete", htmx=True).status_code == 200
    db.expire_all()
    assert db.scalars(select(Code)).all() == []


def test_scale_editor(owner_web, study, db) -> None:
    resp = owner_web.post(
        f"/studies/{study.id}/scales",
        {"name": "How close did you feel?", "min_value": "1", "max_value": "5"},
        htmx=True,
    )
    assert resp.status_code == 200
    scale = db.scalar(select(RatingScale).where(RatingScale.key == "how_close_did_you_feel"))
    assert (scale.min_value, scale.max_value, scale.position) == (1, 5, 1)
    resp = owner_web.post(
        f"/scales/{scale.id}",
        {
            "name": "Closeness",
            "min_value": "0",
            "max_value": "4",
            "label_0": "Distant",
            "label_4": "Very close",
            "label_2": "",
        },
        htmx=True,
    )
    assert resp.status_code == 200
    db.expire_all()
    assert (scale.name, scale.min_value, scale.max_value) == ("Closeness", 0, 4)
    assert scale.labels == {"0": "Distant", "4": "Very close"}
    resp = owner_web.post(
        f"/scales/{scale.id}", {"name": "X", "min_value": "5", "max_value": "4"}, htmx=True
    )
    assert resp.status_code == 422 and errors(resp) == [
        "The lowest value must be below the highest."
    ]
    db.expire_all()
    assert scale.max_value == 4  # unchanged
    assert owner_web.post(f"/scales/{scale.id}/delete", htmx=True).status_code == 200


def test_instructions_and_language(owner_web, study, db) -> None:
    resp = owner_web.post(
        f"/studies/{study.id}/instructions",
        {"instructions": "Watch calmly.\nStop whenever you like.", "language": "nb"},
        htmx=True,
    )
    assert resp.status_code == 200
    db.expire_all()
    assert study.instructions == "Watch calmly.\nStop whenever you like."
    assert study.language == "nb"


def test_settings_speak_seconds_store_milliseconds(owner_web, study, db) -> None:
    resp = owner_web.post(
        f"/studies/{study.id}/settings",
        {
            "name": "Recall study",
            "alignment_tolerance_ms": "2.5",
            "segmentation_strategy": "scenes",
            "segment_fixed_ms": "240",
            "segment_min_ms": "30",
            "segment_max_ms": "600",
            "participants_can_code": "on",
        },
        htmx=True,
    )
    assert resp.status_code == 200, errors(resp)
    db.expire_all()
    assert study.alignment_tolerance_ms == 2500
    assert (study.segment_fixed_ms, study.segment_min_ms, study.segment_max_ms) == (
        240_000,
        30_000,
        600_000,
    )
    assert study.segmentation_strategy == "scenes"
    assert study.participants_can_code is True and study.allow_early_reveal is False


def test_members_add_change_remove(owner_web, study, make_user, db) -> None:
    other = make_user("colleague@example.org")
    url = f"/studies/{study.id}/members"
    resp = owner_web.post(url, {"email": "colleague@example.org", "role": "editor"}, htmx=True)
    assert resp.status_code == 200
    m = db.scalar(select(Membership).where(Membership.user_id == other.id))
    assert m.role == "editor"
    resp = owner_web.post(url, {"email": "ghost@example.org", "role": "viewer"}, htmx=True)
    assert resp.status_code == 422 and "No researcher has that email" in errors(resp)[0]
    assert owner_web.post(f"/members/{m.id}/role", {"role": "viewer"}, htmx=True).status_code == 200
    db.expire_all()
    assert m.role == "viewer"
    own = db.scalar(select(Membership).where(Membership.role == "owner"))
    resp = owner_web.post(f"/members/{own.id}/role", {"role": "viewer"}, htmx=True)
    assert resp.status_code == 422 and "at least one owner" in errors(resp)[0]
    assert owner_web.post(f"/members/{m.id}/delete", htmx=True).status_code == 200
    db.expire_all()
    assert db.scalar(select(Membership).where(Membership.user_id == other.id)) is None


@pytest.fixture
def populated(owner_web, study, db):
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"})
    owner_web.post(f"/studies/{study.id}/codes", {"name": "Insight", "colour": "#123456"})
    db.expire_all()
    dyad = study.dyads[0]
    rec = Recording(
        study_id=study.id,
        dyad_id=dyad.id,
        session_label="Session 1",
        storage_key=str(uuid.uuid4()),
        status="ready",
        duration_ms=60_000,
    )
    rec.clips.append(Clip(study_id=study.id, index=1, start_ms=0, end_ms=60_000))
    db.add(rec)
    db.add(
        Upload(
            id=uuid.uuid4().hex, study_id=study.id, dyad_id=dyad.id, session_label="S2", length=10
        )
    )
    db.flush()
    rs = RecallSession(
        study_id=study.id,
        recording_id=rec.id,
        participant_id=dyad.participants[0].id,
        mode="researcher",
    )
    db.add(rs)
    db.flush()
    moment = Moment(study_id=study.id, recall_session_id=rs.id, t_ms=1000, text="private")
    db.add(moment)
    db.commit()
    api_token(db, study.memberships[0].user)
    return {
        "rs_id": rs.id,
        "moment_id": moment.id,
        "token": "not-a-real-token",
        "recording_id": rec.id,
        "clip_id": rec.clips[0].id,
        "index": 1,
        "name": "playable.mp4",
        "ext": "mp4",
        "upload_id": db.scalar(select(Upload.id)),
        "study_id": study.id,
        "dyad_id": dyad.id,
        "participant_id": dyad.participants[0].id,
        "code_id": study.codes[0].id,
        "scale_id": study.scales[0].id,
        "membership_id": study.memberships[0].id,
        "fmt": "csv",
        "token_id": db.scalar(select(ApiToken.id)),  # the owner's: others' revoke answers 404
        "take": "0" * 32,  # an interview take's name (ipr.interview_takes): none exists
    }


# Routes that are not study-scoped, and so are exempt from the non-member test.
UNSCOPED = {
    "static",
    "auth.login",
    "auth.login_post",
    "auth.logout",
    "studies.home",
    "studies.index",
    "studies.create",
    "api.openapi",
    "api.list_studies",
    "api.create_study",
    "exports.tokens",  # your own API tokens, no study object
    "exports.create_token",
    "recall.enter",  # a link token, not an id: unknown tokens answer 401 (tests/test_recall.py)
    "auth.second_step",  # the login's second step, before any study is reachable
    "auth.account",  # your own account: password and two-factor (tests/test_accounts.py)
    "auth.change_password",
    "auth.begin_2fa",
    "auth.confirm_2fa",
    "auth.new_codes_2fa",
    "auth.disable_2fa",
    "api.recall_device",  # an invitation token, not an id: anything else is 401 (test_door.py)
    "ops.healthz",  # probes and the scrape: no study object (tests/test_ops.py)
    "ops.readyz",
    "ops.metrics_view",
    "ops.jobs_page",  # administrators only, every study's jobs (tests/test_ops.py)
    "ops.retry_job",
}


def scoped_routes(app, ids):
    """Every route that names a study-scoped object, with URLs built from real ids."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNSCOPED:
            continue
        values = {}
        for arg in rule.arguments:
            if arg == "section":
                values[arg] = "codebook"
            else:
                assert arg in ids, f"{rule.rule}: add {arg} to the permission test"
                values[arg] = ids[arg]
        url = rule.build(values)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, url))
    return out


def send(web: Web, method: str, url: str, *, htmx: bool):
    """Any request a browser could make, with a valid CSRF token and the tus header."""
    if method == "GET":
        return web.get(url, htmx=htmx)
    if web.csrf is None:
        web.get("/login")
    headers = {"X-CSRFToken": web.csrf, "Tus-Resumable": "1.0.0"}
    if htmx:
        headers["HX-Request"] = "true"
    if method == "PATCH":
        headers.update({"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        return web.client.open(url, method=method, headers=headers, data=b"x")
    if method == "POST" and url.endswith("/uploads"):
        headers.update({"Upload-Length": "10", "Upload-Metadata": "filename eC5tcDQ="})
    form = {"name": "changed", "code": "99", "role": "owner", "email": "someone@example.org"}
    return web.client.open(url, method=method, headers=headers, data=form)


def test_non_member_gets_404_everywhere(app, populated, make_user, db) -> None:
    make_user("outsider@example.org")
    outsider = Web(app)
    outsider.login("outsider@example.org")
    outsider_token = api_token(
        db, db.scalar(select(User).where(User.email == "outsider@example.org"))
    )
    routes = scoped_routes(app, populated)
    assert len(routes) >= 25
    for method, url in routes:
        if url.startswith("/api/"):
            resp = outsider.client.open(
                url,
                method=method,
                json={"name": "x", "code": "x"},
                headers={"Authorization": f"Bearer {outsider_token}"},
            )
            assert resp.status_code == 404, (method, url, resp.status_code)
            assert resp.json["error"]["code"] == "not_found"
            continue
        for htmx in (False, True):
            resp = send(outsider, method, url, htmx=htmx)
            assert resp.status_code == 404, (method, url, htmx, resp.status_code)
    # nothing changed and the outsider did not become a member
    db.expire_all()
    assert db.scalars(select(Membership.role)).all() == ["owner"]


def test_viewer_can_look_but_not_change(app, populated, make_user, owner_web, db) -> None:
    make_user("viewer@example.org")
    owner_web.post(
        f"/studies/{populated['study_id']}/members",
        {"email": "viewer@example.org", "role": "viewer"},
    )
    viewer = Web(app)
    viewer.login("viewer@example.org")
    page = viewer.get(f"/studies/{populated['study_id']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "You can view this study but not change it." in html
    assert "Add dyad" not in html and "Add code" not in html and "Add member" not in html
    for method, url in scoped_routes(app, populated):
        if method == "GET" or url.startswith(("/api/", "/account/")) or url.endswith("/pin"):
            continue  # the PIN form belongs to a participant's pending link, not to researchers
        resp = send(viewer, method, url, htmx=True)
        assert resp.status_code == 403, (method, url, resp.status_code)
    db.expire_all()
    study = db.get(Study, populated["study_id"])
    assert study.name == "Recall study" and [c.name for c in study.codes] == ["Insight"]
    assert len(study.dyads) == 1 and study.dyads[0].code == "01"
    # the audit trail is the owner's only
    assert viewer.get(f"/studies/{study.id}/audit").status_code == 403


def test_audit_trail_records_and_owner_sees_it(app, owner_web, study, make_user, db) -> None:
    make_user("colleague@example.org")
    owner_web.post(
        f"/studies/{study.id}/members", {"email": "colleague@example.org", "role": "editor"}
    )
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "07"})
    events = db.scalars(
        select(AuditEvent).where(AuditEvent.study_id == study.id).order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == ["study_created", "member_added", "dyad_created"]
    added = events[1]
    assert added.actor == "owner@example.org" and added.ip == "127.0.0.1"
    assert added.details == {"email": "colleague@example.org", "role": "editor"}
    logins = db.scalars(select(AuditEvent).where(AuditEvent.action == "login")).all()
    assert [e.object_id for e in logins] == ["owner@example.org"]
    page = owner_web.get(f"/studies/{study.id}/audit").get_data(as_text=True)
    assert "member added" in page and "colleague@example.org" in page and "dyad created" in page
