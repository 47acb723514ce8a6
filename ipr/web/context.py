"""Per-request plumbing: the database session, the logged-in researcher, errors, headers."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from flask import (
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from huey import Huey
from redis.exceptions import ConnectionError as QueueConnectionError
from redis.exceptions import TimeoutError as QueueTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from ipr import auth
from ipr.db import Database
from ipr.door import PinPolicy
from ipr.errors import IPRError, NotFound, Unauthorized
from ipr.models import User
from ipr.ratelimit import RateLimiter
from ipr.recall import Limits
from ipr.storage import Storage
from ipr.web.media_grants import MediaGrants

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# what a 503 tells clients while the database or the queue restarts (they come back in seconds)
RETRY_AFTER_SECONDS = 2


HSTS = "max-age=63072000; includeSubDomains"


def security_headers(resp: Any, cache: bool = False, hsts: bool = False) -> None:
    """The headers every answer carries; only static files may be cached. ``hsts`` when the
    app is served over HTTPS (SECURE_COOKIES): browsers must then never fall back to HTTP."""
    if hsts:
        resp.headers.setdefault("Strict-Transport-Security", HSTS)
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Permissions-Policy", "camera=(), geolocation=(), microphone=(self)")
    if not cache:
        resp.headers["Cache-Control"] = "no-store"


def database() -> Database:
    return current_app.extensions["ipr_db"]


def media_grants() -> MediaGrants:
    return current_app.extensions["ipr_media_grants"]


def storage() -> Storage:
    return current_app.extensions["ipr_storage"]


def huey() -> Huey:
    return current_app.extensions["ipr_huey"]


def rate_limiter() -> RateLimiter:
    return current_app.extensions["ipr_rate"]


def pin_policy() -> PinPolicy:
    c = current_app.config
    return PinPolicy(
        lock_after=c["PIN_LOCK_AFTER"],
        free=c["PIN_FREE_ATTEMPTS"],
        delay_seconds=c["PIN_DELAY_SECONDS"],
    )


def moment_limits() -> Limits:
    return Limits(
        moments=current_app.config["MOMENTS_PER_SESSION"],
        text=current_app.config["MOMENT_TEXT_MAX"],
    )


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = database().session()
    return g.db


def client_ip() -> str | None:
    return request.remote_addr


def current_user() -> User | None:
    return g.get("user")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if request.htmx:
                resp = Response(status=401)
                resp.headers["HX-Redirect"] = url_for("auth.login", next=request.path)
                return resp
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def user() -> User:
    """The logged-in researcher (views behind login_required)."""
    u = current_user()
    if u is None:
        raise Unauthorized()
    return u


def navigate(target: str) -> Any:
    """Go to ``target``: htmx follows HX-Location; a plain form post is redirected."""
    if request.htmx:
        return "", 204, {"HX-Location": target}
    return redirect(target)


def render(page: str, fragment: str | None = None, status: int = 200, **ctx: Any) -> Any:
    """An htmx request gets the fragment alone; a plain request gets the whole page."""
    if fragment and request.htmx and not request.htmx.boosted:
        return render_template(fragment, **ctx), status
    return render_template(page, **ctx), status


def _wants_json() -> bool:
    """The API, the recall page's own JSON calls, and any client that asks for JSON."""
    if request.path.startswith("/api/"):
        return True
    if request.path.startswith("/recall/") and request.method != "GET":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _error_response(status: int, code: str, message: str, extra: dict | None = None) -> Any:
    if _wants_json():
        return jsonify({"error": {"code": code, "message": message, **(extra or {})}}), status
    if request.htmx:
        return render_template("_error.html", message=message, status=status), status
    return render_template("error.html", message=message, status=status), status


def timecode(ms: int | None) -> str:
    """Milliseconds as H:MM:SS (or M:SS under an hour) for people to read."""
    if ms is None:
        return ""
    seconds = int(ms) // 1000
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def init_app(app: Flask) -> None:
    @app.before_request
    def load_user() -> None:
        g.user = None
        if request.path.startswith("/api/"):
            return  # the API authenticates with Bearer tokens only, see ipr.web.api
        if request.path in ("/healthz", "/readyz", "/metrics"):
            return  # probes and scrapes: no login, no database (see ipr.web.ops)
        idle = dt.timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
        row = auth.load_session(db(), session.get("sid"), idle)
        if row is None:
            if "sid" in session:
                session.clear()
            return
        g.user = row.user

    @app.before_request
    def limit_writes() -> None:
        """A researcher's writes per minute, on every route but uploads (tus and the interview
        recorder send many chunks) and login (it has its own throttle). The API counts in
        ``token_required``."""
        if request.method in ("GET", "HEAD", "OPTIONS") or g.user is None:
            return
        if (request.endpoint or "").startswith(("tus.", "auth.", "interview_rec.append_chunk")):
            return
        rate_limiter().hit(f"user:{g.user.id}")

    @app.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        session_ = g.pop("db", None)
        if session_ is not None:
            session_.close()

    @app.after_request
    def add_headers(resp: Response) -> Response:
        security_headers(
            resp, cache=request.path.startswith("/static/"), hsts=app.config["SECURE_COOKIES"]
        )
        if request.htmx:
            resp.headers.add("Vary", "HX-Request")
        return resp

    @app.errorhandler(IPRError)
    def ipr_error(exc: IPRError) -> Any:
        db().rollback()
        extra = {"field": exc.field} if exc.field else None
        resp = _error_response(exc.status, exc.code, exc.message, extra)
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            body, status = resp
            r = current_app.make_response((body, status))
            r.headers["Retry-After"] = str(retry)
            return r
        return resp

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(QueueConnectionError)
    @app.errorhandler(QueueTimeoutError)
    def backend_unavailable(exc: Exception) -> Any:
        """The database or the queue is away (a restart, a failover): 503 with Retry-After, so
        clients (the participant's outbox, scripts, nginx) retry instead of giving up."""
        app.logger.warning("backend unavailable: %s", str(exc).splitlines()[0][:200])
        session_ = g.pop("db", None)
        if session_ is not None:
            with contextlib.suppress(Exception):  # its connection is already gone
                session_.close()
        body, status = _error_response(
            503, "unavailable", "The server is briefly unavailable. Try again in a few seconds."
        )
        resp = current_app.make_response((body, status))
        resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return resp

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        return _error_response(
            400,
            "csrf",
            "This form has expired or did not come from this site. Reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if exc.code == 404:
            return _error_response(404, "not_found", NotFound().message)
        return _error_response(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description)

    app.add_template_filter(timecode)

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"current_user": current_user()}
