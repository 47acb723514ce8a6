"""The participant's side: invitation links, the recall page, moments, voice notes, media.

A participant has no account. ``/r/<token>`` (and the PIN prompt, when the link has a PIN)
exchanges the link for a device secret in the session cookie and redirects to a URL without the
token; every later request passes ``ipr.door.check``, so Stop, a revoke or a new link ends the
cookie on its next request. Researcher-led sessions use the same page under the
researcher's login. Everything here is scoped to the one recall session; nothing reaches the
other participant's moments except ``recall.revealed_moments`` after a reveal.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from ipr import door, followup, interview, recall, study_texts
from ipr.access import get_or_404
from ipr.errors import (
    N_,
    Conflict,
    IPRError,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unauthorized,
    ValidationError,
)
from ipr.models import DEFAULT_STUDY_TEXTS, Clip, Moment, RecallSession, Study, User, VoiceNote
from ipr.web import ranges
from ipr.web.context import (
    client_ip,
    current_user,
    db,
    huey,
    media_grants,
    moment_limits,
    pin_policy,
    rate_limiter,
    storage,
)
from ipr.web.limits import BodyTooLarge, save_bounded
from ipr.web.media import serve

bp = Blueprint("recall", __name__)

VOICE_TYPES = {"audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a"}


def _grant() -> dict[str, Any] | None:
    grant = session.get("recall")
    return grant if isinstance(grant, dict) else None


def access(rs_id: int) -> tuple[RecallSession, User | None]:
    """The recall session and who is acting: its participant (None) or a leading researcher.

    The participant passes ``door.check`` (device, link, expiry, revocation) on every request.
    Anything else is 404; a participant whose device or link has ended gets 401.
    """
    grant = _grant()
    if grant and grant.get("rs") == rs_id:
        rs = db().get(RecallSession, rs_id)
        if rs is not None:  # even the "link ended" answer speaks the study's language
            g.locale = _language(rs)
        try:
            rs = door.check(db(), rs_id, grant.get("d"))
        except Unauthorized:
            session.pop("recall", None)
            raise
        return rs, None
    researcher = current_user()
    if researcher is None:
        raise NotFound()
    rs = get_or_404(db(), RecallSession, rs_id, researcher, "editor")
    if rs.mode != "researcher":
        raise NotFound()  # a self-guided participant's page is theirs alone
    g.locale = _language(rs)
    return rs, researcher


def _language(rs: RecallSession) -> str:
    """The participant's own language among the study's (else the study's language)."""
    study = db().get(Study, rs.study_id)
    # The session's identity map holds the study weakly: kept for the request, the save's own
    # look-up of it (ipr.recall.clean_moment) finds it there instead of sending a second SELECT.
    g.recall_study = study
    return study_texts.participant_language(study, rs.participant)


def _write(rs: RecallSession, researcher: User | None) -> None:
    """Count a participant's write against the link's allowance per minute (a researcher's
    writes are counted for every route in ``context``)."""
    if researcher is None:
        rate_limiter().hit(f"rs:{rs.id}")


def _voice_url(rs: RecallSession, m: Moment) -> str | None:
    has = db().scalar(select(VoiceNote.id).where(VoiceNote.moment_id == m.id).limit(1))
    return url_for("recall.voice", rs_id=rs.id, moment_id=m.id) if has else None


def _m(rs: RecallSession, m: Moment) -> dict[str, Any]:
    return recall.moment_dict(m, _voice_url(rs, m))


def _revealed(rs: RecallSession) -> list[dict[str, Any]] | None:
    if rs.recording.revealed_at is None:
        return None
    return [recall.moment_dict(m) for m in recall.revealed_moments(db(), rs)]


# --- entry -------------------------------------------------------------------------------------


@bp.get("/r/<token>")
def enter(token: str) -> Any:
    """Exchange the link for a device cookie (after the PIN, if any) and drop the token."""
    try:
        rs = recall.session_for_token(db(), token)
    except Unauthorized:
        return render_template("recall/ended.html"), 401
    session.clear()  # whoever used this browser before, this is now the participant's
    if rs.pin_hash:
        session["recall_pin"] = {"rs": rs.id, "b": recall.cookie_binding(rs)}
        return redirect(url_for("recall.pin", rs_id=rs.id), 303)
    session["recall"] = {
        "rs": rs.id,
        "d": door.open_device(db(), rs, kind="cookie", ip=client_ip()),
    }
    return redirect(_landing(rs), 303)


def _landing(rs: RecallSession) -> str:
    """Where the link leads: the follow-up once it is due (ipr.followup), else the recall."""
    if followup.link_leads_here(followup.get(db(), rs)):
        return url_for("followup.page", rs_id=rs.id)
    return url_for("recall.page", rs_id=rs.id)


@bp.route("/recall/<int:rs_id>/pin", methods=["GET", "POST"])
def pin(rs_id: int) -> Any:
    """The PIN prompt. Wrong PINs are counted on the server (``door.prove_pin``), not here."""
    pending = session.get("recall_pin")
    if not isinstance(pending, dict) or pending.get("rs") != rs_id:
        raise NotFound()
    rs = db().get(RecallSession, rs_id)
    if rs is not None:
        g.locale = _language(rs)
    language = g.get("locale", "en")
    if rs is None or not recall.link_valid(rs) or recall.cookie_binding(rs) != pending.get("b"):
        return render_template("recall/ended.html", page_lang=language), 401
    error, status = None, 200
    if door.pin_locked(db(), rs):
        error, status = gettext(door.PIN_LOCKED), 429
    elif request.method == "POST":
        try:
            ok = door.prove_pin(db(), rs, request.form.get("pin", ""), pin_policy(), ip=client_ip())
        except TooManyAttempts as exc:
            if exc.template == door.PIN_LOCKED:
                message = gettext(door.PIN_LOCKED)
            else:
                message = gettext(door.PIN_WAIT_SECONDS, s=exc.retry_after)
            page = render_template("recall/pin.html", rs=rs, error=message, page_lang=language)
            return page, 429, {"Retry-After": str(exc.retry_after)}
        if ok:
            session.pop("recall_pin", None)
            secret = door.open_device(db(), rs, kind="cookie", ip=client_ip())
            session["recall"] = {"rs": rs.id, "d": secret}
            return redirect(_landing(rs), 303)
        error, status = gettext("That PIN is not right. Please try again."), 401
    page = render_template("recall/pin.html", rs=rs, error=error, page_lang=language)
    return page, status


# --- the page ----------------------------------------------------------------------------------


@bp.app_template_filter("study_text")
def study_text(value: str) -> str:
    """A study text the app wrote (the default HAT scale) in the participant's language."""
    return gettext(value) if value in DEFAULT_STUDY_TEXTS else value


@bp.errorhandler(IPRError)
def participant_error(exc: IPRError) -> Any:
    """The participant reads errors in the study's language."""
    db().rollback()
    message = gettext(exc.template, **exc.params) if exc.params else gettext(exc.template)
    body: dict[str, Any] = {"code": exc.code, "message": message}
    if exc.field:
        body["field"] = exc.field
    headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else {}
    if (
        request.method == "GET"
        and request.accept_mimetypes.best_match(["text/html", "application/json"])
        != "application/json"
        and isinstance(exc, Unauthorized)
    ):
        return render_template("recall/ended.html", page_lang=g.get("locale", "en")), 401
    return jsonify({"error": body}), exc.status, headers


@bp.get("/recall/<int:rs_id>")
def page(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    rec = rs.recording
    study = db().get(Study, rs.study_id)
    clips = db().scalars(select(Clip).where(Clip.recording_id == rec.id).order_by(Clip.index))
    urls = {
        "moments": url_for("recall.moments", rs_id=rs.id),
        "position": url_for("recall.position", rs_id=rs.id),
        "finish": url_for("recall.finish", rs_id=rs.id),
        "stop": url_for("recall.stop", rs_id=rs.id),
        "media": url_for("recall.media", rs_id=rs.id),
        "clip_thumb": url_for("recall.clip_thumb", rs_id=rs.id, index=0).replace(
            "/0.jpg", "/{index}.jpg"
        ),
        "voice": url_for("recall.voice", rs_id=rs.id, moment_id=0).replace(
            "/moments/0/", "/moments/{moment_id}/"
        ),
    }
    if researcher is not None:  # the prompt answers (ipr.web.prompts) go through the outbox
        urls["answers"] = url_for("prompts.save_answers", rs_id=rs.id, moment_id=0).replace(
            "/moments/0/", "/moments/{moment_id}/"
        )
    return render_template(
        "recall/page.html",
        rs=rs,
        participant=rs.participant,
        recording=rec,
        clips=list(clips),
        study=study_texts.for_participant(study, _language(rs)),
        moments=[_m(rs, m) for m in recall.own_moments(db(), rs)],
        revealed=_revealed(rs),
        frozen_blind=recall.revealed(rs) and researcher is None,
        urls=urls,
        researcher_led=researcher is not None,
        page_lang=_language(rs),
    )


@bp.get("/recall/<int:rs_id>/moments")
def moments(rs_id: int) -> Any:
    rs, _ = access(rs_id)
    return jsonify(
        {
            "moments": [_m(rs, m) for m in recall.own_moments(db(), rs)],
            "revealed": _revealed(rs),
        }
    )


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(N_("Send a JSON object."))
    return data


@bp.post("/recall/<int:rs_id>/moments")
def create(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    _write(rs, researcher)
    m, created = recall.create_moment(
        db(),
        rs,
        _json_body(),
        idempotency_key=request.headers.get("Idempotency-Key"),
        user=researcher,
        limits=moment_limits(),
    )
    if created:  # a moment made just now has no voice note yet: no query for one
        return jsonify(recall.moment_dict(m)), 201
    return jsonify(_m(rs, m)), 200


@bp.patch("/recall/<int:rs_id>/moments/<int:moment_id>")
def update(rs_id: int, moment_id: int) -> Any:
    rs, researcher = access(rs_id)
    _write(rs, researcher)
    m = recall.own_moment(db(), rs, moment_id)
    try:
        recall.update_moment(db(), rs, m, _json_body(), user=researcher, limits=moment_limits())
    except Conflict as exc:
        if exc.code != "conflict":  # locked or frozen: the error handler says so in their language
            raise
        db().rollback()
        current = recall.own_moment(db(), rs, moment_id)
        body = {"error": {"code": exc.code, "message": exc.message}, "moment": _m(rs, current)}
        return jsonify(body), 409
    return jsonify(_m(rs, m))


@bp.delete("/recall/<int:rs_id>/moments/<int:moment_id>")
def delete(rs_id: int, moment_id: int) -> Any:
    rs, researcher = access(rs_id)
    _write(rs, researcher)
    m = recall.own_moment(db(), rs, moment_id)
    recall.delete_moment(db(), rs, m, storage(), user=researcher)
    return "", 204


@bp.post("/recall/<int:rs_id>/position")
def position(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    _write(rs, researcher)
    recall.save_position(db(), rs, _json_body().get("t_ms"))
    return "", 204


@bp.post("/recall/<int:rs_id>/finish")
def finish(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    actor = researcher.email if researcher else f"participant {rs.participant.code}"
    recall.finish(db(), rs, actor=actor)
    return jsonify({"status": rs.status})


@bp.post("/recall/<int:rs_id>/distress")
def distress(rs_id: int) -> Any:
    """*I need to stop / this is distressing*, from the recall page or the follow-up page
    (``{"where": "followup", "moment_id": …}``): the session pauses, the owners are told, and
    the answer carries the study's support text (``ipr.interview.flag_distress``). Never
    refused over its body: a missing or odd one counts as the recall page."""
    rs, researcher = access(rs_id)
    _write(rs, researcher)
    smtp = bool(current_app.config.get("SMTP_URL") and current_app.config.get("SMTP_FROM"))
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    out = interview.flag_distress(
        db(), huey(), rs, smtp=smtp, by_researcher=researcher, ip=client_ip(),
        where=str(body.get("where") or "recall"), moment_id=body.get("moment_id"),
    )  # fmt: skip
    return jsonify(out)


@bp.post("/recall/<int:rs_id>/stop")
def stop(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    if researcher is not None:
        return redirect(url_for("recordings.show", recording_id=rs.recording_id), 303)
    language = g.get("locale", "en")
    recall.end_devices(db(), rs)  # every browser and client of this link must open it again
    recall.take_break(rs)
    db().commit()
    media_grants().forget(request.environ)
    session.pop("recall", None)
    g.locale = language
    return render_template("recall/goodbye.html", page_lang=language)


# --- voice notes -------------------------------------------------------------------------------


@bp.route("/recall/<int:rs_id>/moments/<int:moment_id>/voice", methods=["GET", "POST", "DELETE"])
def voice(rs_id: int, moment_id: int) -> Any:
    rs, researcher = access(rs_id)
    m = recall.own_moment(db(), rs, moment_id)
    key = rs.recording.storage_key
    note = db().scalar(select(VoiceNote).where(VoiceNote.moment_id == m.id))
    if request.method == "GET":
        if note is None:
            raise NotFound()
        return ranges.send_range(storage().voice_path(key, note.storage_name), note.mime_type)
    recall.check_writable(rs, m, researcher)
    recall.mark_correction(db(), rs, m, researcher, "voice note")
    _write(rs, researcher)
    if request.method == "DELETE":
        if note is not None:
            storage().voice_path(key, note.storage_name).unlink(missing_ok=True)
            db().delete(note)
            db().commit()
        return "", 204
    limit = current_app.config["VOICE_NOTE_MAX_BYTES"]
    too_large = TooLarge(
        N_("A voice note can be at most %(mb)s MB."), params={"mb": round(limit / 1024**2)}
    )
    # The form parser stops reading past this, so an oversized body is never stored whole.
    request.max_content_length = limit + 64 * 1024
    try:
        upload = request.files.get("audio")
    except RequestEntityTooLarge:
        raise too_large from None
    mime = (upload.mimetype if upload else "").split(";")[0]
    if upload is None or mime not in VOICE_TYPES:
        raise ValidationError(N_("Send the voice note as field 'audio' (WebM, Ogg or MP4 audio)."))
    name = f"{uuid.uuid4().hex}.{VOICE_TYPES[mime]}"
    path = storage().voice_path(key, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the new note is stored whole before the old one is removed: a refusal keeps it
        size = save_bounded(upload, path, limit, "voice note")
    except BodyTooLarge:
        raise too_large from None
    if size == 0:
        path.unlink(missing_ok=True)
        raise ValidationError(N_("The voice note is empty."))
    if note is not None:  # a new recording replaces the old
        storage().voice_path(key, note.storage_name).unlink(missing_ok=True)
        db().delete(note)
        db().flush()
    db().add(
        VoiceNote(
            study_id=rs.study_id, moment_id=m.id, storage_name=name, mime_type=mime, size_bytes=size
        )
    )
    db().commit()
    return jsonify(_m(rs, m)), 201


@bp.get("/recall/<int:rs_id>/media/playable.mp4")
def media(rs_id: int) -> Any:
    rs, _ = access(rs_id)
    return serve(storage().derived(rs.recording.storage_key, "playable.mp4"), "video/mp4")


@bp.get("/recall/<int:rs_id>/clips/<int:index>.jpg")
def clip_thumb(rs_id: int, index: int) -> Any:
    rs, _ = access(rs_id)
    if not 0 <= index <= 999:
        raise NotFound()
    return serve(
        storage().derived(rs.recording.storage_key, f"clips/{index:03d}.jpg"), "image/jpeg"
    )
