"""The application factory: configuration layers, database, security headers, blueprints."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from ipr.config import load_config
from ipr.db import Database
from ipr.jobs import make_huey
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
        SESSION_COOKIE_NAME="ipr_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(cfg["SECURE_COOKIES"]),
        WTF_CSRF_TIME_LIMIT=None,  # tied to the login session, which has its own idle timeout
        WTF_CSRF_SSL_STRICT=bool(cfg["SECURE_COOKIES"]),
        MAX_FORM_MEMORY_SIZE=2 * 1024 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=0,
    )
    logging.basicConfig(level=cfg["LOG_LEVEL"])
    app.extensions["ipr_db"] = Database(cfg["DATABASE_URL"])
    app.extensions["ipr_huey"] = make_huey(cfg, instance_path)
    app.extensions["ipr_db"].queue = app.extensions["ipr_huey"]
    app.extensions["ipr_storage"] = Storage(cfg["RECORDINGS_DIR"])
    grants = MediaGrants(cfg["MEDIA_GRANT_SECONDS"])
    app.extensions["ipr_media_grants"] = grants
    csrf.init_app(app)
    htmx.init_app(app)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ROOT / "translations")
    babel.init_app(app, locale_selector=_locale)

    from ipr.web import (
        api,
        auth_views,
        context,
        exports,
        media,
        recall,
        recall_admin,
        recordings,
        studies,
        timeline,
        tus,
    )

    context.init_app(app)
    app.wsgi_app = MediaFastPath(app.wsgi_app, grants, context.security_headers)  # type: ignore[method-assign]
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(studies.bp)
    app.register_blueprint(recordings.bp)
    app.register_blueprint(recall.bp)
    app.register_blueprint(recall_admin.bp)
    app.register_blueprint(tus.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(timeline.bp)
    csrf.exempt(api.bp)

    from ipr import cli

    cli.init_app(app)
    return app
