"""No server banner: neither gunicorn nor Werkzeug's development server names itself.

Both servers write their ``Server`` header below the WSGI app, where no response hook can
reach it, so the app removes it from the server's own response writer, once, when it is
created inside that server's process. nginx in front should also set ``server_tokens off``.
"""

from __future__ import annotations

import sys
from typing import Any


def quiet() -> None:
    _quiet_werkzeug()
    if "gunicorn" in sys.modules:
        _quiet_gunicorn()


def _quiet_werkzeug() -> None:
    from werkzeug.serving import WSGIRequestHandler

    if getattr(WSGIRequestHandler, "_ipr_quiet", False):
        return

    def send_response(self: Any, code: int, message: str | None = None) -> None:
        # http.server's own send_response, without its Server header
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    WSGIRequestHandler.send_response = send_response  # type: ignore[method-assign]
    WSGIRequestHandler._ipr_quiet = True  # type: ignore[attr-defined]


def _quiet_gunicorn() -> None:
    from gunicorn.http import wsgi

    if getattr(wsgi.Response, "_ipr_quiet", False):
        return
    default_headers = wsgi.Response.default_headers

    def without_server(self: Any) -> list[str]:
        return [h for h in default_headers(self) if not h.lower().startswith("server:")]

    wsgi.Response.default_headers = without_server  # type: ignore[method-assign]
    wsgi.Response._ipr_quiet = True  # type: ignore[attr-defined]
