"""Resumable uploads with the tus 1.0 protocol (core, creation, termination, checksum, expiration).

Bodies are streamed from ``request.stream`` to ``.uploads/<id>.part`` in fixed chunks and
fsynced before an offset is acknowledged, so memory stays flat for any file size and an
acknowledged offset survives a crash. A PATCH holds an exclusive ``flock`` on the part file and
moves the stored offset with a compare-and-set, so two PATCHes to one upload cannot interleave.
When the last byte arrives the file becomes a Recording and its processing is queued; the worker
computes the SHA-256 and refuses a duplicate of an existing recording.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, current_app, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import update
from sqlalchemy.orm import Session
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import http_date

from ipr import audit, recordings
from ipr.access import get_or_404
from ipr.errors import Conflict, IPRError
from ipr.models import Dyad, Upload, User, utcnow
from ipr.storage import Storage
from ipr.uploads import EXPIRY, cleanup_expired  # noqa: F401 (re-exported for callers of tus)
from ipr.web.context import client_ip, current_user, db, huey, storage, user
from ipr.web.limits import BadHeaderNumber, header_number

bp = Blueprint("tus", __name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,checksum,expiration"
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
CHUNK = 1024 * 1024


class TusError(IPRError):
    """The upload request is not valid."""


class UploadTooLarge(TusError):
    status = 413
    code = "too_large"


class ChecksumMismatch(TusError):
    """The chunk arrived damaged (its checksum does not match); it will be sent again."""

    status = 460
    code = "checksum_mismatch"


class UploadBusy(TusError):
    """Another request is writing to this upload right now; try again in a moment."""

    status = 423
    code = "locked"


class UnsupportedChecksum(TusError):
    status = 400
    code = "checksum_unsupported"


class InsufficientStorage(TusError):
    status = 507
    code = "insufficient_storage"


class UploadGone(TusError):
    """This upload expired after a week without progress and was removed; start it again."""

    status = 410
    code = "gone"


class NotLoggedIn(TusError):
    """Your session has ended. Log in again in another tab; the upload resumes where it stopped."""

    status = 401
    code = "unauthorized"


def _tus(resp: Response) -> Response:
    resp.headers["Tus-Resumable"] = TUS_VERSION
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _plain(message: str, status: int) -> Response:
    return _tus(Response(message, status=status, mimetype="text/plain"))


@bp.errorhandler(IPRError)
def tus_error(exc: IPRError) -> Response:
    """Plain-text errors: tus-js-client hands the body to the page, which shows it as is."""
    db().rollback()
    return _plain(exc.message, exc.status)


@bp.errorhandler(RequestEntityTooLarge)
def tus_too_large(exc: RequestEntityTooLarge) -> Response:
    """The body cap (ipr/web/limits.py) in tus's plain-text form, which the page shows as is."""
    db().rollback()
    limit = _gb(current_app.config["UPLOAD_MAX_BYTES"])
    return _plain(f"This request is larger than the largest upload allowed ({limit}).", 413)


@bp.errorhandler(CSRFError)
def tus_csrf_error(exc: CSRFError) -> Response:
    return _plain("This page has expired. Reload it; the upload resumes where it stopped.", 400)


@bp.before_request
def tus_checks() -> Response | None:
    if current_user() is None:
        raise NotLoggedIn()
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        resp = _plain("This server speaks tus 1.0.0 only.", 412)
        resp.headers["Tus-Version"] = TUS_VERSION
        return resp
    return None


def parse_metadata(header: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    meta: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            meta[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error, non-ASCII text
            raise TusError(f"Upload-Metadata {key!r} is not valid base64 UTF-8.") from exc
    return meta


def _int_header(name: str) -> int:
    """Strict: ASCII digits only, bounded length (``limits.header_number``), else 400."""
    try:
        return header_number(name, request.headers.get(name))
    except BadHeaderNumber as exc:
        raise TusError(exc.message) from None


def _part(up: Upload) -> Path:
    return storage().upload_part(up.id)


def _upload_headers(resp: Response, up: Upload) -> Response:
    resp.headers["Upload-Offset"] = str(up.offset)
    resp.headers["Upload-Length"] = str(up.length)
    if up.expires_at is not None and up.recording_id is None:
        resp.headers["Upload-Expires"] = http_date(up.expires_at.replace(tzinfo=dt.UTC))
    if up.recording_id is not None:
        resp.headers["Upload-Recording-Id"] = str(up.recording_id)
    return _tus(resp)


def _load(upload_id: str) -> Upload:
    """The upload for an editor of its study; an expired, unfinished one is gone (410)."""
    up = get_or_404(db(), Upload, upload_id, user(), "editor")
    if up.recording_id is None and up.expires_at is not None and up.expires_at < utcnow():
        raise UploadGone()
    return up


def _options(max_size: int) -> Response:
    resp = _tus(Response(status=204))
    resp.headers["Tus-Version"] = TUS_VERSION
    resp.headers["Tus-Extension"] = EXTENSIONS
    resp.headers["Tus-Max-Size"] = str(max_size)
    resp.headers["Tus-Checksum-Algorithm"] = ",".join(CHECKSUMS)
    return resp


@bp.route("/dyads/<int:dyad_id>/uploads", methods=["OPTIONS"], provide_automatic_options=False)
def discover(dyad_id: int) -> Response:
    get_or_404(db(), Dyad, dyad_id, user(), "editor")
    return _options(current_app.config["UPLOAD_MAX_BYTES"])


@bp.post("/dyads/<int:dyad_id>/uploads")
def create(dyad_id: int) -> Response:
    dyad = get_or_404(db(), Dyad, dyad_id, user(), "editor")
    up = start_upload(
        db(),
        storage(),
        dyad,
        user(),
        _int_header("Upload-Length"),
        parse_metadata(request.headers.get("Upload-Metadata", "")),
        max_bytes=current_app.config["UPLOAD_MAX_BYTES"],
        ip=client_ip(),
    )
    resp = _upload_headers(Response(status=201), up)
    resp.headers["Location"] = f"/uploads/{up.id}"
    return resp


@bp.route("/uploads/<upload_id>", methods=["OPTIONS"], provide_automatic_options=False)
def discover_upload(upload_id: str) -> Response:
    get_or_404(db(), Upload, upload_id, user(), "editor")
    return _options(current_app.config["UPLOAD_MAX_BYTES"])


@bp.route("/uploads/<upload_id>", methods=["HEAD"])
def status(upload_id: str) -> Response:
    up = _load(upload_id)
    return _upload_headers(Response(status=200), up)


@bp.route("/uploads/<upload_id>", methods=["PATCH"])
def append(upload_id: str) -> Response:
    up = _load(upload_id)
    if request.mimetype != "application/offset+octet-stream":
        return _plain("PATCH needs Content-Type: application/offset+octet-stream.", 415)
    checksum = request.headers.get("Upload-Checksum")
    offset = _int_header("Upload-Offset")
    up = write_chunk(db(), storage(), up, offset, request.stream, checksum, request.content_length)
    if up.offset == up.length and up.recording_id is None:
        finish_upload(db(), storage(), huey(), up, user(), ip=client_ip())
    return _upload_headers(Response(status=204), up)


@bp.route("/uploads/<upload_id>", methods=["DELETE"])
def terminate(upload_id: str) -> Response:
    up = get_or_404(db(), Upload, upload_id, user(), "editor")
    terminate_upload(db(), storage(), up, user(), ip=client_ip())
    return _tus(Response(status=204))


# --- the protocol's work, as plain functions of the session and the store ----------------------


def start_upload(
    session: Session,
    store: Storage,
    dyad: Dyad,
    who: User,
    length: int,
    meta: dict[str, str],
    *,
    max_bytes: int,
    ip: str | None = None,
) -> Upload:
    """Check the announcement (size, label, free space), then create the row and empty part."""
    if length > max_bytes:
        raise UploadTooLarge(
            f"This file is {_gb(length)}; the largest upload allowed is {_gb(max_bytes)} "
            "(setting IPR_UPLOAD_MAX_BYTES). Shorten or re-encode the recording first."
        )
    if length == 0:
        raise TusError("This file is empty.")
    label = recordings.clean_label(meta.get("session_label", ""))
    name = recordings.display_name(meta.get("filename", ""))
    folder = store.uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(folder).free < length:
        raise InsufficientStorage(
            f"The server has too little free disk space for this {_gb(length)} file. "
            "Ask the administrator to free some space."
        )
    up = Upload(
        id=secrets.token_hex(16),
        study_id=dyad.study_id,
        dyad_id=dyad.id,
        user_id=who.id,
        session_label=label,
        filename=name,
        length=length,
        offset=0,
        expires_at=utcnow() + EXPIRY,
    )
    store.upload_part(up.id).touch(exist_ok=False)
    session.add(up)
    audit.record(
        session,
        "upload_started",
        user=who,
        study_id=dyad.study_id,
        obj=("upload", up.id),
        ip=ip,
        details={"dyad": dyad.code, "session": label, "bytes": length, "file": name},
    )
    session.commit()
    return up


@contextmanager
def _locked(part: Path) -> Iterator[IO[bytes]]:
    """The part file opened for writing under an exclusive, non-blocking lock."""
    try:
        fh = open(part, "r+b")  # noqa: SIM115 - closed below, after the lock is released
    except FileNotFoundError as exc:
        raise Conflict("This upload's data is gone from the server; start it again.") from exc
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise UploadBusy() from exc
            raise
        yield fh
    finally:
        fh.close()


def _checksum(header: str | None) -> tuple[Any, bytes] | None:
    if header is None:
        return None
    algo, _, digest = header.strip().partition(" ")
    if algo not in CHECKSUMS:
        raise UnsupportedChecksum(
            f"Checksum algorithm {algo!r} is not supported; use one of {', '.join(CHECKSUMS)}."
        )
    try:
        return CHECKSUMS[algo](), base64.b64decode(digest, validate=True)
    except binascii.Error as exc:
        raise TusError("Upload-Checksum must be '<algorithm> <base64 digest>'.") from exc


def write_chunk(
    session: Session,
    store: Storage,
    up: Upload,
    offset: int,
    body: IO[bytes],
    checksum: str | None = None,
    announced: int | None = None,
) -> Upload:
    """Append ``body`` at ``offset``; return the upload with its new, durable offset.

    A body cut short (dropped connection) keeps what arrived, unless it carried a checksum that
    can no longer be verified; a wrong checksum or too many bytes leave the offset unchanged.
    """
    check = _checksum(checksum)
    if up.recording_id is not None:  # finished: the part file has become the recording
        if offset != up.offset:
            raise Conflict(f"This upload is complete ({up.length} bytes); nothing more to send.")
        return up
    with _locked(store.upload_part(up.id)) as fh:
        session.refresh(up)
        if offset != up.offset:
            raise Conflict(
                f"Upload-Offset {offset} does not match the {up.offset} bytes already stored; "
                "ask for the current offset (HEAD) and continue from there."
            )
        if up.offset == up.length:
            return up
        if announced is not None and announced > up.length - up.offset:
            raise UploadTooLarge(
                f"This request carries {announced} bytes but only {up.length - up.offset} "
                "remain of the upload's announced length."
            )
        fh.truncate(up.offset)  # bytes past the acknowledged offset were never confirmed
        fh.seek(up.offset)
        room = up.length - up.offset
        received, cut_short = _copy(body, fh, room, check)
        cut_short = cut_short or (announced is not None and received < announced)
        too_many = received > room
        bad_sum = (
            check is not None and not cut_short and not too_many and check[0].digest() != check[1]
        )
        unverifiable = check is not None and cut_short
        keep = 0 if too_many or bad_sum or unverifiable else received
        fh.flush()
        fh.truncate(up.offset + keep)
        os.fsync(fh.fileno())
        if keep:
            moved = session.execute(
                update(Upload)
                .where(Upload.id == up.id, Upload.offset == up.offset)
                .values(offset=up.offset + keep, expires_at=utcnow() + EXPIRY)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                session.rollback()
                raise Conflict("Another request moved this upload on; ask for the offset again.")
            session.commit()
            session.refresh(up)
    if too_many:
        raise UploadTooLarge("The request carried more bytes than the upload's announced length.")
    if bad_sum:
        raise ChecksumMismatch()
    return up


def _copy(body: IO[bytes], fh: IO[bytes], room: int, check: tuple[Any, bytes] | None) -> Any:
    """Stream the request body into the file; stop one chunk past ``room`` (then refused)."""
    received = 0
    try:
        while received <= room and (chunk := body.read(CHUNK)):
            fh.write(chunk)
            received += len(chunk)
            if check is not None:
                check[0].update(chunk)
    except (ClientDisconnected, OSError):  # the client went away: keep what arrived
        return received, True
    return received, False


def finish_upload(
    session: Session, store: Storage, queue: Any, up: Upload, who: User, *, ip: str | None = None
) -> int:
    """Turn the complete part file into a Recording and queue its ingest; return its id."""
    dyad = session.get(Dyad, up.dyad_id)
    if dyad is None:
        raise Conflict("This dyad has been deleted; the upload cannot be kept.")
    rec = recordings.add_recording(
        session,
        store,
        queue,
        dyad,
        who,
        up.session_label,
        store.upload_part(up.id),
        up.filename,
        move=True,
        sha256=None,
        ip=ip,
    )
    up.recording_id = rec.id
    audit.record(
        session,
        "upload_completed",
        user=who,
        study_id=up.study_id,
        obj=("upload", up.id),
        ip=ip,
        details={"recording": rec.id, "bytes": up.length},
    )
    session.commit()
    return rec.id


def terminate_upload(
    session: Session, store: Storage, up: Upload, who: User, *, ip: str | None = None
) -> None:
    """Delete an upload and its bytes (tus termination); a finished upload loses its row only."""
    part = store.upload_part(up.id)
    if up.recording_id is None and part.exists():
        with _locked(part):
            part.unlink(missing_ok=True)
    audit.record(
        session,
        "upload_terminated",
        user=who,
        study_id=up.study_id,
        obj=("upload", up.id),
        ip=ip,
        details={"received": up.offset, "bytes": up.length, "completed": up.recording_id},
    )
    session.delete(up)
    session.commit()


def _gb(n: int) -> str:
    """Binary units, as the 20 GB default (20 × 1024³ bytes) and most file managers count."""
    return f"{n / 1024**3:.1f} GB" if n >= 1024**3 // 10 else f"{n / 1024**2:.1f} MB"
