"""Bounded bodies, strict header numbers, merged ranges (issue 10 part 3)."""

from __future__ import annotations

import io
import os

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from ipr.models import Dyad, Recording, VoiceNote
from ipr.web import limits
from tests.conftest import MEDIA_DATA, api_token, jpost, participant
from tests.test_tus import call, create, patch


@pytest.fixture
def dyad(owner_web, study, db) -> Dyad:
    assert owner_web.post(f"/studies/{study.id}/dyads", {"code": "05"}).status_code == 302
    return db.scalar(select(Dyad).where(Dyad.study_id == study.id))


def _files_under(root) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


# --- bodies ------------------------------------------------------------------------------------


def test_every_request_body_is_capped_by_max_content_length(app, owner, db) -> None:
    token = api_token(db, owner)
    assert app.config["MAX_CONTENT_LENGTH"] == 2 * 1024**2
    resp = app.test_client().post(
        "/api/v1/studies",
        data=b'{"name": "' + b"x" * (2 * 1024**2) + b'"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 413


def test_the_api_upload_obeys_ipr_upload_max_bytes(app, owner, db, dyad) -> None:
    app.config["UPLOAD_MAX_BYTES"] = 1000
    token = api_token(db, owner)
    client = app.test_client()
    root = app.config["RECORDINGS_DIR"]
    before = _files_under(root)

    def upload(size: int):
        return client.post(
            f"/api/v1/dyads/{dyad.id}/recordings",
            data={"file": (io.BytesIO(b"v" * size), "s.mp4"), "session_label": "S1"},
            headers={"Authorization": f"Bearer {token}"},
        )

    resp = upload(1001)  # within the multipart slack: refused while copying the part
    assert resp.status_code == 413
    assert resp.json["error"]["message"] == (
        "The recording is larger than the 1000 bytes this server accepts."
    )
    assert upload(200_000).status_code == 413  # past the body cap: refused before reading
    assert db.scalar(select(func.count()).select_from(Recording)) == 0
    assert _files_under(root) == before


def test_save_bounded_stops_at_the_limit_and_leaves_no_file(tmp_path) -> None:
    path = tmp_path / "part"
    part = FileStorage(io.BytesIO(b"a" * 3 * limits.CHUNK), "x")
    with pytest.raises(limits.BodyTooLarge):
        limits.save_bounded(part, path, limits.CHUNK + 1, "voice note")
    assert not path.exists()
    assert part.stream.tell() == 2 * limits.CHUNK  # stopped one chunk past the limit
    ok = FileStorage(io.BytesIO(b"b" * 10), "x")
    assert limits.save_bounded(ok, path, 10) == 10 and path.read_bytes() == b"b" * 10


def test_a_refused_voice_note_writes_no_file_and_keeps_the_old_one(
    app, db, recall_env, monkeypatch
) -> None:
    app.config["VOICE_NOTE_MAX_BYTES"] = 1000  # the 20 MB limit, scaled down
    created = recall_env["invite"]("client")
    web = participant(app, created["url"])
    base = f"/recall/{created['id']}/moments"
    mid = jpost(web, base, {"t_ms": 100}).json["id"]
    root = app.config["RECORDINGS_DIR"]
    before = _files_under(root)

    def send(size: int):
        return web.client.post(
            f"{base}/{mid}/voice",
            headers={"X-CSRFToken": web.csrf},
            data={"audio": (io.BytesIO(b"\x1aE" + b"v" * (size - 2)), "n.webm", "audio/webm")},
        )

    kept = send(1000)
    assert kept.status_code == 201
    note = db.scalar(select(VoiceNote))
    files = _files_under(root)
    assert len(files) == len(before) + 1
    resp = send(1001)
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "too_large"
    assert send(limits.FORM_SLACK + 2000).status_code == 413  # over the endpoint's body cap
    wrong = web.client.post(
        f"{base}/{mid}/voice", headers={"X-CSRFToken": web.csrf}, data={"other": "x"}
    )
    assert wrong.status_code == 422
    # every refusal left the earlier note as it was, and no partial file
    db.expire_all()
    assert [n.id for n in db.scalars(select(VoiceNote))] == [note.id]
    assert _files_under(root) == files
    got = web.client.get(f"{base}/{mid}/voice")
    assert got.status_code == 200 and got.data == b"\x1aE" + b"v" * 998


# --- header numbers ----------------------------------------------------------------------------


BAD_NUMBERS = ["²", "１２", "٣", "12a", "-5", "+5", " ", "9" * 19, "9" * 5000]


def test_upload_length_and_offset_are_ascii_digits_of_bounded_length(owner_web, dyad) -> None:
    for value in BAD_NUMBERS:
        resp = call(owner_web, "POST", f"/dyads/{dyad.id}/uploads", **{"Upload-Length": value})
        assert (resp.status_code, resp.get_data(as_text=True)) == (
            400,
            "Upload-Length must be a whole number of bytes (1 to 18 ASCII digits).",
        ), value
    url = create(owner_web, dyad.id, 10).headers["Location"]
    for value in BAD_NUMBERS:
        resp = call(
            owner_web, "PATCH", url, b"0123456789",
            **{"Upload-Offset": value, "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        assert (resp.status_code, resp.get_data(as_text=True)) == (
            400,
            "Upload-Offset must be a whole number of bytes (1 to 18 ASCII digits).",
        ), value
    assert patch(owner_web, url, 0, b"0123456789").status_code == 204


def test_header_number_accepts_plain_digits() -> None:
    assert limits.header_number("X", "0") == 0
    assert limits.header_number("X", "9" * 18) == 10**18 - 1
    with pytest.raises(limits.BadHeaderNumber):
        limits.header_number("X", None)


# --- ranges ------------------------------------------------------------------------------------


def _media(rec: Recording) -> str:
    return f"/recordings/{rec.id}/media/playable.mp4"


def test_overlapping_ranges_are_merged_never_more_than_the_file(owner_web, rec) -> None:
    resp = owner_web.client.get(_media(rec), headers={"Range": "bytes=" + ",".join(["0-"] * 16)})
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == "bytes 0-999/1000"
    assert resp.get_data() == MEDIA_DATA


TOUCHING = [
    ("bytes=0-9,10-19", "bytes 0-19/1000", 0, 20),  # adjacent
    ("bytes=5-50,0-9,40-60", "bytes 0-60/1000", 0, 61),  # overlapping, out of order
    ("bytes=-10,990-", "bytes 990-999/1000", 990, 1000),  # suffix and open end
    ("bytes=100-199,150-", "bytes 100-999/1000", 100, 1000),
]


def test_ranges_that_touch_are_one_range(owner_web, rec) -> None:
    for header, content_range, start, end in TOUCHING:
        resp = owner_web.client.get(_media(rec), headers={"Range": header})
        assert resp.status_code == 206, header
        assert resp.headers["Content-Range"] == content_range
        assert resp.get_data() == MEDIA_DATA[start:end]


def test_range_numbers_that_are_not_ascii_digits_or_too_long_are_400(owner_web, rec) -> None:
    for header in ["bytes=²-5", "bytes=0-٣", "bytes=0-" + "9" * 19, "bytes=" + "1" * 5000 + "-"]:
        resp = owner_web.client.get(_media(rec), headers={"Range": header})
        assert resp.status_code == 400, header
        assert resp.get_data(as_text=True).startswith("Bad Range header: ")
    assert owner_web.client.get(_media(rec), headers={"Range": "bytes=abc"}).status_code == 200


def test_the_api_upload_documents_its_413(app) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    responses = doc["paths"]["/dyads/{dyad_id}/recordings"]["post"]["responses"]
    assert responses["413"]["description"] == (
        "Larger than this server accepts (IPR_UPLOAD_MAX_BYTES)"
    )


def test_a_tus_chunk_larger_than_the_upload_limit_is_refused_before_it_is_read(
    app, owner_web, dyad, db
) -> None:
    app.config["UPLOAD_MAX_BYTES"] = 1024**2  # the body cap of PATCH follows the setting
    url = create(owner_web, dyad.id, 1024**2).headers["Location"]
    resp = patch(owner_web, url, 0, b"y" * (1024**2 + 1))  # over the cap, not just the length
    assert resp.status_code == 413
    assert resp.get_data(as_text=True) == (
        "This request is larger than the largest upload allowed (1.0 MB)."
    )
    head = call(owner_web, "HEAD", url)
    assert head.headers["Upload-Offset"] == "0"  # nothing of it was kept
    assert patch(owner_web, url, 0, b"z" * 100).status_code == 204
