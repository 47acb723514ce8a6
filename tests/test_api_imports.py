"""The import API: same validation and outcome as the import form, answered in JSON."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from ipr import studies
from ipr.models import AuditEvent, Membership, Moment, RecallSession
from tests.conftest import api_token
from tests.test_exports_app import _recording


@pytest.fixture
def ready(app, db, owner, study, sample_mp4):
    dyad = studies.create_dyad(db, study, owner, "01")
    db.commit()
    rec = _recording(app, db, study, dyad, "Session 5", sample_mp4)
    client = app.test_client()
    token = api_token(db, owner)

    def post(form: dict, bearer: str | None = token):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return client.post(
            f"/api/v1/recordings/{rec.id}/imports", data=form, headers=headers,
            content_type="multipart/form-data",
        )  # fmt: skip

    return {"rec": rec, "dyad": dyad, "post": post}


def test_csv_import_through_the_api(ready, db, owner) -> None:
    client = ready["dyad"].participant("client")
    data = b"start_ms,end_ms,text,rating_hat\r\n1000,,heard,8\r\n2500,4000,a span,3\r\n"
    resp = ready["post"]({"participant_id": str(client.id), "file": (io.BytesIO(data), "p.csv")})
    assert resp.status_code == 201, resp.json
    rs = db.scalar(select(RecallSession).where(RecallSession.recording_id == ready["rec"].id))
    assert resp.json == {
        "recall_session_id": rs.id, "participant_id": client.id, "format": "csv", "imported": 2,
    }  # fmt: skip
    rows = db.execute(
        select(Moment.t_ms, Moment.end_ms, Moment.text, Moment.ratings)
        .where(Moment.recall_session_id == rs.id)
        .order_by(Moment.t_ms)
    ).all()
    assert [tuple(r) for r in rows] == [
        (1000, None, "heard", {"hat": 8}), (2500, 4000, "a span", {"hat": 3}),
    ]  # fmt: skip
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "moments_imported"))
    assert (event.user_id, event.details) == (
        owner.id, {"format": "csv", "count": 2, "participant": "C01"},
    )  # fmt: skip


def test_problems_are_listed_and_nothing_is_imported(ready, db) -> None:
    client = ready["dyad"].participant("client")
    data = b"start_ms,text,rating_hat\r\n1000,fine,5\r\nsoon,bad time,5\r\n2000,bad rating,12\r\n"
    resp = ready["post"]({"participant_id": str(client.id), "file": (io.BytesIO(data), "p.csv")})
    assert resp.status_code == 422
    error = resp.json["error"]
    assert error["code"] == "import_invalid"
    assert [p.split(":")[0] for p in error["problems"]] == ["line 3", "line 4"]
    assert db.scalar(select(RecallSession)) is None


def test_missing_fields_tokens_and_roles(ready, db, make_user) -> None:
    post, client = ready["post"], ready["dyad"].participant("client")
    csv = b"start_ms,text\r\n1000,x\r\n"
    resp = post({"file": (io.BytesIO(csv), "p.csv")})
    assert (resp.status_code, resp.json["error"]["field"]) == (422, "participant_id")
    resp = post({"participant_id": str(client.id)})
    assert (resp.status_code, resp.json["error"]["field"]) == (422, "file")
    assert post({"participant_id": str(client.id)}, bearer=None).status_code == 401
    stranger = api_token(db, make_user("stranger@example.org"))
    form = {"participant_id": str(client.id), "file": (io.BytesIO(csv), "p.csv")}
    assert post(form, bearer=stranger).status_code == 404
    viewer = make_user("viewer@example.org")
    db.add(Membership(study_id=ready["rec"].study_id, user_id=viewer.id, role="viewer"))
    db.commit()
    form = {"participant_id": str(client.id), "file": (io.BytesIO(csv), "p.csv")}
    assert post(form, bearer=api_token(db, viewer)).status_code == 403
    assert db.scalar(select(RecallSession)) is None


def test_documented_in_openapi(app) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").json
    op = doc["paths"]["/recordings/{recording_id}/imports"]["post"]
    assert sorted(op["responses"]) == ["201", "401", "403", "404", "422", "429"]
