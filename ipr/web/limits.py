"""Bounded request bodies and strictly parsed header numbers.

Every request body is capped by ``MAX_CONTENT_LENGTH`` (setting ``IPR_REQUEST_MAX_BYTES``); the
few endpoints that take files get their own cap from ``BODY_LIMITS`` before anything reads the
body (the CSRF check parses forms, so the hook is registered ahead of it). Werkzeug enforces
the cap while streaming: a body announced larger is refused before it is read, and a body
without Content-Length stops with 413 the moment it passes the cap. ``save_bounded`` does the
same for one uploaded file part, so a file is never written in full before its size check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.datastructures import FileStorage

from ipr.errors import N_, IPRError, TooLarge

CHUNK = 1024 * 1024
FORM_SLACK = 64 * 1024  # multipart boundaries, part headers and the small fields beside a file
CHUNK_BODY_MAX = 4 * 1024**2 + FORM_SLACK  # one interview-recorder chunk (ipr.interview_takes)
MAX_HEADER_DIGITS = 18  # 10^18 bytes is far beyond any file; longer numbers are refused


class BodyTooLarge(IPRError):
    """The request or one of its files is larger than this server accepts."""

    status = 413
    code = "too_large"


class BadHeaderNumber(IPRError):
    """A header that must hold a byte count or offset holds something else."""

    status = 400
    code = "bad_header"


def voice_limit(cfg: Mapping[str, Any]) -> int:
    return cfg["VOICE_NOTE_MAX_BYTES"] + FORM_SLACK


# endpoint -> its body cap from the app config; every other endpoint gets MAX_CONTENT_LENGTH.
BODY_LIMITS: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "tus.append": lambda cfg: cfg["UPLOAD_MAX_BYTES"],
    "api.upload_recording": lambda cfg: cfg["UPLOAD_MAX_BYTES"] + FORM_SLACK,
    "exports.import_post": lambda cfg: cfg["IMPORT_MAX_BYTES"] + FORM_SLACK,
    "recall.voice": voice_limit,
    "api_interview.upload_audio": lambda cfg: cfg["INTERVIEW_AUDIO_MAX_BYTES"] + FORM_SLACK,
    "api_interview.import_transcript": lambda cfg: cfg["IMPORT_MAX_BYTES"] + FORM_SLACK,
    "recall_admin.import_transcript": lambda cfg: cfg["IMPORT_MAX_BYTES"] + FORM_SLACK,
    "interview_rec.append_chunk": lambda cfg: CHUNK_BODY_MAX,
    "api_interview_chunks.append_chunk": lambda cfg: CHUNK_BODY_MAX,
}


def init_app(app: Flask) -> None:
    """Cap every body; call before ``csrf.init_app`` so the cap is set before a form is read."""
    app.config["MAX_CONTENT_LENGTH"] = app.config["REQUEST_MAX_BYTES"]

    @app.before_request
    def body_limit() -> None:
        limit = BODY_LIMITS.get(request.endpoint or "")
        if limit is None:
            return
        cap = limit(app.config)
        request.max_content_length = cap
        announced = request.content_length
        if request.endpoint == "recall.voice" and announced is not None and announced > cap:
            # the participant sees what the limit is, not Werkzeug's generic refusal
            mb = round(app.config["VOICE_NOTE_MAX_BYTES"] / 1024**2)
            raise TooLarge(N_("A voice note can be at most %(mb)s MB."), params={"mb": mb})


def header_number(name: str, raw: str | None) -> int:
    """A non-negative byte count from a header: ASCII digits only, at most 18 of them.

    ``str.isdigit`` accepts '²' and ``int`` chokes on thousands of digits; both are a 400 here.
    """
    raw = (raw or "").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_HEADER_DIGITS):
        raise BadHeaderNumber(f"{name} must be a whole number of bytes (1 to 18 ASCII digits).")
    return int(raw)


def save_bounded(upload: FileStorage, path: Path, max_bytes: int, what: str = "file") -> int:
    """Copy an uploaded file part to ``path`` in chunks, stopping as soon as it passes
    ``max_bytes`` (the partial file is removed); return the size written."""
    written = 0
    try:
        with open(path, "wb") as out:
            while chunk := upload.stream.read(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise BodyTooLarge(
                        f"The {what} is larger than the {_size(max_bytes)} this server accepts."
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return written


def _size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MB"
    return f"{n} bytes"
