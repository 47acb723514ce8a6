"""Resumable uploads over tus 1.0: creation, offsets, checksums, resumption, termination, access."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os

import pytest
from sqlalchemy import select

from ipr.models import AuditEvent, Dyad, Job, Membership, Recording, Upload
from ipr.web import tus
from tests.conftest import Web

OCTET = "application/offset+octet-stream"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def meta(filename: str = "session 3.mp4", label: str = "Session 3") -> str:
    return f"filename {b64(filename)},session_label {b64(label)}"


def call(web: Web, method: str, url: str, body: bytes = b"", csrf: bool = True, **headers):
    h = {"Tus-Resumable": "1.0.0", **headers}
    if csrf:
        if web.csrf is None:
            web.get("/login")
        h["X-CSRFToken"] = web.csrf
    return web.client.open(url, method=method, data=body, headers=h)


def create(web: Web, dyad_id: int, length: int, metadata: str | None = None):
    return call(
        web,
        "POST",
        f"/dyads/{dyad_id}/uploads",
        **{"Upload-Length": str(length), "Upload-Metadata": metadata or meta()},
    )


def patch(web: Web, url: str, offset: int, body: bytes, checksum: str | None = None):
    headers = {"Upload-Offset": str(offset), "Content-Type": OCTET}
    if checksum:
        headers["Upload-Checksum"] = checksum
    return call(web, "PATCH", url, body, **headers)


def sha1(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


@pytest.fixture
def dyad(owner_web, study, db) -> Dyad:
    assert owner_web.post(f"/studies/{study.id}/dyads", {"code": "05"}).status_code in (200, 302)
    return db.scalar(select(Dyad).where(Dyad.study_id == study.id, Dyad.code == "05"))


@pytest.fixture
def other_web(app, make_user, db, owner_web, study):
    """A researcher who is not a member of the study, and a viewer of it."""

    def _web(email: str, role: str | None) -> Web:
        member = make_user(email)
        if role:
            db.add(Membership(study_id=study.id, user_id=member.id, role=role))
            db.commit()
        w = Web(app)
        assert w.login(email).status_code == 302
        return w

    return _web


def test_discovery_and_creation(owner_web, dyad, app, db) -> None:
    resp = call(owner_web, "OPTIONS", f"/dyads/{dyad.id}/uploads", csrf=False)
    assert resp.status_code == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Extension"] == "creation,termination,checksum,expiration"
    assert resp.headers["Tus-Max-Size"] == str(20 * 1024**3)
    assert resp.headers["Tus-Checksum-Algorithm"] == "sha1,sha256,md5"

    resp = create(owner_web, dyad.id, 1000)
    assert resp.status_code == 201
    location = resp.headers["Location"]
    assert location.startswith("/uploads/") and len(location) == len("/uploads/") + 32
    up = db.get(Upload, location.rsplit("/", 1)[1])
    assert (up.length, up.offset, up.session_label, up.filename) == (
        1000,
        0,
        "Session 3",
        "session 3.mp4",
    )
    assert up.dyad_id == dyad.id and up.study_id == dyad.study_id
    assert app.extensions["ipr_storage"].upload_part(up.id).stat().st_size == 0
    head = call(owner_web, "HEAD", location, csrf=False)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "1000"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert head.headers["Cache-Control"] == "no-store"
    events = db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == up.id)).all()
    assert events == ["upload_started"]


def test_chunks_with_checksums_then_recording_and_job(owner_web, dyad, app, db) -> None:
    data = os.urandom(300_000)
    location = create(owner_web, dyad.id, len(data)).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    part = app.extensions["ipr_storage"].upload_part(upload_id)

    r = patch(owner_web, location, 0, data[:100_000], sha1(data[:100_000]))
    assert (r.status_code, r.headers["Upload-Offset"]) == (204, "100000")

    bad = patch(owner_web, location, 100_000, data[100_000:200_000], sha1(b"something else"))
    assert bad.status_code == 460
    assert "checksum" in bad.get_data(as_text=True)
    assert call(owner_web, "HEAD", location, csrf=False).headers["Upload-Offset"] == "100000"
    assert part.stat().st_size == 100_000

    sha256 = "sha256 " + base64.b64encode(hashlib.sha256(data[100_000:200_000]).digest()).decode()
    r = patch(owner_web, location, 100_000, data[100_000:200_000], sha256)
    assert (r.status_code, r.headers["Upload-Offset"]) == (204, "200000")
    assert "Upload-Recording-Id" not in r.headers

    r = patch(owner_web, location, 200_000, data[200_000:])
    assert (r.status_code, r.headers["Upload-Offset"]) == (204, "300000")
    rec_id = int(r.headers["Upload-Recording-Id"])
    rec = db.get(Recording, rec_id)
    assert (rec.dyad_id, rec.session_label, rec.original_name) == (
        dyad.id,
        "Session 3",
        "session 3.mp4",
    )
    assert rec.size_bytes == len(data) and rec.status == "queued" and rec.sha256 is None
    storage = app.extensions["ipr_storage"]
    source = storage.find_source(rec.storage_key)
    assert source.name == "source.mp4" and source.read_bytes() == data
    assert not part.exists()
    job = db.scalar(select(Job).where(Job.recording_id == rec_id))
    assert (job.kind, job.status) == ("ingest", "queued")
    up = db.get(Upload, upload_id)
    db.refresh(up)
    assert up.recording_id == rec_id
    head = call(owner_web, "HEAD", location, csrf=False)
    assert head.headers["Upload-Offset"] == "300000"
    assert head.headers["Upload-Recording-Id"] == str(rec_id)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == upload_id)).all()
    assert sorted(actions) == ["upload_completed", "upload_started"]


def test_interrupted_patch_resumes_from_stored_offset(owner_web, dyad, app, db) -> None:
    data = os.urandom(50_000)
    location = create(owner_web, dyad.id, len(data)).headers["Location"]
    # The connection drops after 12 345 of the 40 000 announced bytes.
    resp = owner_web.client.open(
        location,
        method="PATCH",
        input_stream=io.BytesIO(data[:12_345]),
        environ_overrides={"CONTENT_LENGTH": "40000"},
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": OCTET,
            "X-CSRFToken": owner_web.csrf,
        },
    )
    assert resp.status_code == 204
    head = call(owner_web, "HEAD", location, csrf=False)
    assert head.headers["Upload-Offset"] == "12345"
    assert patch(owner_web, location, 0, data).status_code == 409
    r = patch(owner_web, location, 12_345, data[12_345:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "50000"
    rec = db.get(Recording, int(r.headers["Upload-Recording-Id"]))
    assert app.extensions["ipr_storage"].find_source(rec.storage_key).read_bytes() == data


def test_interrupted_patch_with_checksum_keeps_nothing(owner_web, dyad) -> None:
    data = os.urandom(20_000)
    location = create(owner_web, dyad.id, len(data)).headers["Location"]
    resp = owner_web.client.open(
        location,
        method="PATCH",
        input_stream=io.BytesIO(data[:5_000]),
        environ_overrides={"CONTENT_LENGTH": "20000"},
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": OCTET,
            "Upload-Checksum": sha1(data),
            "X-CSRFToken": owner_web.csrf,
        },
    )
    assert resp.status_code == 204
    assert call(owner_web, "HEAD", location, csrf=False).headers["Upload-Offset"] == "0"


def test_protocol_errors(owner_web, dyad, app) -> None:
    location = create(owner_web, dyad.id, 100).headers["Location"]
    assert patch(owner_web, location, 5, b"x").status_code == 409
    wrong_type = call(
        owner_web, "PATCH", location, b"x", **{"Upload-Offset": "0", "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    no_version = owner_web.client.open(location, method="HEAD")
    assert (no_version.status_code, no_version.headers["Tus-Version"]) == (412, "1.0.0")
    assert patch(owner_web, location, 0, b"x", "crc32 AAAA").status_code == 400
    too_many = patch(owner_web, location, 0, b"y" * 101)
    assert too_many.status_code == 413
    assert call(owner_web, "HEAD", location, csrf=False).headers["Upload-Offset"] == "0"
    part = app.extensions["ipr_storage"].upload_part(location.rsplit("/", 1)[1])
    assert part.stat().st_size == 0
    no_label = create(owner_web, dyad.id, 100, f"filename {b64('a.mp4')}")
    assert no_label.status_code == 422
    assert "label" in no_label.get_data(as_text=True)
    no_length = call(owner_web, "POST", f"/dyads/{dyad.id}/uploads", **{"Upload-Metadata": meta()})
    assert no_length.status_code == 400


def test_too_large_is_413_with_the_limit(app, owner_web, dyad) -> None:
    app.config["UPLOAD_MAX_BYTES"] = 1_048_576
    resp = create(owner_web, dyad.id, 1_048_577)
    assert resp.status_code == 413
    text = resp.get_data(as_text=True)
    assert "largest upload allowed is 1.0 MB" in text and "IPR_UPLOAD_MAX_BYTES" in text
    assert create(owner_web, dyad.id, 1_048_576).status_code == 201


def test_concurrent_patch_is_refused_while_locked(owner_web, dyad, app) -> None:
    import fcntl

    location = create(owner_web, dyad.id, 10).headers["Location"]
    part = app.extensions["ipr_storage"].upload_part(location.rsplit("/", 1)[1])
    with open(part, "r+b") as other:  # another request holds the upload
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        assert patch(owner_web, location, 0, b"0123456789").status_code == 423
    assert patch(owner_web, location, 0, b"0123456789").status_code == 204


def test_delete_removes_part_and_row(owner_web, dyad, app, db) -> None:
    location = create(owner_web, dyad.id, 1000).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    assert patch(owner_web, location, 0, b"a" * 400).status_code == 204
    part = app.extensions["ipr_storage"].upload_part(upload_id)
    assert part.stat().st_size == 400
    assert call(owner_web, "DELETE", location).status_code == 204
    assert not part.exists()
    db.expire_all()
    assert db.get(Upload, upload_id) is None
    assert call(owner_web, "HEAD", location, csrf=False).status_code == 404
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == upload_id)).all()
    assert sorted(actions) == ["upload_started", "upload_terminated"]


def test_missing_csrf_is_400(owner_web, dyad) -> None:
    resp = call(
        owner_web,
        "POST",
        f"/dyads/{dyad.id}/uploads",
        csrf=False,
        **{"Upload-Length": "10", "Upload-Metadata": meta()},
    )
    assert resp.status_code == 400
    location = create(owner_web, dyad.id, 10).headers["Location"]
    no_token = call(
        owner_web,
        "PATCH",
        location,
        b"x",
        csrf=False,
        **{"Upload-Offset": "0", "Content-Type": OCTET},
    )
    assert no_token.status_code == 400
    assert call(owner_web, "DELETE", location, csrf=False).status_code == 400


def test_non_member_404_viewer_403_logged_out_401(owner_web, dyad, other_web, app) -> None:
    location = create(owner_web, dyad.id, 10).headers["Location"]
    for web, expected in ((other_web("stranger@example.org", None), 404),
                          (other_web("viewer@example.org", "viewer"), 403)):  # fmt: skip
        assert create(web, dyad.id, 10).status_code == expected
        assert call(web, "OPTIONS", f"/dyads/{dyad.id}/uploads", csrf=False).status_code == (
            expected
        )
        assert call(web, "OPTIONS", location, csrf=False).status_code == expected
        assert call(web, "HEAD", location, csrf=False).status_code == expected
        assert patch(web, location, 0, b"0123456789").status_code == expected
        assert call(web, "DELETE", location).status_code == expected
    assert call(owner_web, "HEAD", location, csrf=False).headers["Upload-Offset"] == "0"
    anonymous = Web(app)
    resp = call(anonymous, "HEAD", location, csrf=False)
    assert resp.status_code == 401


def test_50_mb_streams_in_bounded_chunks(owner_web, dyad, app, db, monkeypatch) -> None:
    """The view copies ``request.stream`` chunk by chunk: no read larger than tus.CHUNK."""
    sizes: list[int] = []
    original = tus._copy

    class Spy(io.RawIOBase):
        def __init__(self, inner) -> None:
            self.inner = inner

        def read(self, size: int = -1) -> bytes:
            sizes.append(size)
            return self.inner.read(size)

    monkeypatch.setattr(tus, "_copy", lambda body, *a: original(Spy(body), *a))
    data = os.urandom(1024 * 1024) * 50
    location = create(owner_web, dyad.id, len(data)).headers["Location"]
    r = patch(owner_web, location, 0, data)
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert sizes and max(sizes) == tus.CHUNK and -1 not in sizes
    rec = db.get(Recording, int(r.headers["Upload-Recording-Id"]))
    source = app.extensions["ipr_storage"].find_source(rec.storage_key)
    assert source.stat().st_size == 52_428_800
    assert tus_sha256(source) == hashlib.sha256(data).hexdigest()


def tus_sha256(path) -> str:
    from ipr.recordings import sha256_file

    return sha256_file(path)


def test_cleanup_expired(owner_web, dyad, app, db) -> None:
    storage = app.extensions["ipr_storage"]
    old = create(owner_web, dyad.id, 10).headers["Location"].rsplit("/", 1)[1]
    fresh = create(owner_web, dyad.id, 10).headers["Location"].rsplit("/", 1)[1]
    orphan = storage.uploads_dir() / ("f" * 32 + ".part")
    orphan.write_bytes(b"left behind")
    week_ago = (dt.datetime.now() - dt.timedelta(days=8)).timestamp()
    os.utime(orphan, (week_ago, week_ago))
    up = db.get(Upload, old)
    up.expires_at = dt.datetime(2000, 1, 1)
    db.commit()
    assert tus.cleanup_expired(db, storage) == 2
    db.expire_all()
    assert db.get(Upload, old) is None and db.get(Upload, fresh) is not None
    assert not storage.upload_part(old).exists() and storage.upload_part(fresh).exists()
    assert not orphan.exists()
    assert tus.cleanup_expired(db, storage) == 0


def test_dyad_page_includes_the_upload_widget_for_editors(owner_web, dyad, other_web) -> None:
    html = owner_web.get(f"/dyads/{dyad.id}").get_data(as_text=True)
    assert f'data-endpoint="/dyads/{dyad.id}/uploads"' in html
    assert f'data-csrf="{owner_web.csrf}"' in html
    assert 'data-max-bytes="21474836480"' in html
    assert "vendor/tus-js-client/tus.min.js" in html and "js/upload.js" in html
    assert "<progress" in html and 'data-role="pause"' in html and 'data-role="resume"' in html
    assert " style=" not in html and "<script>" not in html  # strict CSP: nothing inline
    for asset in ("vendor/tus-js-client/tus.min.js", "js/upload.js", "css/upload.css"):
        resp = owner_web.client.get(f"/static/{asset}")
        assert resp.status_code == 200 and len(resp.get_data()) > 500
        resp.close()
    viewer_html = other_web("viewer@example.org", "viewer").get(f"/dyads/{dyad.id}")
    assert "data-endpoint" not in viewer_html.get_data(as_text=True)


def test_expired_upload_is_gone_and_finished_one_accepts_nothing(owner_web, dyad, db) -> None:
    location = create(owner_web, dyad.id, 10).headers["Location"]
    up = db.get(Upload, location.rsplit("/", 1)[1])
    up.expires_at = dt.datetime(2000, 1, 1)
    db.commit()
    assert call(owner_web, "HEAD", location, csrf=False).status_code == 410
    assert patch(owner_web, location, 0, b"0123456789").status_code == 410

    location = create(owner_web, dyad.id, 10).headers["Location"]
    done = patch(owner_web, location, 0, b"0123456789")
    assert done.status_code == 204 and done.headers["Upload-Recording-Id"]
    again = patch(owner_web, location, 10, b"")
    assert again.status_code == 204
    assert again.headers["Upload-Recording-Id"] == done.headers["Upload-Recording-Id"]
    assert patch(owner_web, location, 0, b"0123456789").status_code == 409
