"""The authorization matrix: identity × route × method × blind state, generated from the app.

Every rule in ``app.url_map`` and every operation in the OpenAPI document must have an entry in
``MATRIX`` (a new route without one fails ``test_every_route_has_a_matrix_entry``). Each entry
names who may use the route; the walk then sends one real request per identity and checks the
answer: allowed identities get no 401/403/404/5xx and no login redirect, the others get exactly
the refusal their kind earns (anonymous → login or 401, non-member/admin → 404, too low a role
→ 403, another participant → 404). Participants are walked twice, blind and revealed; while
blind no answer to one participant holds the other's moment text. Requests that would destroy
the fixture (deletes, revokes, Stop) are sent only by identities that must be refused.
"""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from ipr import auth
from ipr.models import (
    ApiToken,
    Clip,
    InterviewAudio,
    Membership,
    Moment,
    RecallSession,
    Recording,
    Study,
    Upload,
    User,
    utcnow,
)
from tests.conftest import MEDIA_DATA, PASSWORD, Web, api_token, jpost, participant

ANON, NONMEMBER, ADMIN = "anonymous", "non-member", "admin"
VIEWER, EDITOR, OWNER = "viewer", "editor", "owner"
P_THIS, P_OTHER = "participant (this session)", "participant (other session)"
RESEARCHERS = (NONMEMBER, ADMIN, VIEWER, EDITOR, OWNER)
PARTICIPANTS = (P_THIS, P_OTHER)
RANK = {VIEWER: 0, EDITOR: 1, OWNER: 2}
ALLOW = "allow"
OCTET = "application/offset+octet-stream"
TUS_META = "filename eC5tcDQ=,session_label UzI="  # x.mp4, S2

THIS_SECRET = "this participant's own words"
OTHER_SECRET = "the other participant's words"

# (endpoint, method) -> (who may use it, destructive). Kinds:
#   public      anyone
#   link        a participant's link in the URL (the matrix sends an unknown one: 401 for all)
#   login       the login form (the matrix sends a wrong password: 401 for all)
#   pin         the PIN form of a pending link (nobody in the matrix has one pending: refused)
#   account     any logged-in researcher (own account, own studies list)
#   own-token   the owner's own API token (others: 404)
#   read / write / owner   a member of the study with at least viewer / editor / owner
#   participant the participant of this self-guided session only
#   led         the leading researcher of a researcher-led session (prompt answers)
#   recall-api  this participant's link token; members read; nobody else writes
#   device      an invitation token as Bearer buys a device token (only a link without a PIN
#               works without one: the other participant's); anything else is refused
#   second-step the login's second factor: nobody in the matrix has a login pending
#   admin       administrators only (every study's jobs); other researchers 404
#   skip        not walked (logging out would end the identity's session): reason in a comment
MATRIX: dict[tuple[str, str], tuple[str, bool]] = {
    ("static", "GET"): ("public", False),
    ("auth.login", "GET"): ("public", False),
    ("auth.login_post", "POST"): ("login", False),
    ("auth.logout", "POST"): ("skip", True),  # ends only the caller's own session
    ("api.openapi", "GET"): ("public", False),
    ("recall.enter", "GET"): ("link", False),
    ("recall.pin", "GET"): ("pin", False),
    ("recall.pin", "POST"): ("pin", False),
    ("studies.home", "GET"): ("account", False),
    ("studies.index", "GET"): ("account", False),
    ("studies.create", "POST"): ("account", False),
    ("exports.tokens", "GET"): ("account", False),
    ("exports.create_token", "POST"): ("account", False),
    ("exports.revoke_token", "POST"): ("own-token", True),
    ("api.list_studies", "GET"): ("account", False),
    ("api.create_study", "POST"): ("account", False),
    # studies
    ("studies.show", "GET"): ("read", False),
    ("studies.section", "GET"): ("read", False),
    ("studies.audit_log", "GET"): ("owner", False),
    ("studies.save_settings", "POST"): ("editor", False),
    ("studies.save_instructions", "POST"): ("editor", False),
    ("studies.add_dyad", "POST"): ("editor", False),
    ("studies.update_dyad", "POST"): ("editor", False),
    ("studies.rename_participant", "POST"): ("editor", False),
    ("studies.add_code", "POST"): ("editor", False),
    ("studies.update_code", "POST"): ("editor", False),
    ("studies.delete_code", "POST"): ("editor", True),
    ("studies.add_scale", "POST"): ("editor", False),
    ("studies.update_scale", "POST"): ("editor", False),
    ("studies.delete_scale", "POST"): ("editor", True),
    ("studies.add_member", "POST"): ("owner", False),
    ("studies.change_role", "POST"): ("owner", True),
    ("studies.remove_member", "POST"): ("owner", True),
    ("api.get_study", "GET"): ("read", False),
    ("api.update_study", "PATCH"): ("editor", False),
    ("api.list_dyads", "GET"): ("read", False),
    ("api.create_dyad", "POST"): ("editor", False),
    ("api.get_dyad", "GET"): ("read", False),
    ("api.update_dyad", "PATCH"): ("editor", False),
    ("api.delete_dyad", "DELETE"): ("editor", True),
    ("api.list_participants", "GET"): ("read", False),
    ("api.get_participant", "GET"): ("read", False),
    ("api.update_participant", "PATCH"): ("editor", False),
    # recordings, uploads, media
    ("recordings.dyad", "GET"): ("read", False),
    ("recordings.show", "GET"): ("read", False),
    ("recordings.status", "GET"): ("read", False),
    ("recordings.retry", "POST"): ("editor", False),
    ("recordings.resegment", "POST"): ("editor", False),
    ("recordings.adjust_clip", "POST"): ("editor", False),
    ("recordings.delete", "POST"): ("editor", True),
    ("recordings.delete_dyad", "POST"): ("editor", True),
    ("recordings.erase_participant", "POST"): ("editor", True),
    ("motion.save_regions", "POST"): ("editor", False),
    ("motion.suggest", "GET"): ("editor", False),
    ("motion.study_settings", "POST"): ("editor", False),
    ("api.list_recordings", "GET"): ("read", False),
    ("api.upload_recording", "POST"): ("editor", False),
    ("api.get_recording", "GET"): ("read", False),
    ("api.delete_recording", "DELETE"): ("editor", True),
    ("tus.discover", "OPTIONS"): ("editor", False),
    ("tus.create", "POST"): ("editor", False),
    ("tus.discover_upload", "OPTIONS"): ("editor", False),
    ("tus.status", "HEAD"): ("editor", False),
    ("tus.append", "PATCH"): ("editor", False),
    ("tus.terminate", "DELETE"): ("editor", True),
    ("media.derived", "GET"): ("read", False),
    ("media.clip", "GET"): ("read", False),
    ("media.clip_download", "GET"): ("read", False),
    # recall, researcher side
    ("recall_admin.section", "GET"): ("read", False),
    ("recall_admin.create", "POST"): ("editor", False),
    ("recall_admin.reissue", "POST"): ("editor", True),
    ("recall_admin.revoke", "POST"): ("editor", True),
    ("recall_admin.reopen", "POST"): ("editor", False),
    ("recall_admin.reveal", "POST"): ("editor", True),
    ("recall_admin.annotate", "POST"): ("editor", False),
    ("recall_admin.voice", "GET"): ("read", False),
    ("api.create_recall_session", "POST"): ("editor", False),
    ("api.list_recall_sessions", "GET"): ("read", False),
    ("api.reveal", "POST"): ("editor", True),
    # recall, participant side
    ("recall.page", "GET"): ("participant", False),
    ("recall.moments", "GET"): ("participant", False),
    ("recall.create", "POST"): ("participant", False),
    ("recall.update", "PATCH"): ("participant", False),
    ("recall.delete", "DELETE"): ("participant", True),
    ("recall.voice", "GET"): ("participant", False),
    ("recall.voice", "POST"): ("participant", False),
    ("recall.voice", "DELETE"): ("participant", True),
    ("recall.position", "POST"): ("participant", False),
    ("recall.finish", "POST"): ("participant", True),
    ("recall.stop", "POST"): ("participant", True),
    ("recall.media", "GET"): ("participant", False),
    ("recall.clip_thumb", "GET"): ("participant", False),
    # the follow-up pass: the same door as the recall page (tests/test_followup.py walks it
    # again with the follow-up due)
    ("followup.page", "GET"): ("participant", False),
    ("followup.ratings", "GET"): ("participant", False),
    ("followup.save", "PUT"): ("participant", False),
    ("followup.finish", "POST"): ("participant", True),
    ("followup_admin.open_now", "POST"): ("editor", False),
    ("followup_admin.reschedule", "POST"): ("editor", False),
    ("followup_admin.email", "POST"): ("editor", False),
    ("followup_admin.save_settings", "POST"): ("editor", False),
    ("api.recall_moments", "GET"): ("recall-api", False),
    ("api.recall_create_moment", "POST"): ("recall-api", False),
    ("api.recall_update_moment", "PATCH"): ("recall-api", False),
    ("api.recall_delete_moment", "DELETE"): ("recall-api", True),
    # exports, imports, timeline
    ("exports.study_export", "GET"): ("read", False),
    ("exports.dyad_export", "GET"): ("read", False),
    ("exports.recording_export", "GET"): ("read", False),
    ("api_exports.api_study_export", "GET"): ("read", False),
    ("api_exports.api_dyad_export", "GET"): ("read", False),
    ("api_exports.api_recording_export", "GET"): ("read", False),
    ("exports.import_form", "GET"): ("editor", False),
    ("exports.import_post", "POST"): ("editor", False),
    ("exports.import_preview", "POST"): ("editor", False),
    ("timeline.page", "GET"): ("read", False),
    ("timeline.data", "GET"): ("read", False),
    ("timeline.chance", "GET"): ("read", False),
    ("timeline.synchrony", "GET"): ("read", False),
    ("timeline.dyad", "GET"): ("read", False),
    ("timeline.dashboard", "GET"): ("read", False),
    ("api_timeline.timeline", "GET"): ("read", False),
    # participant devices (the one door), accounts, operations
    ("api.recall_device", "POST"): ("device", False),
    ("auth.second_step", "GET"): ("second-step", False),
    ("auth.second_step", "POST"): ("second-step", False),
    ("auth.account", "GET"): ("account", False),
    ("auth.change_password", "POST"): ("account", True),  # would change the identity's password
    ("auth.begin_2fa", "POST"): ("account", False),
    ("auth.confirm_2fa", "POST"): ("account", False),
    ("auth.disable_2fa", "POST"): ("account", True),
    ("auth.new_codes_2fa", "POST"): ("account", True),  # replaces the codes (password asked)
    ("recall_admin.correct", "POST"): ("editor", True),  # rewrites a moment (audited)
    ("recall_admin.unlock", "POST"): ("editor", False),
    ("api_imports.create_import", "POST"): ("editor", False),
    ("recall_admin.email", "POST"): ("editor", False),  # SMTP set in the world: queues an e-mail
    ("studies.save_texts", "POST"): ("editor", False),
    ("ops.healthz", "GET"): ("public", False),
    ("ops.readyz", "GET"): ("public", False),
    ("ops.metrics_view", "GET"): ("public", False),  # the test client is 127.0.0.1 (METRICS_ALLOW)
    ("ops.jobs_page", "GET"): ("admin", False),
    ("ops.retry_job", "POST"): ("admin", True),  # re-queues a job
    # the recall interview (ipr/web/api_interview.py)
    ("api_interview.get_recall_session", "GET"): ("read", False),
    ("api_interview.interview_audio", "GET"): ("read", False),
    ("api_interview.upload_audio", "POST"): ("editor", False),
    ("api_interview.import_transcript", "POST"): ("editor", False),
    ("recall_admin.import_transcript", "POST"): ("editor", False),  # the page's form; no file: 422
    ("api_interview.api_distress", "POST"): ("recall-api", True),  # pauses the session
    ("recall.distress", "POST"): ("participant", True),  # pauses the session
    ("api_interview.put_support_text", "PUT"): ("editor", False),
    ("api_interview.list_consent", "GET"): ("read", False),
    ("api_interview.record_consent", "POST"): ("editor", False),
    ("api_interview.withdraw", "POST"): ("owner", True),  # erases a participant's data
    # the interviewer's prompt sheet and answers (ipr/web/prompts.py, ipr/web/api_prompts.py)
    ("prompts.save_sheet", "POST"): ("editor", False),
    ("prompts.save_answers", "PUT"): ("led", False),
    ("api_prompts.get_sheet", "GET"): ("read", False),
    ("api_prompts.put_sheet", "PUT"): ("editor", False),
    ("api_prompts.get_answers", "GET"): ("read", False),
    ("api_prompts.put_answers", "PUT"): ("editor", False),  # a self-guided session: 409
    # the interview recorder's takes (ipr/web/api_interview_chunks.py): the recall page's door
    # (login cookie) and the API's (token); the fixture's take is planted on disk
    ("interview_rec.start_take", "POST"): ("editor", False),  # 409: the session is self-guided
    ("interview_rec.list_takes", "GET"): ("editor", False),
    ("interview_rec.take_status", "GET"): ("editor", False),
    ("interview_rec.append_chunk", "PATCH"): ("editor", False),  # no Upload-Offset: 400
    ("interview_rec.put_events", "PUT"): ("editor", False),
    ("interview_rec.finish_take", "POST"): ("editor", False),  # nothing recorded: 409
    ("interview_rec.discard_take", "DELETE"): ("editor", True),
    ("interview_rec.audio", "GET"): ("read", False),
    ("api_interview_chunks.start_take", "POST"): ("editor", False),
    ("api_interview_chunks.list_takes", "GET"): ("editor", False),
    ("api_interview_chunks.take_status", "GET"): ("editor", False),
    ("api_interview_chunks.append_chunk", "PATCH"): ("editor", False),
    ("api_interview_chunks.put_events", "PUT"): ("editor", False),
    ("api_interview_chunks.finish_take", "POST"): ("editor", False),
    ("api_interview_chunks.discard_take", "DELETE"): ("editor", True),
    # interview transcription (ipr/web/api_transcripts.py) and the study's search page
    ("api_transcripts.transcribe", "POST"): ("editor", False),  # 409: no model configured
    ("recall_admin.transcribe", "POST"): ("editor", False),  # the page's button; no model: 422
    ("search.page", "GET"): ("read", False),
}


def walked_methods(rule) -> list[str]:
    """The methods a client uses on a rule (HEAD/OPTIONS only where they are the whole route)."""
    methods = set(rule.methods) - {"HEAD", "OPTIONS"}
    if not methods:
        methods = {"HEAD"} if "HEAD" in rule.methods else {"OPTIONS"}
    return sorted(methods)


def app_operations(app) -> set[tuple[str, str]]:
    return {(r.endpoint, m) for r in app.url_map.iter_rules() for m in walked_methods(r)}


def openapi_operations(app) -> set[tuple[str, str]]:
    """(endpoint, method) of every operation in /api/v1/openapi.json, via the url_map."""
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    served = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1") :])
            for method in walked_methods(rule):
                served[(template, method)] = rule.endpoint
    ops = set()
    for path, item in doc["paths"].items():
        for method in item:
            if method.upper() in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
                key = (path, method.upper())
                assert key in served, f"OpenAPI {key} is served by no route"
                ops.add((served[key], method.upper()))
    return ops


def test_every_route_has_a_matrix_entry(app) -> None:
    missing = app_operations(app) - MATRIX.keys()
    assert not missing, f"add these routes to MATRIX in {__file__}: {sorted(missing)}"
    stale = MATRIX.keys() - app_operations(app)
    assert not stale, f"MATRIX names routes the app no longer has: {sorted(stale)}"
    documented = openapi_operations(app)
    assert len(documented) >= 25
    assert not documented - MATRIX.keys(), sorted(documented - MATRIX.keys())


def test_a_route_without_an_entry_is_caught(app) -> None:
    """The guard itself: a freshly added route shows up as missing."""
    app.add_url_rule("/brand-new/<int:study_id>", "brand_new", lambda study_id: "")
    assert app_operations(app) - MATRIX.keys() == {("brand_new", "GET")}


# --- the walk ------------------------------------------------------------------------------------


def expected(kind: str, who: str, method: str, api: bool) -> str | set[int]:
    """ALLOW, or the set of statuses that refuse ``who``."""
    login = {401} if api else {302, 401}  # a page redirects to the login; htmx/JSON gets 401
    write = method not in ("GET", "HEAD", "OPTIONS")
    if kind == "public":
        return ALLOW
    if kind == "link":  # an unknown link
        return {401}
    if kind == "login":  # a wrong password: refused, then slowed down
        return {401, 429}
    if kind == "pin":
        return {401, 404}
    if kind == "account":
        return ALLOW if who in RESEARCHERS else login
    if kind == "device":
        return ALLOW if who == P_OTHER else {401, 404}
    if kind == "second-step":
        return login  # no login is pending: back to the login form
    if kind == "admin":
        return ALLOW if who == ADMIN else {404} if who in RESEARCHERS else login
    if kind == "own-token":
        return ALLOW if who == OWNER else {404} if who in RESEARCHERS else login
    if kind in ("read", "editor", "owner"):
        if who in (ANON, *PARTICIPANTS):
            return login
        if who in (NONMEMBER, ADMIN):
            return {404}
        need = VIEWER if kind == "read" else kind
        return ALLOW if RANK[who] >= RANK[need] else {403}
    if kind == "participant":  # a viewer is refused for its role before the session is seen
        return ALLOW if who == P_THIS else {403, 404} if who == VIEWER else {404}
    if kind == "led":  # the leading researcher of a researcher-led session only; the walked
        # sessions are self-guided, so nobody may: not its participant, not the study's members
        return {403} if who == VIEWER else {404}
    if kind == "recall-api":
        if who == P_THIS:
            return ALLOW
        if who == ANON:
            return {401}
        if who in (VIEWER, EDITOR, OWNER):
            if not write:
                return ALLOW
            return {403} if who == VIEWER else {404}  # a self-guided session is theirs alone
        return {404}
    raise AssertionError(f"unknown kind {kind!r}")


class Identity:
    """A browser (cookies, CSRF) and the bearer token its API calls carry."""

    def __init__(self, name: str, web: Web, bearer: str | None, participant_id: int) -> None:
        self.name, self.web, self.bearer = name, web, bearer
        self.participant_id = participant_id  # bodies name a real one, so a 404 means the URL
        if web.csrf is None:
            web.get("/login")

    def send(self, method: str, url: str):
        headers = {"Tus-Resumable": "1.0.0"}
        if url.startswith("/api/"):
            if self.bearer:
                headers["Authorization"] = f"Bearer {self.bearer}"
            body = {"name": "x", "code": "x", "t_ms": 1, "version": 1,
                    "participant_id": self.participant_id, "mode": "researcher"}  # fmt: skip
            return self.web.client.open(url, method=method, json=body, headers=headers)
        headers["X-CSRFToken"] = self.web.csrf or ""
        if method == "PATCH" and url.startswith("/uploads/"):
            headers.update({"Upload-Offset": "0", "Content-Type": OCTET})
            return self.web.client.open(url, method=method, headers=headers, data=b"x")
        if method == "POST" and url.endswith("/uploads"):
            headers.update({"Upload-Length": "10", "Upload-Metadata": TUS_META})
        if url.startswith("/recall/") and method in ("POST", "PATCH"):
            return self.web.client.open(url, method=method, json={"t_ms": 1}, headers=headers)
        form = {"name": "changed", "code": "99", "role": "owner", "email": "x@example.org",
                "participant_id": str(self.participant_id), "mode": "researcher"}  # fmt: skip
        return self.web.client.open(url, method=method, headers=headers, data=form)


@pytest.fixture
def world(app, db, owner, owner_web, study, make_user):
    """One study with a ready recording, two self-guided recall sessions and every identity."""
    app.config.update(SMTP_URL="smtp://127.0.0.1:9", SMTP_FROM="study@example.org")  # never sent
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"})
    owner_web.post(f"/studies/{study.id}/codes", {"name": "Insight", "colour": "#123456"})
    db.expire_all()
    dyad = study.dyads[0]
    storage = app.extensions["ipr_storage"]
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Session 1",
        storage_key=storage.new_key(), original_name="s1.mp4", status="ready",
        duration_ms=60_000, width=320, height=180, fps_num=25, fps_den=1, has_audio=True,
    )  # fmt: skip
    rec.clips.append(Clip(study_id=study.id, index=1, start_ms=0, end_ms=60_000))
    db.add(rec)
    db.commit()
    out = storage.derived_dir(rec.storage_key)
    (out / "clips").mkdir(parents=True)
    for name in ("playable.mp4", "sprite.jpg"):
        (out / name).write_bytes(MEDIA_DATA)
    for name in ("waveform.json", "analysis.json"):
        (out / name).write_text("{}")
    (out / "clips" / "001.mp4").write_bytes(MEDIA_DATA)
    (out / "clips" / "001.jpg").write_bytes(MEDIA_DATA[:10])
    api_token(db, owner)  # a spare, for the revoke route; the owner's calls carry the next one
    spare_token = db.scalar(select(ApiToken.id).order_by(ApiToken.id.desc()))
    tokens = {OWNER: api_token(db, owner)}
    webs = {OWNER: owner_web}
    for who, role in ((NONMEMBER, "researcher"), (ADMIN, "admin"), (VIEWER, None), (EDITOR, None)):
        email = f"{who.replace(' ', '-')}@example.org"
        user = auth.create_user(db, email, PASSWORD, role or "researcher")
        if role is None:
            db.add(Membership(study_id=study.id, user_id=user.id, role=who))
        db.commit()
        tokens[who] = api_token(db, user)
        webs[who] = Web(app)
        assert webs[who].login(email).status_code == 302
    client = app.test_client()

    def invite(role: str, pin: str | None) -> dict:
        body = {"participant_id": dyad.participant(role).id, "mode": "self", "pin": pin}
        resp = client.post(
            f"/api/v1/recordings/{rec.id}/recall-sessions",
            json={k: v for k, v in body.items() if v is not None},
            headers={"Authorization": f"Bearer {tokens[OWNER]}"},
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return resp.json

    this, other = invite("client", "4711"), invite("therapist", None)
    db.add(InterviewAudio(study_id=study.id, recall_session_id=this["id"], events=[],
                          storage_name="0" * 32 + ".wav", size_bytes=len(MEDIA_DATA),
                          duration_ms=1000, format_name="wav"))  # fmt: skip
    db.commit()
    storage.interview_path(rec.storage_key, "0" * 32 + ".wav").parent.mkdir()
    storage.interview_path(rec.storage_key, "0" * 32 + ".wav").write_bytes(MEDIA_DATA)
    take_dir = storage.interview_path(rec.storage_key, "0" * 32 + ".wav").parent
    (take_dir / f"take-{this['id']}-{'a' * 32}.part").write_bytes(b"")
    (take_dir / f"take-{this['id']}-{'a' * 32}.json").write_text('{"status": "recording"}')
    p_this = Web(app)
    path = re.sub(r"^https?://[^/]+", "", this["url"])
    assert p_this.get(path).status_code == 303
    p_this.get(f"/recall/{this['id']}/pin")
    assert p_this.post(f"/recall/{this['id']}/pin", {"pin": "4711"}).status_code == 303
    p_other = participant(app, other["url"])
    p_other.get("/login")
    mine = jpost(p_this, f"/recall/{this['id']}/moments", {"t_ms": 100, "text": THIS_SECRET})
    theirs = jpost(p_other, f"/recall/{other['id']}/moments", {"t_ms": 200, "text": OTHER_SECRET})
    assert mine.status_code == theirs.status_code == 201
    voice = p_this.client.post(
        f"/recall/{this['id']}/moments/{mine.json['id']}/voice",
        headers={"X-CSRFToken": p_this.csrf},
        data={"audio": (io.BytesIO(b"\x1aE" + b"v" * 100), "n.webm", "audio/webm")},
    )
    assert voice.status_code == 201
    upload = owner_web.client.post(
        f"/dyads/{dyad.id}/uploads",
        headers={"Tus-Resumable": "1.0.0", "X-CSRFToken": owner_web.csrf,
                 "Upload-Length": "10", "Upload-Metadata": TUS_META},
    )  # fmt: skip
    assert upload.status_code == 201
    client_id = dyad.participant("client").id
    # A PIN link's token alone opens nothing through the API (the one door): the participant
    # proves the PIN once and calls with the device token it gets.
    bare = client.get(
        f"/api/v1/recall-sessions/{this['id']}/moments",
        headers={"Authorization": f"Bearer {this['token']}"},
    )
    assert bare.status_code == 401
    device = client.post(
        "/api/v1/recall/devices",
        json={"pin": "4711"},
        headers={"Authorization": f"Bearer {this['token']}"},
    )
    assert device.status_code == 201, device.get_data(as_text=True)
    identities = {
        ANON: Identity(ANON, Web(app), None, client_id),
        P_THIS: Identity(P_THIS, p_this, device.json["device_token"], client_id),
        P_OTHER: Identity(P_OTHER, p_other, other["token"], client_id),
        **{who: Identity(who, webs[who], tokens[who], client_id) for who in RESEARCHERS},
    }
    owner_membership = db.scalar(select(Membership.id).where(Membership.user_id == owner.id))
    ids = {
        "study_id": study.id, "dyad_id": dyad.id, "recording_id": rec.id,
        "participant_id": dyad.participant("client").id, "rs_id": this["id"],
        "moment_id": mine.json["id"], "clip_id": rec.clips[0].id, "index": 1, "ext": "mp4",
        "name": "playable.mp4", "fmt": "csv", "section": "codebook",
        "filename": "css/app.css", "token": "not-a-real-link-token",
        "upload_id": upload.headers["Location"].rsplit("/", 1)[1],
        "code_id": study.codes[0].id, "scale_id": study.scales[0].id,
        "membership_id": owner_membership, "token_id": spare_token, "job_id": 1, "take": "a" * 32,
    }  # fmt: skip
    return {"identities": identities, "ids": ids, "rec_id": rec.id, "study_id": study.id}


def walk(app, world, names: tuple[str, ...], check_blind: bool) -> int:
    """Send every matrix request for ``names``; return how many were sent."""
    sent = 0
    failures = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        url = rule.build({a: world["ids"][a] for a in rule.arguments})[1]
        for method in walked_methods(rule):
            kind, destructive = MATRIX[(rule.endpoint, method)]
            if kind == "skip":
                continue
            for name in names:
                want = expected(kind, name, method, url.startswith("/api/"))
                if want == ALLOW and destructive:
                    continue  # would destroy the fixture; deletion has its own tests
                resp = world["identities"][name].send(method, url)
                sent += 1
                status = resp.status_code
                body = resp.get_data()
                resp.close()
                to_login = status == 302 and "/login" in resp.headers.get("Location", "")
                if status >= 500:
                    failures.append((name, method, url, status, "server error"))
                elif want == ALLOW and (status in (401, 403, 404) or to_login):
                    failures.append((name, method, url, status, "refused but allowed"))
                elif want != ALLOW and status not in want:
                    failures.append((name, method, url, status, f"want one of {sorted(want)}"))
                elif want != ALLOW and 302 in want and status == 302 and not to_login:
                    failures.append((name, method, url, status, "redirect not to the login"))
                if check_blind:
                    secret = OTHER_SECRET if name == P_THIS else THIS_SECRET
                    if secret.encode() in body:
                        failures.append((name, method, url, status, "blinding broken"))
    assert not failures, "\n".join(map(str, failures))
    return sent


def test_authorization_matrix(app, db, world) -> None:
    blind = walk(app, world, (ANON, *PARTICIPANTS), check_blind=True)
    rec = db.get(Recording, world["rec_id"])
    rec.revealed_at = utcnow()
    db.commit()
    p_this = world["identities"][P_THIS]
    moments = p_this.send("GET", f"/recall/{world['ids']['rs_id']}/moments")
    assert OTHER_SECRET.encode() in moments.get_data()  # the reveal is visible to this one
    revealed = walk(app, world, PARTICIPANTS, check_blind=False)
    researchers = walk(app, world, RESEARCHERS, check_blind=False)
    assert blind >= 250 and revealed >= 150 and researchers >= 400
    # nothing a refused identity sent changed the study
    db.expire_all()
    study = db.get(Study, world["study_id"])
    assert (len(study.dyads), len(study.codes)) == (1, 1)  # renamed by editors, never deleted
    assert db.get(Recording, world["rec_id"]) is not None
    texts = set(db.scalars(select(Moment.text).where(Moment.deleted_at.is_(None))))
    assert {THIS_SECRET, OTHER_SECRET} <= texts
    owners = db.scalars(
        select(User.email).join(Membership).where(
            Membership.role == "owner", Membership.study_id == study.id)
    )  # fmt: skip
    assert list(owners) == ["owner@example.org"]
    assert db.scalar(select(RecallSession.revoked_at).where(
        RecallSession.id == world["ids"]["rs_id"])) is None  # fmt: skip
    assert db.scalar(select(Upload.id).where(Upload.id == world["ids"]["upload_id"])) is not None
