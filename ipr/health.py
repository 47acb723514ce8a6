"""Readiness: can this process do its work right now? Each check names what failed and why."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 — any failure means not ready; say which
        return Check("database", False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Check("database", True)


def check_queue(huey: Any) -> Check:
    """The queue answers (Redis, or the embedded SQLite queue); reports its length."""
    try:
        waiting = huey.pending_count()
    except Exception as exc:  # noqa: BLE001
        return Check("queue", False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Check("queue", True, f"{waiting} waiting")


def check_media(root: Path) -> Check:
    """The recordings folder exists and this process can create a file in it."""
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-"):
            pass
    except OSError as exc:
        return Check("media", False, f"{root} is not writable: {exc.strerror or exc}")
    return Check("media", True)


def check_ffmpeg() -> Check:
    missing = [
        tool
        for tool in ("ffmpeg", "ffprobe")
        if (found := shutil.which(tool)) is None or not os.access(found, os.X_OK)
    ]
    if missing:
        return Check("ffmpeg", False, f"not found on PATH: {', '.join(missing)}")
    return Check("ffmpeg", True)


def readiness(engine: Engine, huey: Any, media_root: Path) -> list[Check]:
    return [check_database(engine), check_queue(huey), check_media(media_root), check_ffmpeg()]
