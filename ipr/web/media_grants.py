"""Answering a repeat media request without the database, for a few seconds after a full check.

A video element asks for the same URL again and again while it plays and seeks (one Range
request per buffer it fills). The full check behind each media URL (Flask's request cycle, the
login-session lookup, the permission rule) costs about 2 ms, far more than handing 1 MiB to
``sendfile`` or to nginx. So after a media view has loaded the recording through the permission
rule, it records a *grant*: which file this browser may read at this URL. For the next
``MEDIA_GRANT_SECONDS`` a request for the same URL carrying the very same credentials (Cookie
and Authorization headers, compared by SHA-256) is answered by ``MediaFastPath``, a WSGI layer in
front of Flask, from that grant: same Range handling, same headers, no database.

The trade-off: taking access away (removing a member, revoking a participant's link, a session
timing out or ending in another worker process) reaches a URL the browser was already playing
within ``MEDIA_GRANT_SECONDS``, not on the very next request. Logging out forgets the browser's
grants at once in the worker that handles it, and a grant never outlives the file it names.
``MEDIA_GRANT_SECONDS = 0`` turns grants off: every request then takes the full check.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipr.web import ranges

MAX_GRANTS = 10_000  # per process; the oldest are dropped first

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


@dataclass
class Grant:
    """What a checked media request may be answered with."""

    path: Path
    mimetype: str
    download_name: str | None = None
    accel: str | None = None  # the X-Accel-Redirect URI when nginx sends the bytes
    # A hand-off answer does not depend on the request: its headers are built once.
    accel_headers: list[tuple[str, str]] | None = field(default=None, compare=False)

    def respond(self, environ: dict) -> Any:
        return ranges.range_response(
            environ, self.path, self.mimetype, download_name=self.download_name, accel=self.accel
        )


def credentials(environ: dict) -> bytes | None:
    """A digest of everything that authenticates the request; None when it carries nothing."""
    cookie = environ.get("HTTP_COOKIE", "")
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if not cookie and not authorization:
        return None
    return hashlib.sha256(f"{cookie}\0{authorization}".encode("latin-1", "replace")).digest()


def _url(environ: dict) -> str:
    return f"{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"


class MediaGrants:
    """Grants of one process, keyed by (credentials digest, URL), each valid for ``ttl_s``."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._grants: OrderedDict[tuple[bytes, str], tuple[float, Grant]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, environ: dict, grant: Grant) -> None:
        cred = credentials(environ)
        if self.ttl_s <= 0 or cred is None:
            return
        key = (cred, _url(environ))
        with self._lock:
            self._grants[key] = (self._clock() + self.ttl_s, grant)
            self._grants.move_to_end(key)
            while len(self._grants) > MAX_GRANTS:
                self._grants.popitem(last=False)

    def lookup(self, environ: dict) -> Grant | None:
        if self.ttl_s <= 0 or not self._grants:
            return None
        cred = credentials(environ)
        if cred is None:
            return None
        key = (cred, _url(environ))
        with self._lock:
            found = self._grants.get(key)
            if found is None:
                return None
            expires, grant = found
            if self._clock() >= expires:
                del self._grants[key]
                return None
            return grant

    def forget(self, environ: dict) -> None:
        """Drop every grant made to these credentials (at logout)."""
        cred = credentials(environ)
        if cred is None:
            return
        with self._lock:
            for key in [k for k in self._grants if k[0] == cred]:
                del self._grants[key]

    def __len__(self) -> int:
        return len(self._grants)


class MediaFastPath:
    """WSGI middleware: a GET or HEAD that matches a live grant is answered without Flask."""

    def __init__(
        self,
        app: WSGIApp,
        grants: MediaGrants,
        headers: Callable[[Any], None],
    ) -> None:
        self.app = app
        self.grants = grants
        self.headers = headers  # adds the app's security headers to a response

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            grant = self.grants.lookup(environ)
            if grant is not None and grant.path.is_file():
                if grant.accel and grant.accel_headers is not None:
                    start_response("200 OK", list(grant.accel_headers))
                    return [b""]
                resp = grant.respond(environ)
                self.headers(resp)
                resp.vary.add("Cookie")  # as Flask marks any answer that read the session
                if grant.accel:
                    grant.accel_headers = resp.get_wsgi_headers(environ).to_wsgi_list()
                return resp(environ, start_response)
        return self.app(environ, start_response)
