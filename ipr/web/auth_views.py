"""Login and logout for researchers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from ipr import auth
from ipr.web.context import client_ip, current_user, db, media_grants

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a researcher to another host after login."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.netloc and not parts.scheme:
            return target
    return url_for("studies.index")


@bp.get("/login")
def login() -> Any:
    if current_user() is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login_post() -> Any:
    email = request.form.get("email", "")
    user = auth.authenticate(
        db(),
        email,
        request.form.get("password", ""),
        ip=client_ip(),
        max_failures=current_app.config["LOGIN_MAX_FAILURES"],
        lockout_seconds=current_app.config["LOGIN_LOCKOUT_SECONDS"],
    )
    if user is None:
        return render_template(
            "auth/login.html",
            error="That email and password do not match an account.",
            email=email,
            next=request.form.get("next", ""),
        ), 401
    auth.end_session(db(), session.get("sid"))
    media_grants().forget(request.environ)
    session.clear()  # rotate: nothing from before login survives, including the CSRF secret
    session["sid"] = auth.start_session(db(), user, client_ip())
    session.permanent = False
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    auth.end_session(db(), session.get("sid"))
    media_grants().forget(request.environ)
    session.clear()
    return redirect(url_for("auth.login"))
