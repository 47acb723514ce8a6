"""The invitations panel, e-mail through a real local SMTP server, and study texts per language."""

from __future__ import annotations

import re
import sqlite3
import threading

import pytest
from sqlalchemy import select

from ipr import invitations, jobs, mail, recall, study_texts
from ipr.auth import hash_token
from ipr.cli import printed_base_url
from ipr.models import AuditEvent, Job, RecallSession, Study
from tests.conftest import Web, make_app, participant
from tests.qr import decode_png
from tests.smtp_inbox import Inbox, smtp_server


@pytest.fixture
def smtp():
    with smtp_server() as inbox:
        yield inbox


def _nb_study(db, study: Study) -> Study:
    study.languages = ["en", "nb"]
    study.instructions = "Press Mark moment whenever something mattered."
    db.commit()
    return study


def test_parse_smtp_urls() -> None:
    assert mail.parse_url("smtp://127.0.0.1:2525") == mail.SmtpServer("127.0.0.1", 2525, "plain")
    assert mail.parse_url("smtps://mx.example.org") == mail.SmtpServer("mx.example.org", 465, "tls")
    assert mail.parse_url("smtp+starttls://u%40x:p%2F@mx.example.org:2587") == mail.SmtpServer(
        "mx.example.org", 2587, "starttls", "u@x", "p/"
    )
    with pytest.raises(mail.MailError):
        mail.parse_url("http://mx.example.org")


def test_printed_base_url_follows_setting_then_port() -> None:
    assert printed_base_url(None, "", "5700") == "http://127.0.0.1:5700"
    assert printed_base_url(None, "", None) == "http://127.0.0.1:5000"
    assert printed_base_url(None, "https://ipr.example.org/", "5700") == "https://ipr.example.org"
    assert printed_base_url("http://h:1", "https://x", "5700") == "http://h:1"


def test_message_puts_the_link_into_the_studys_own_text(db, study) -> None:
    study.texts = {"invitation": {"en": "Dear participant, open {link} when ready."}}
    subject, body = study_texts.message(study, "invitation", "en", "https://x/r/abc")
    assert subject == "Your personal link to watch your session"
    assert body == "Dear participant, open https://x/r/abc when ready."
    study.texts = {"reminder": {"en": "Please come back."}}
    assert study_texts.message(study, "reminder", "en", "L")[1] == "Please come back.\n\nL\n"
    subject, body = study_texts.message(study, "invitation", "nb", "L")
    assert subject == "Din personlige lenke for å se timen din"
    assert "\n\nL\n\n" in body


def test_missing_translations_are_listed_then_cleared(db, owner, study) -> None:
    from ipr import studies

    studies.add_code(db, study, owner, {"name": "Insight", "description": "A new view"})
    _nb_study(db, study)
    hat = study.scales[0]
    assert study_texts.missing(study) == [
        "Instructions in Norsk bokmål",
        "Code “Insight” in Norsk bokmål",
    ]  # the app's own HAT scale is translated with the app, so it is not listed
    code = study.codes[0]
    form = {
        "languages": ["nb"],
        "instructions.nb": "Trykk Marker øyeblikk når noe betydde noe.",
        f"code.{code.id}.nb.name": "Innsikt",
        f"code.{code.id}.nb.description": "Et nytt blikk",
        f"scale.{hat.id}.nb.name": "Hjelpsomhet",
        "invitation.en": "Open {link}",
    }
    form.update({f"scale.{hat.id}.nb.{v}": f"nb {v}" for v in hat.labels})
    study_texts.apply(study, form)
    db.commit()
    assert study.languages == ["en", "nb"]
    assert study_texts.missing(study) == ["Invitation e-mail text in Norsk bokmål"]
    view = study_texts.for_participant(study, "nb")
    assert view.instructions == "Trykk Marker øyeblikk når noe betydde noe."
    assert [(c.name, c.description) for c in view.codes] == [("Innsikt", "Et nytt blikk")]
    assert view.scales[0].name == "Hjelpsomhet"
    assert view.scales[0].labels == {v: f"nb {v}" for v in hat.labels}


def test_states_of_a_recall_session(db, recall_env) -> None:
    rec = recall_env["rec"]
    made = recall_env["invite"]("client")
    rs = db.get(RecallSession, made["id"])
    assert invitations.state(rs, rec).key == "not_started"
    recall.save_position(db, rs, 4000)
    recall.save_position(db, rs, 1500)
    assert invitations.state(rs, rec) == invitations.State("in_progress", "In progress", 4000)
    recall.take_break(rs)
    db.commit()
    assert invitations.state(rs, rec) == invitations.State("on_break", "On a break", 4000)
    recall.save_position(db, rs, 1600)
    assert invitations.state(rs, rec).key == "in_progress"
    recall.finish(db, rs, actor="t")
    assert invitations.state(rs, rec).key == "finished"


def test_panel_without_smtp_has_no_email_buttons(app, owner_web, recall_env) -> None:
    rec = recall_env["rec"]
    made = recall_env["invite"]("client")
    html = owner_web.get(f"/recordings/{rec.id}/recall", htmx=True).get_data(as_text=True)
    assert "E-mail the invitation" not in html and "e-mail address" not in html
    resp = owner_web.post(f"/recall-sessions/{made['id']}/email", {"email": "c@example.org"})
    assert resp.status_code == 404


def test_link_box_names_its_participant_and_qr_decodes_to_it(app, db, owner_web, recall_env):
    rec = recall_env["rec"]
    dyad = recall_env["dyad"]
    resp = owner_web.post(
        f"/recordings/{rec.id}/recall-sessions",
        {"participant_id": dyad.participant("therapist").id, "mode": "self"},
        htmx=True,
    )
    html = resp.get_data(as_text=True)
    assert "T01's personal link (therapist)" in html
    url = re.search(r'class="link-box" readonly value="([^"]+)"', html).group(1)
    assert url.startswith("http://localhost/r/")
    svg = re.search(r"<svg.*?</svg>", html, flags=re.S).group(0)
    png = _svg_qr_to_png(svg)
    assert decode_png(png) == url


def _svg_qr_to_png(svg: str) -> bytes:
    """Rasterise segno's path SVG (one path of unit moves) with OpenCV."""
    import cv2
    import numpy as np

    size = int(re.search(r'width="(\d+)"', svg).group(1))
    scale = float(re.search(r"scale\(([\d.]+)\)", svg).group(1)) if "scale(" in svg else 1.0
    d = re.search(r'class="qrline"[^>]* d="([^"]+)"', svg).group(1)
    img = np.full((size, size), 255, np.uint8)
    x = y = 0.0
    for cmd, a, b in re.findall(r"([MmHhVv])\s*(-?[\d.]+)(?:[ ,](-?[\d.]+))?", d):
        if cmd in "Mm":
            x, y = (float(a), float(b)) if cmd == "M" else (x + float(a), y + float(b))
        elif cmd in "h":
            x2 = x + float(a)
            y0 = int(round((y - 0.5) * scale))
            cv2.rectangle(
                img,
                (int(round(min(x, x2) * scale)), y0),
                (int(round(max(x, x2) * scale)) - 1, y0 + int(scale) - 1),
                0,
                -1,
            )
            x = x2
    return cv2.imencode(".png", img)[1].tobytes()


def test_email_job_sends_a_fresh_link_in_the_participants_language(
    tmp_path, sqlite_url, smtp, owner, sample_mp4
) -> None:
    app = make_app(
        tmp_path / "mailapp",
        sqlite_url,
        SMTP_URL=smtp.url,
        SMTP_FROM="ipr@clinic.example.org",
        BASE_URL="https://ipr.example.org/",
    )
    try:
        _email_journey(app, smtp)
    finally:
        app.extensions["ipr_db"].dispose()


def _email_journey(app, smtp) -> None:
    from ipr import auth, studies
    from ipr.models import Recording
    from ipr.storage import Storage

    database = app.extensions["ipr_db"]
    with database.session() as db:
        user = auth.create_user(db, "mailer@example.org", "pw-pw-pw-pw-pw", "researcher")
        study = studies.create_study(db, user, "Mail study")
        study.languages = ["nb"]
        dyad = studies.create_dyad(db, study, user, "01")
        rec = Recording(
            study_id=study.id, dyad_id=dyad.id, session_label="S1",
            storage_key=Storage.new_key(), status="ready", duration_ms=6000, width=320,
            height=180, fps_num=25, fps_den=1, has_audio=True,
        )  # fmt: skip
        db.add(rec)
        db.commit()
        rec_id, client_id = rec.id, dyad.participant("client").id
    web = Web(app)
    assert web.login("mailer@example.org", "pw-pw-pw-pw-pw").status_code == 302
    resp = web.post(
        f"/recordings/{rec_id}/recall-sessions",
        {"participant_id": client_id, "mode": "self", "language": "en"},
        htmx=True,
    )
    html = resp.get_data(as_text=True)
    first_link = re.search(r'class="link-box" readonly value="([^"]+)"', html).group(1)
    assert first_link.startswith("https://ipr.example.org/r/")
    assert "E-mail the invitation" in html
    with database.session() as db:
        rs_id = db.scalar(select(RecallSession.id).where(RecallSession.participant_id == client_id))
    bad = web.post(f"/recall-sessions/{rs_id}/email", {"email": "nope", "kind": "invitation"})
    assert bad.status_code == 422
    assert 'id="email-' in bad.get_data(as_text=True)
    assert 'aria-invalid="true" aria-describedby="recall-error"' in bad.get_data(as_text=True)
    ok = web.post(
        f"/recall-sessions/{rs_id}/email",
        {"email": "c01@example.org", "kind": "invitation", "language": "nb"},
    )
    assert ok.status_code == 200
    assert "The invitation to C01 is queued." in ok.get_data(as_text=True)
    with database.session() as db:
        job = db.scalar(select(Job).where(Job.kind == "send_invitation"))
        job_id = job.id
    assert jobs.run_job(database, dict(app.config), job_id) == "done"
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert smtp.envelopes[0] == ("ipr@clinic.example.org", ["c01@example.org"])
    assert msg["Subject"] == "Din personlige lenke for å se timen din"
    body = msg.get_content()
    link = re.search(r"https://ipr\.example\.org/r/\S+", body).group(0)
    assert link != first_link
    with database.session() as db:
        rs = db.get(RecallSession, rs_id)
        token = link.rsplit("/", 1)[1]
        assert rs.token_hash == hash_token(token)  # the e-mailed link is the valid one
        assert "to" not in db.get(Job, job_id).params  # the address is not kept
        actions = db.scalars(
            select(AuditEvent.action).where(AuditEvent.object_id == str(rs_id))
        ).all()
        assert "invitation_email_queued" in actions and "invitation_email_sent" in actions
    page = participant(app, link.replace("https://ipr.example.org", ""))
    assert page.landing == f"/recall/{rs_id}"
    panel = web.get(f"/recordings/{rec_id}/recall", htmx=True).get_data(as_text=True)
    assert "Invitation e-mail: sent" in panel and "E-mail a reminder" in panel


def test_study_page_saves_languages_and_flags_missing_texts(owner_web, study, db) -> None:
    from ipr import studies
    from ipr.models import User

    owner = db.scalar(select(User).where(User.email == "owner@example.org"))
    studies.add_code(db, study, owner, {"name": "Insight"})
    db.commit()
    resp = owner_web.post(
        f"/studies/{study.id}/texts", {"languages": "nb", "instructions.nb": ""}, htmx=True
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert '<span class="saved" role="status">Saved</span>' in html
    assert "<li>Code “Insight” in Norsk bokmål</li>" in html
    code_id = study.codes[0].id
    resp = owner_web.post(
        f"/studies/{study.id}/texts", {"languages": "nb", f"code.{code_id}.nb.name": "Innsikt"},
        htmx=True,
    )  # fmt: skip
    assert 'id="missing-texts"' not in resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(Study, study.id).languages == ["en", "nb"]
    action = db.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()))
    assert action == "study_texts_updated"


def _queued_reminder(app) -> tuple[int, int, str]:
    """A self-paced recall session with a reminder e-mail queued: (job id, session id, token)."""
    from ipr import auth, studies
    from ipr.models import Recording
    from ipr.storage import Storage

    database = app.extensions["ipr_db"]
    with database.session() as db:
        user = auth.create_user(db, "m2@example.org", "pw-pw-pw-pw-pw", "researcher")
        study = studies.create_study(db, user, "Dead mail")
        dyad = studies.create_dyad(db, study, user, "01")
        rec = Recording(
            study_id=study.id, dyad_id=dyad.id, session_label="S1",
            storage_key=Storage.new_key(), status="ready", duration_ms=6000,
        )  # fmt: skip
        db.add(rec)
        db.flush()
        rs, token = recall.create_session(
            db, rec, dyad.participant("client"), "self", user, days=14
        )
        db.commit()
        job = invitations.queue_email(
            db, app.extensions["ipr_huey"], rs, user, kind="reminder",
            to="c@example.org", base_url="http://h/",
        )  # fmt: skip
        return job.id, rs.id, token


# This test once failed with "database is locked": the job wrote the new link (uncommitted,
# holding SQLite's write lock) and then its own progress report, on a second connection,
# waited 30 s for that lock. The job now writes nothing before the e-mail has gone (the next
# test proves the lock is free while the mail server is busy).
def test_a_refused_email_keeps_the_old_link_and_says_why(tmp_path, sqlite_url) -> None:
    with smtp_server() as inbox:  # started and stopped: nothing listens on its port now
        url = inbox.url
    app = make_app(tmp_path / "deadmail", sqlite_url, SMTP_URL=url, SMTP_FROM="ipr@x.example")
    database = app.extensions["ipr_db"]
    try:
        job_id, rs_id, token = _queued_reminder(app)
        assert jobs.run_job(database, dict(app.config), job_id) == "failed"
        with database.session() as db:
            job = db.get(Job, job_id)
            assert job.error.startswith(f"The e-mail server 127.0.0.1:{url.rsplit(':', 1)[1]}")
            assert db.get(RecallSession, rs_id).token_hash == hash_token(token)
    finally:
        database.dispose()


class _SlowInbox(Inbox):
    """A mail server that holds each message until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 — aiosmtpd's name
        self.arrived.set()
        self.release.wait(30)  # blocks aiosmtpd's own thread only
        return await super().handle_DATA(server, session, envelope)


def test_the_database_stays_writable_while_the_mail_server_is_slow(tmp_path, sqlite_url) -> None:
    """Sending an invitation holds no database lock: participants keep saving meanwhile, the
    job's progress report cannot wait on its own write, and the new link is kept once sent."""
    inbox = _SlowInbox()
    with smtp_server(inbox) as inbox:
        app = make_app(
            tmp_path / "slowmail", sqlite_url, SMTP_URL=inbox.url, SMTP_FROM="ipr@x.example"
        )
        database = app.extensions["ipr_db"]
        try:
            job_id, rs_id, old_token = _queued_reminder(app)
            outcome: list[str] = []
            runner = threading.Thread(
                target=lambda: outcome.append(jobs.run_job(database, dict(app.config), job_id))
            )
            runner.start()
            try:
                assert inbox.arrived.wait(30), "the job never reached the mail server"
                # another writer (a request) while the e-mail is in flight: no lock to wait for
                other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=2)
                try:
                    other.execute("UPDATE studies SET name = 'Renamed meanwhile'")
                    other.commit()
                finally:
                    other.close()
            finally:
                inbox.release.set()
                runner.join(60)
            assert outcome == ["done"]
            body = inbox.messages[0].get_content()
            new_token = re.search(r"http://h/r/(\S+)", body).group(1)
            assert new_token != old_token
            with database.session() as db:
                assert db.get(RecallSession, rs_id).token_hash == hash_token(new_token)
                assert db.scalar(select(Study.name)) == "Renamed meanwhile"
        finally:
            database.dispose()
