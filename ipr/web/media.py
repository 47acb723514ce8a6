"""Researchers' media URLs: the playable copy, sprite, analysis data and clips of a recording.

Browsers come with their login cookie; scripts with the API's Bearer token (the same URLs the
JSON API hands out as ``media_url`` and clip ``url``). Either way the caller is one researcher and
every URL loads the recording through the permission rule first; only then are bytes served,
by ``ranges.range_response`` or, with ``X_ACCEL_REDIRECT`` set, by nginx. A repeat of the same
request is answered from a short-lived grant (``ipr.web.media_grants``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, g, request

from ipr import auth
from ipr.access import get_or_404
from ipr.errors import NotFound, Unauthorized
from ipr.models import Recording
from ipr.web import ranges
from ipr.web.context import db, login_required, media_grants, storage, user
from ipr.web.media_grants import Grant

bp = Blueprint("media", __name__)

DERIVED = {
    "playable.mp4": "video/mp4",
    "sprite.jpg": "image/jpeg",
    "waveform.json": "application/json",
    "analysis.json": "application/json",
}
CLIP_KINDS = {"mp4": "video/mp4", "jpg": "image/jpeg"}


def login_or_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """A Bearer API token (scripts) or the login cookie (browsers); a bad token is a 401."""
    browser = login_required(view)

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return browser(*args, **kwargs)
        found = auth.user_for_api_token(db(), token.strip())
        if found is None:
            raise Unauthorized("This API token is not valid or has been revoked.")
        g.user = found
        return view(*args, **kwargs)

    return wrapped


def _ready(recording_id: int) -> Recording:
    rec = get_or_404(db(), Recording, recording_id, user())
    if rec.status != "ready":
        raise NotFound("This recording is still being processed, or its processing failed.")
    return rec


def serve(path: Path, mimetype: str, download_name: str | None = None) -> Any:
    """Send a file the caller has just checked permission for, and grant repeats of this
    request for a few seconds (``ipr.web.media_grants``)."""
    if not path.is_file():
        raise NotFound()
    prefix = current_app.config.get("X_ACCEL_REDIRECT", "")
    accel = ranges.accel_uri(prefix, storage().root, path) if prefix else None
    grant = Grant(path, mimetype, download_name=download_name, accel=accel)
    media_grants().remember(request.environ, grant)
    return grant.respond(request.environ)


def _clip_path(rec: Recording, index: int, ext: str) -> Path:
    if index < 1 or index > 999:
        raise NotFound()
    return storage().derived(rec.storage_key, f"clips/{index:03d}.{ext}")


def download_name(dyad_code: str, session_label: str, index: int) -> str:
    """``<dyad>_<session>_clipNNN.mp4`` from codes only, safe in a header and on any disk."""

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:40] or "x"

    return f"{safe(dyad_code)}_{safe(session_label)}_clip{index:03d}.mp4"


@bp.get("/recordings/<int:recording_id>/media/<name>")
@login_or_token
def derived(recording_id: int, name: str) -> Any:
    if name not in DERIVED:
        raise NotFound()
    rec = _ready(recording_id)
    return serve(storage().derived(rec.storage_key, name), DERIVED[name])


@bp.get("/recordings/<int:recording_id>/clips/<int:index>.<ext>")
@login_or_token
def clip(recording_id: int, index: int, ext: str) -> Any:
    if ext not in CLIP_KINDS:
        raise NotFound()
    rec = _ready(recording_id)
    return serve(_clip_path(rec, index, ext), CLIP_KINDS[ext])


@bp.get("/recordings/<int:recording_id>/clips/<int:index>/download")
@login_or_token
def clip_download(recording_id: int, index: int) -> Any:
    rec = _ready(recording_id)
    name = download_name(rec.dyad.code, rec.session_label, index)
    return serve(_clip_path(rec, index, "mp4"), "video/mp4", name)
