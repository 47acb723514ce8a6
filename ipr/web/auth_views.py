"""Login and logout for researchers."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from ipr import auth, twofactor
from ipr.errors import ValidationError
from ipr.models import User
from ipr.web.context import client_ip, current_user, db, login_required, media_grants, user

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
    db().commit()
    if user.has_2fa:  # the password is right; the login waits for the second step
        auth.end_session(db(), session.get("sid"))
        session.clear()
        session["2fa"] = {"uid": user.id, "at": time.time(), "next": request.form.get("next")}
        return redirect(url_for("auth.second_step"))
    return _log_in(user, request.form.get("next"))


def _log_in(user: User, target: str | None) -> Any:
    auth.end_session(db(), session.get("sid"))
    media_grants().forget(request.environ)
    session.clear()  # rotate: nothing from before login survives, including the CSRF secret
    session["sid"] = auth.start_session(db(), user, client_ip())
    session.permanent = False
    return redirect(_safe_next(target))


def _pending_user() -> User | None:
    """The account whose password was just proved, for five minutes."""
    pending = session.get("2fa")
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > 300:
        return None
    user = db().get(User, pending.get("uid"))
    return user if user is not None and user.is_active and user.has_2fa else None


@bp.route("/login/code", methods=["GET", "POST"])
def second_step() -> Any:
    """The second step of a login: a code from the authenticator app, or a recovery code."""
    user = _pending_user()
    if user is None:
        session.pop("2fa", None)
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/code.html")
    if twofactor.verify(db(), user, request.form.get("code", ""), ip=client_ip()):
        return _log_in(user, session["2fa"].get("next"))
    return render_template("auth/code.html", error="That code is not right."), 401


@bp.post("/logout")
def logout() -> Any:
    auth.end_session(db(), session.get("sid"))
    media_grants().forget(request.environ)
    session.clear()
    return redirect(url_for("auth.login"))


# --- the account: password and two-factor ----------------------------------------------------


def _account(status: int = 200, **extra: Any) -> Any:
    me = user()
    ctx = {
        "me": me,
        "remaining_codes": twofactor.remaining_recovery_codes(db(), me) if me.has_2fa else 0,
        "requiring": twofactor.studies_requiring(db(), me),
        "uri": twofactor.otpauth_uri(me) if me.totp_secret and not me.has_2fa else None,
        "qr": twofactor.qr_data_uri(me) if me.totp_secret and not me.has_2fa else None,
        **extra,
    }
    return render_template("auth/account.html", **ctx), status


def _password_ok() -> bool:
    """Changes to the account ask for the current password again."""
    try:
        return auth._hasher.verify(user().password_hash, request.form.get("current_password", ""))
    except Exception:  # noqa: BLE001 — any verification failure is a wrong password
        return False


@bp.get("/account")
@login_required
def account() -> Any:
    return _account()


@bp.post("/account/password")
@login_required
def change_password() -> Any:
    new = request.form.get("new_password", "")
    if not _password_ok():
        return _account(401, error="Your current password is not right.")
    if new != request.form.get("confirm_password", ""):
        return _account(422, error="The two new passwords differ.")
    me = user()
    try:
        auth.set_password(db(), me, new, actor=me.email, ip=client_ip())
    except ValidationError as exc:
        db().rollback()
        return _account(422, error=exc.message)
    db().commit()
    # every other session of the account ended; this browser gets a fresh one
    session["sid"] = auth.start_session(db(), me, client_ip())
    return _account(message="Your password was changed. Other devices were logged out.")


@bp.post("/account/2fa/begin")
@login_required
def begin_2fa() -> Any:
    try:
        twofactor.begin(db(), user())
    except ValidationError as exc:
        return _account(422, error=exc.message)
    return _account()


@bp.post("/account/2fa/confirm")
@login_required
def confirm_2fa() -> Any:
    try:
        codes = twofactor.confirm(db(), user(), request.form.get("code", ""), ip=client_ip())
    except ValidationError as exc:
        db().rollback()
        return _account(422, error=exc.message)
    return _account(recovery_codes=codes, message="Two-factor authentication is on.")


@bp.post("/account/2fa/recovery-codes")
@login_required
def new_codes_2fa() -> Any:
    if not user().has_2fa or not _password_ok():
        return _account(401, error="Your current password is not right.")
    codes = twofactor.new_recovery_codes(db(), user())
    db().commit()
    message = "New recovery codes; the old ones no longer work."
    return _account(recovery_codes=codes, message=message)


@bp.post("/account/2fa/disable")
@login_required
def disable_2fa() -> Any:
    if not _password_ok():
        return _account(401, error="Your current password is not right.")
    try:
        twofactor.disable(db(), user(), ip=client_ip())
    except ValidationError as exc:
        return _account(422, error=exc.message)
    return _account(message="Two-factor authentication is off.")
