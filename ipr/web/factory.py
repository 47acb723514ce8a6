"""The application factory: configuration layers, database, security headers, blueprints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from werkzeug.middleware.proxy_fix import ProxyFix

from ipr import logs
from ipr.config import load_config
from ipr.db import Database
from ipr.jobs import make_huey
from ipr.ratelimit import RateLimiter
from ipr.storage import Storage
from ipr.web.media_grants import MediaFastPath, MediaGrants

ROOT = Path(__file__).resolve().parents[2]
csrf = CSRFProtect()
htmx = Htmx()
babel = Babel()


def _locale() -> str:
    """Participant pages speak the study's language (set by the recall views); the rest English."""
    return g.get("locale") or "en"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults -> instance/config.py -> IPR_* environment -> ``test_config``."""
    # The instance folder holds the settings file itself, so it is chosen before any layer.
    default_instance = os.environ.get("IPR_INSTANCE_PATH") or ROOT / "instance"
    instance_path = Path((test_config or {}).get("INSTANCE_PATH", default_instance))
    app = Flask(
        "ipr",
        root_path=str(ROOT),
        instance_path=str(instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    cfg = load_config(instance_path, test_config)
    app.config.update(cfg)
    app.config.update(
        # Over HTTPS the __Host- prefix makes the browser refuse the cookie unless it is Secure,
        # for this host only and for the whole path: no subdomain can set or shadow it.
        SESSION_COOKIE_NAME="__Host-ipr_session" if cfg["SECURE_COOKIES"] else "ipr_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(cfg["SECURE_COOKIES"]),
        WTF_CSRF_TIME_LIMIT=None,  # tied to the login session, which has its own idle timeout
        WTF_CSRF_SSL_STRICT=bool(cfg["SECURE_COOKIES"]),
        MAX_FORM_MEMORY_SIZE=2 * 1024 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=0,
    )
    logs.configure(cfg["LOG_LEVEL"], cfg["LOG_FORMAT"])
    app.extensions["ipr_db"] = Database(cfg["DATABASE_URL"])
    app.extensions["ipr_huey"] = make_huey(cfg, instance_path)
    app.extensions["ipr_db"].queue = app.extensions["ipr_huey"]
    app.extensions["ipr_storage"] = Storage(cfg["RECORDINGS_DIR"])
    app.extensions["ipr_rate"] = RateLimiter(cfg["WRITE_RATE_PER_MINUTE"], cfg["REDIS_URL"])
    grants = MediaGrants(cfg["MEDIA_GRANT_SECONDS"])
    app.extensions["ipr_media_grants"] = grants
    from ipr.web import limits

    limits.init_app(app)  # before the CSRF check, which reads form bodies
    csrf.init_app(app)
    htmx.init_app(app)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ROOT / "translations")
    babel.init_app(app, locale_selector=_locale)

    from ipr.web import (
        api,
        api_imports,
        api_interview,
        api_interview_chunks,
        api_prompts,
        api_transcripts,
        auth_views,
        banner,
        context,
        exports,
        followup,
        media,
        motion,
        openapi,
        ops,
        prompts,
        recall,
        recall_admin,
        recordings,
        search,
        studies,
        timeline,
        tus,
    )

    ops.init_app(app)  # first: the request id exists before anything else logs
    banner.quiet()
    context.init_app(app)
    hsts = bool(cfg["SECURE_COOKIES"])
    app.wsgi_app = MediaFastPath(  # type: ignore[method-assign]
        app.wsgi_app, grants, lambda resp: context.security_headers(resp, hsts=hsts)
    )
    if cfg["PROXY_HOPS"]:  # the client's own address, not nginx's, keys the login counts
        hops = int(cfg["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(studies.bp)
    app.register_blueprint(recordings.bp)
    app.register_blueprint(recall.bp)
    app.register_blueprint(recall_admin.bp)
    app.register_blueprint(followup.bp)
    app.register_blueprint(followup.admin_bp)
    app.register_blueprint(tus.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(timeline.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(motion.bp)
    app.register_blueprint(api_interview_chunks.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(prompts.bp)
    # the JSON API: registered through flask-smorest, which documents each route (openapi.py)
    api_blueprints = [
        api.bp, timeline.api_bp, exports.api_bp, api_imports.bp, api_interview.bp,
        api_transcripts.bp, api_interview_chunks.api_bp, api_prompts.bp,
    ]  # fmt: skip
    openapi.init_app(app, api_blueprints)
    for bp in api_blueprints:
        csrf.exempt(bp)

    from ipr import cli

    cli.init_app(app)
    return app
