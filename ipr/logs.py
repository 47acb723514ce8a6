"""Logging for the app and the worker: plain text or one JSON object a line, with a request id.

The request id comes from the request's ``X-Request-Id`` header (or is made up), is sent back in
the answer, is stored in the params of every job the request queues, and is set again by the
worker while it runs that job, so one id follows an upload from the request to its processing.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ipr_request_id", default=None
)
job_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("ipr_job_id", default=None)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
FORMATS = ("text", "json")


def new_request_id(offered: str | None) -> str:
    """The caller's id when it is short and plain (a proxy's or a script's), else a new one."""
    if offered and _SAFE_ID.match(offered):
        return offered
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


@contextmanager
def job_context(job_id: int, request_id: str | None) -> Iterator[None]:
    """While a worker runs a job, its log lines carry the job's id and its request's id."""
    tokens = (job_id_var.set(job_id), request_id_var.set(request_id))
    try:
        yield
    finally:
        job_id_var.reset(tokens[0])
        request_id_var.reset(tokens[1])


class ContextFilter(logging.Filter):
    """Puts the current request id and job id on every record (None outside of either)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, ids, extras."""

    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "request_id", "job_id"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        for key, value in vars(record).items():
            if key not in self.RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(level: str, fmt: str = "text") -> None:
    """Set up the root logger once per process (app factory and worker share it)."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_ipr", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._ipr = True  # type: ignore[attr-defined]
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
