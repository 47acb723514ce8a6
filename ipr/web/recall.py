"""The participant's side: invitation links, the recall page, moments, voice notes, media.

A participant has no account. ``/r/<token>`` exchanges the link for a grant in the session
cookie (bound to the current link, so a new link or a revoke ends it on the next request) and
redirects to a URL without the token. Researcher-led sessions use the same page under the
researcher's login. Everything here is scoped to the one recall session; nothing reaches the
other participant's moments except ``recall.revealed_moments`` after a reveal.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
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

from ipr import recall
from ipr.access import get_or_404
from ipr.errors import N_, Conflict, IPRError, NotFound, Unauthorized, ValidationError
from ipr.models import DEFAULT_STUDY_TEXTS, Clip, Moment, RecallSession, Study, User, VoiceNote
from ipr.web import ranges
from ipr.web.context import current_user, db, storage
from ipr.web.limits import BodyTooLarge, save_bounded
from ipr.web.media import serve

bp = Blueprint("recall", __name__)

VOICE_TYPES = {"audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a"}
MAX_VOICE_BYTES = 20 * 1024 * 1024


def _grant() -> dict[str, Any] | None:
    grant = session.get("recall")
    return grant if isinstance(grant, dict) else None


def access(rs_id: int) -> tuple[RecallSession, User | None]:
    """The recall session and who is acting: its participant (None) or a leading researcher.

    Anything else is 404; a participant whose link was revoked or expired gets 401.
    """
    grant = _grant()
    if grant and grant.get("rs") == rs_id:
        rs = db().get(RecallSession, rs_id)
        if rs is not None:  # even the "link ended" answer speaks the study's language
            g.locale = db().get(Study, rs.study_id).language
        if rs is None or not recall.link_valid(rs) or recall.cookie_binding(rs) != grant.get("b"):
            session.pop("recall", None)
            raise Unauthorized(
                N_("This link no longer works. Please ask the researcher for a new one.")
            )
        return rs, None
    researcher = current_user()
    if researcher is None:
        raise NotFound()
    rs = get_or_404(db(), RecallSession, rs_id, researcher, "editor")
    if rs.mode != "researcher":
        raise NotFound()  # a self-guided participant's page is theirs alone
    g.locale = db().get(Study, rs.study_id).language
    return rs, researcher


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
    """Exchange the link for a cookie grant and drop the token from the address bar."""
    try:
        rs = recall.session_for_token(db(), token)
    except Unauthorized:
        return render_template("recall/ended.html"), 401
    session.clear()  # whoever used this browser before, this is now the participant's
    binding = recall.cookie_binding(rs)
    if rs.pin_hash:
        session["recall_pin"] = {"rs": rs.id, "b": binding}
        return redirect(url_for("recall.pin", rs_id=rs.id), 303)
    session["recall"] = {"rs": rs.id, "b": binding}
    return redirect(url_for("recall.page", rs_id=rs.id), 303)


@bp.route("/recall/<int:rs_id>/pin", methods=["GET", "POST"])
def pin(rs_id: int) -> Any:
    pending = session.get("recall_pin")
    if not isinstance(pending, dict) or pending.get("rs") != rs_id:
        raise NotFound()
    rs = db().get(RecallSession, rs_id)
    if rs is not None:
        g.locale = db().get(Study, rs.study_id).language
    language = g.get("locale", "en")
    if rs is None or not recall.link_valid(rs) or recall.cookie_binding(rs) != pending.get("b"):
        return render_template("recall/ended.html", page_lang=language), 401
    error = None
    if request.method == "POST":
        tries = int(pending.get("tries", 0)) + 1
        if tries > 5:
            session.pop("recall_pin", None)
            return render_template("recall/ended.html", page_lang=language), 401
        if recall.check_pin(rs, request.form.get("pin", "")):
            session.pop("recall_pin", None)
            session["recall"] = {"rs": rs.id, "b": pending["b"]}
            return redirect(url_for("recall.page", rs_id=rs.id), 303)
        session["recall_pin"] = {**pending, "tries": tries}
        error = True
    page = render_template("recall/pin.html", rs=rs, error=error, page_lang=language)
    return page, 401 if error else 200


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
    if (
        request.method == "GET"
        and request.accept_mimetypes.best_match(["text/html", "application/json"])
        != "application/json"
        and isinstance(exc, Unauthorized)
    ):
        return render_template("recall/ended.html", page_lang=g.get("locale", "en")), 401
    return jsonify({"error": body}), exc.status


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
    return render_template(
        "recall/page.html",
        rs=rs,
        participant=rs.participant,
        recording=rec,
        clips=list(clips),
        study=study,
        moments=[_m(rs, m) for m in recall.own_moments(db(), rs)],
        revealed=_revealed(rs),
        urls=urls,
        researcher_led=researcher is not None,
        page_lang=study.language,
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
    m, created = recall.create_moment(
        db(),
        rs,
        _json_body(),
        idempotency_key=request.headers.get("Idempotency-Key"),
        user=researcher,
    )
    return jsonify(_m(rs, m)), 201 if created else 200


@bp.patch("/recall/<int:rs_id>/moments/<int:moment_id>")
def update(rs_id: int, moment_id: int) -> Any:
    rs, researcher = access(rs_id)
    m = recall.own_moment(db(), rs, moment_id)
    try:
        recall.update_moment(db(), rs, m, _json_body(), user=researcher)
    except Conflict as exc:
        db().rollback()
        current = recall.own_moment(db(), rs, moment_id)
        body = {"error": {"code": exc.code, "message": exc.message}, "moment": _m(rs, current)}
        return jsonify(body), 409
    return jsonify(_m(rs, m))


@bp.delete("/recall/<int:rs_id>/moments/<int:moment_id>")
def delete(rs_id: int, moment_id: int) -> Any:
    rs, researcher = access(rs_id)
    m = recall.own_moment(db(), rs, moment_id)
    recall.delete_moment(db(), rs, m, storage(), user=researcher)
    return "", 204


@bp.post("/recall/<int:rs_id>/position")
def position(rs_id: int) -> Any:
    rs, _ = access(rs_id)
    recall.save_position(db(), rs, _json_body().get("t_ms"))
    return "", 204


@bp.post("/recall/<int:rs_id>/finish")
def finish(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    actor = researcher.email if researcher else f"participant {rs.participant.code}"
    recall.finish(db(), rs, actor=actor)
    return jsonify({"status": rs.status})


@bp.post("/recall/<int:rs_id>/stop")
def stop(rs_id: int) -> Any:
    rs, researcher = access(rs_id)
    if researcher is not None:
        return redirect(url_for("recordings.show", recording_id=rs.recording_id), 303)
    language = g.get("locale", "en")
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
    if rs.status == "submitted":
        raise recall.Locked()
    if request.method == "DELETE":
        if note is not None:
            storage().voice_path(key, note.storage_name).unlink(missing_ok=True)
            db().delete(note)
            db().commit()
        return "", 204
    upload = request.files.get("audio")
    mime = (upload.mimetype if upload else "").split(";")[0]
    if upload is None or mime not in VOICE_TYPES:
        raise ValidationError(N_("Send the voice note as field 'audio' (WebM, Ogg or MP4 audio)."))
    name = f"{uuid.uuid4().hex}.{VOICE_TYPES[mime]}"
    path = storage().voice_path(key, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the new note is stored whole before the old one is removed: a refusal keeps it
        size = save_bounded(upload, path, MAX_VOICE_BYTES, "voice note")
    except BodyTooLarge:
        raise ValidationError(N_("A voice note must be between 1 byte and 20 MB.")) from None
    if size == 0:
        path.unlink(missing_ok=True)
        raise ValidationError(N_("A voice note must be between 1 byte and 20 MB."))
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


# --- media -------------------------------------------------------------------------------------


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
