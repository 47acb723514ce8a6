"""The media and clip URLs the JSON API hands out work with the API's Bearer token."""

from __future__ import annotations

import pytest

from ipr import auth
from ipr.models import Clip, Membership
from tests.conftest import MEDIA_DATA as DATA
from tests.conftest import api_token


@pytest.fixture
def scripted(app, db, owner, rec):
    """The ready recording with one clip row, its analysis readable, and the owner's token."""
    db.add(Clip(study_id=rec.study_id, recording_id=rec.id, index=1, start_ms=0, end_ms=1000))
    db.commit()
    storage = app.extensions["ipr_storage"]
    storage.derived(rec.storage_key, "analysis.json").write_text("{}")
    return {"rec": rec, "token": api_token(db, owner), "client": app.test_client()}


def advertised(scripted) -> list[str]:
    client, rec, token = scripted["client"], scripted["rec"], scripted["token"]
    body = client.get(
        f"/api/v1/recordings/{rec.id}", headers={"Authorization": f"Bearer {token}"}
    ).json
    return [body["media_url"], *(c["url"] for c in body["clips"])]


def test_api_urls_answer_ranges_with_the_bearer_token(scripted) -> None:
    rec, client = scripted["rec"], scripted["client"]
    urls = advertised(scripted)
    assert urls == [
        f"/recordings/{rec.id}/media/playable.mp4",
        f"/recordings/{rec.id}/clips/1.mp4",
    ]
    for url in urls:
        resp = client.get(
            url, headers={"Authorization": f"Bearer {scripted['token']}", "Range": "bytes=0-1023"}
        )
        assert resp.status_code == 206, url
        assert resp.headers["Content-Range"] == "bytes 0-999/1000"
        assert resp.get_data() == DATA
        mid = client.get(
            url, headers={"Authorization": f"Bearer {scripted['token']}", "Range": "bytes=10-19"}
        )
        assert (mid.status_code, mid.get_data()) == (206, DATA[10:20])
    download = client.get(
        f"/recordings/{rec.id}/clips/1/download",
        headers={"Authorization": f"Bearer {scripted['token']}"},
    )
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].endswith('filename="05_Session-3_clip001.mp4"')


def test_bad_tokens_and_strangers(scripted, db, make_user, app) -> None:
    client, rec = scripted["client"], scripted["rec"]
    url = f"/recordings/{rec.id}/media/playable.mp4"
    assert client.get(url).status_code == 302  # a browser without login goes to the login page
    wrong = client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401
    revoked_row, revoked = auth.create_api_token(db, make_user("gone@example.org"), "x")
    db.add(Membership(study_id=rec.study_id, user_id=revoked_row.user_id, role="viewer"))
    revoked_row.revoked_at = revoked_row.created_at
    db.commit()
    assert client.get(url, headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
    stranger = api_token(db, make_user("stranger@example.org"))
    for rest in ("media/playable.mp4", "clips/1.mp4", "clips/1/download"):
        resp = client.get(
            f"/recordings/{rec.id}/{rest}",
            headers={"Authorization": f"Bearer {stranger}", "Range": "bytes=0-9"},
        )
        assert resp.status_code == 404, rest


def test_viewer_token_reads_media(scripted, db, make_user) -> None:
    client, rec = scripted["client"], scripted["rec"]
    viewer = make_user("viewer@example.org")
    db.add(Membership(study_id=rec.study_id, user_id=viewer.id, role="viewer"))
    db.commit()
    resp = client.get(
        f"/recordings/{rec.id}/clips/1.mp4",
        headers={"Authorization": f"Bearer {api_token(db, viewer)}", "Range": "bytes=0-3"},
    )
    assert (resp.status_code, resp.get_data()) == (206, DATA[:4])


def test_bearer_with_x_accel(scripted, app) -> None:
    app.config["X_ACCEL_REDIRECT"] = "/protected-media/"
    rec = scripted["rec"]
    for url, target in zip(advertised(scripted), ["playable.mp4", "clips/001.mp4"], strict=True):
        resp = scripted["client"].get(
            url, headers={"Authorization": f"Bearer {scripted['token']}", "Range": "bytes=0-1023"}
        )
        assert resp.status_code == 200
        assert resp.headers["X-Accel-Redirect"] == (
            f"/protected-media/{rec.storage_key}/derived/{target}"
        )
        assert resp.get_data() == b""
