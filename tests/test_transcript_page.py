"""The recording page's *Import transcript* form (issue 16): a researcher uploads the interview's
transcript and each utterance lands on the stop it was said at. Real interview audio made by
ffmpeg, attached through the API with constructed clocks, so every expected stop is known."""

from __future__ import annotations

import html
import io
import re
import sys

import pytest
from sqlalchemy import select

from ipr import jobs
from ipr.models import AuditEvent, InterviewUtterance, Job, Membership
from tests.conftest import PASSWORD, Web, participant
from tests.interview_helpers import VTT, events, upload
from tests.test_interview_exports import FAKE_MODEL


@pytest.fixture
def env(interview_env, interview_wav):
    """The shared researcher-led session with three stops (tests/conftest.py) and its interview
    audio; a self-guided one without audio."""
    self_rs = interview_env["session"]("therapist", "self")
    resp = upload(interview_env, interview_wav, events(*interview_env["moments"]))
    assert resp.status_code == 201, resp.json
    return {**interview_env, "self_rs": self_rs}


def send(web: Web, rs_id: int, data: bytes, name: str, **form):
    return web.post(
        f"/recall-sessions/{rs_id}/transcript",
        {"file": (io.BytesIO(data), name), **form},
        htmx=True,
        content_type="multipart/form-data",
    )


def said(db) -> list[tuple[int, int | None, int | None, str]]:
    db.expire_all()
    rows = db.scalars(select(InterviewUtterance).order_by(InterviewUtterance.start_ms))
    return [(u.start_ms, u.end_ms, u.moment_id, u.text) for u in rows]


def text_of(resp) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)).split()))


def test_the_page_imports_a_transcript_onto_the_stops(env, db, owner) -> None:
    a, b, c = env["moments"]
    rs_id, web = env["rs"]["id"], env["web"]
    page = web.get(f"/recordings/{env['rec'].id}")
    assert page.status_code == 200
    markup = page.get_data(as_text=True)
    assert "Interview audio 0:10 · no transcript yet" in text_of(page)
    assert markup.count('class="transcript-import"') == 1  # only the session with audio
    assert f'hx-post="/recall-sessions/{rs_id}/transcript"' in markup
    assert 'accept=".vtt,.srt,.txt,.eaf"' in markup

    resp = send(web, rs_id, VTT.encode(), "interview.vtt")
    assert resp.status_code == 200
    body = text_of(resp)
    assert "4 utterances attached to 3 stops, 2 outside any stop." in body
    assert "Interview audio 0:10 · transcript of 6 utterances" in body
    fragment = resp.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="recall"')  # the form hx-selects its row
    row = fragment[fragment.index('id="invite-client"') : fragment.index('id="recall-lanes"')]
    assert 'class="saved transcript-result" role="status"' in row
    assert said(db) == [
        (500, 1500, None, "Shall we start?"),
        (2000, 3000, a, "What was happening for you there?"),
        (3999, 4000, a, "I felt stuck."),
        (4000, 5000, None, "Let's go on."),  # the stop ended at 4000 (end exclusive)
        (6200, 7000, b, "I noticed the pause."),
        (9500, 10_000, c, "That was the moment."),
    ]
    audit = db.scalar(
        select(AuditEvent).where(AuditEvent.action == "interview_transcript_imported")
    )
    assert (audit.user_id, audit.object_type, audit.object_id) == (
        owner.id,
        "recall_session",
        str(rs_id),
    )
    assert audit.details == {"format": "vtt", "utterances": 6, "attached": 4}


def test_a_bad_file_lists_its_problems_and_keeps_the_transcript(app, env, db) -> None:
    rs_id, web = env["rs"]["id"], env["web"]
    assert send(web, rs_id, VTT.encode(), "interview.vtt").status_code == 200
    before = said(db)
    bad = b"[00:00:01] ok\nno stamp here\n[00:00:03] fine\nnor here\n"
    resp = send(web, rs_id, bad, "notes.txt")
    assert resp.status_code == 422  # htmx swaps it in place
    body = text_of(resp)
    assert (
        "The timestamped transcript has problems. Nothing was saved; the previous transcript "
        "is unchanged. line 2: does not start with [hh:mm:ss] line 4: does not start with "
        "[hh:mm:ss]"
    ) in body
    assert 'aria-invalid="true"' in resp.get_data(as_text=True)
    assert "transcript of 6 utterances" in body
    assert said(db) == before
    eaf = b'<?xml version="1.0"?><ANNOTATION_DOCUMENT><TIER TIER_ID="said"/></ANNOTATION_DOCUMENT>'
    resp = send(web, rs_id, eaf, "t.eaf", tier="Speech")
    assert resp.status_code == 422
    assert "The ELAN file has no tier 'Speech'. " in text_of(resp)
    assert "tier: not one of 'said'" in text_of(resp)
    resp = web.post(f"/recall-sessions/{rs_id}/transcript", {}, htmx=True)
    assert resp.status_code == 422
    assert "Choose a transcript file (.vtt, .srt, .txt or .eaf)." in text_of(resp)
    app.config["IMPORT_MAX_BYTES"] = 100
    resp = send(web, rs_id, VTT.encode(), "interview.vtt")
    assert resp.status_code == 422
    assert "The transcript is larger than this server accepts." in text_of(resp)
    resp = send(web, rs_id, b"x" * (100 + 65 * 1024), "huge.vtt")
    assert resp.status_code == 413  # the body cap refuses it before the form is read
    assert said(db) == before
    imports = select(AuditEvent).where(AuditEvent.action == "interview_transcript_imported")
    assert len(db.scalars(imports).all()) == 1


def test_a_session_without_audio_has_nothing_to_align_to(env, db) -> None:
    resp = send(env["web"], env["self_rs"]["id"], VTT.encode(), "interview.vtt")
    assert resp.status_code == 422
    assert "Attach the interview audio first: the transcript is aligned by it." in text_of(resp)
    assert said(db) == []


def test_only_the_study_editors_may_import(app, db, env, study, make_user) -> None:
    rs_id = env["rs"]["id"]
    assert send(env["web"], rs_id, VTT.encode(), "interview.vtt").status_code == 200
    before = said(db)
    viewer, other = make_user("viewer@example.org"), make_user("other@example.org")
    db.add(Membership(study_id=study.id, user_id=viewer.id, role="viewer"))
    db.commit()
    webs = {}
    for user in (viewer, other):
        webs[user.email] = Web(app)
        assert webs[user.email].login(user.email, PASSWORD).status_code == 302
    webs["other"] = webs.pop(other.email)
    webs["other"].post("/studies", {"name": "Their own study"})  # an editor elsewhere
    short = b"WEBVTT\n\n00:00:02.000 --> 00:00:03.000\nOverwritten.\n"
    assert send(webs[viewer.email], rs_id, short, "x.vtt").status_code == 403
    assert send(webs["other"], rs_id, short, "x.vtt").status_code == 404
    anonymous = Web(app)
    assert send(anonymous, rs_id, short, "x.vtt").status_code == 401  # htmx: no redirect
    guest = participant(app, env["self_rs"]["url"])
    guest.get("/login")
    assert send(guest, rs_id, short, "x.vtt").status_code == 401
    no_csrf = env["web"].client.post(
        f"/recall-sessions/{rs_id}/transcript",
        data={"file": (io.BytesIO(short), "x.vtt")},
        headers={"HX-Request": "true"},
    )
    assert no_csrf.status_code == 400
    assert said(db) == before


def box(resp, rs_id: int) -> str:
    """The row's *Transcribe* box, up to its own closing tag (what its form and its polling
    swap)."""
    markup = resp.get_data(as_text=True)
    start = markup.index(f'<div class="transcribe" id="transcribe-{rs_id}"')
    depth, at = 0, start
    for tag in re.finditer(r"<(/?)div\b", markup[start:]):
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            at = start + tag.end()
            break
    return markup[start:at]


NOT_SET_UP = (
    "Automatic transcription is not set up on this server: a lab installs a speech-to-text "
    "model on its workers and names it in IPR_TRANSCRIBE_COMMAND (see docs/interview.md)."
)


def test_the_page_starts_a_transcription_and_polls_it(
    app, env, db, owner, tmp_path, interview_wav
) -> None:
    a, b, _ = env["moments"]
    rs_id, web, rec_id = env["rs"]["id"], env["web"], env["rec"].id
    url = f"/recall-sessions/{rs_id}/transcribe"
    assert send(web, rs_id, VTT.encode(), "interview.vtt").status_code == 200
    # no model configured: a muted line says so, and no button
    page = web.get(f"/recordings/{rec_id}")
    assert NOT_SET_UP in text_of(page)
    assert f'action="{url}"' not in page.get_data(as_text=True)
    refused = web.post(url, {}, htmx=True)
    assert refused.status_code == 422  # swapped in place by htmx
    assert (
        "No transcription model is configured (IPR_TRANSCRIBE_COMMAND); import a transcript "
        "instead."
    ) in text_of(refused)
    assert db.scalar(select(Job).where(Job.kind == "interview_transcribe")) is None

    script = tmp_path / "fake_model.py"
    script.write_text(FAKE_MODEL)
    app.config["TRANSCRIBE_COMMAND"] = f"{sys.executable} {script} {{audio}}"
    markup = web.get(f"/recordings/{rec_id}").get_data(as_text=True)
    assert NOT_SET_UP not in markup
    assert markup.count(f'hx-post="{url}"') == 1
    assert markup.count('/transcribe"') == 2  # action and hx-post: only the session with audio

    queued = web.post(url, {}, htmx=True)
    assert queued.status_code == 200
    job = db.scalar(select(Job).where(Job.kind == "interview_transcribe"))
    assert (job.status, job.params["recall_session_id"]) == ("queued", rs_id)
    shown = box(queued, rs_id)
    assert "Transcription queued: waiting for a worker…" in shown
    assert f'hx-get="/recordings/{rec_id}/recall" hx-trigger="load delay:2s"' in shown
    assert f'hx-select-oob="#transcript-state-{rs_id}"' in shown
    assert "<form" not in shown  # no second request while one is queued
    # the worker runs the model; the next poll shows the new transcript and stops polling
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
    db.expire_all()
    poll = web.get(f"/recordings/{rec_id}/recall", htmx=True)
    shown = box(poll, rs_id)
    assert "hx-trigger" not in shown
    when = db.get(Job, job.id).finished_at.strftime("%Y-%m-%d %H:%M")
    assert f"Transcribed by the model on {when} UTC." in shown
    assert "Interview audio 0:10 · transcript of 2 utterances" in text_of(poll)
    heard = said(db)
    assert heard == [
        (2100, 3000, a, f"heard {len(interview_wav)} bytes"),  # the model read the audio itself
        (6500, 7500, b, "second stop"),
    ]

    # a model that fails: the message, and the previous transcript is kept
    app.config["TRANSCRIBE_COMMAND"] = f"{sys.executable} -c 'import sys; sys.exit(\"no weights\")'"
    again = web.post(url, {}, htmx=True)
    assert again.status_code == 200
    failing = db.scalars(select(Job).where(Job.kind == "interview_transcribe")).all()[-1]
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), failing.id) == "failed"
    db.expire_all()
    poll = web.get(f"/recordings/{rec_id}/recall", htmx=True)
    assert (
        "Transcription failed: The transcription command failed (exit 1): no weights "
        "Nothing was saved; the previous transcript is unchanged."
    ) in text_of(poll)
    assert 'class="error transcribe-job" role="alert"' in box(poll, rs_id)
    assert f'action="{url}"' in box(poll, rs_id)  # it can be tried again
    assert "transcript of 2 utterances" in text_of(poll)
    assert said(db) == heard
    requested = select(AuditEvent).where(AuditEvent.action == "interview_transcription_requested")
    assert [(e.user_id, e.object_id) for e in db.scalars(requested)] == [(owner.id, str(rs_id))] * 2


def test_only_the_study_editors_may_transcribe(app, db, env, study, make_user, tmp_path) -> None:
    app.config["TRANSCRIBE_COMMAND"] = f"{sys.executable} {tmp_path / 'never_run.py'}"
    url = f"/recall-sessions/{env['rs']['id']}/transcribe"
    viewer, other = make_user("viewer@example.org"), make_user("other@example.org")
    db.add(Membership(study_id=study.id, user_id=viewer.id, role="viewer"))
    db.commit()
    as_viewer, as_other = Web(app), Web(app)
    assert as_viewer.login(viewer.email, PASSWORD).status_code == 302
    assert as_other.login(other.email, PASSWORD).status_code == 302
    page = as_viewer.get(f"/recordings/{env['rec'].id}").get_data(as_text=True)
    assert f'action="{url}"' not in page  # a viewer sees the transcript's state, no button
    assert as_viewer.post(url, {}, htmx=True).status_code == 403
    assert as_other.post(url, {}, htmx=True).status_code == 404
    assert Web(app).post(url, {}, htmx=True).status_code == 401
    no_csrf = env["web"].client.post(url, headers={"HX-Request": "true"})
    assert no_csrf.status_code == 400
    # the self-guided session has no interview audio: nothing to transcribe
    resp = env["web"].post(f"/recall-sessions/{env['self_rs']['id']}/transcribe", {}, htmx=True)
    assert resp.status_code == 422
    assert "Attach the interview audio first: it is what gets transcribed." in text_of(resp)
    assert db.scalar(select(Job).where(Job.kind == "interview_transcribe")) is None


def test_the_result_reads_in_bokmal() -> None:
    """The new strings are in the nb catalogue (compiled), plurals included."""
    from pathlib import Path

    from babel.support import Translations

    nb = Translations.load(str(Path(__file__).parents[1] / "translations"), ["nb"])
    line = " ".join(
        (
            nb.ngettext("%(num)s utterance attached", "%(num)s utterances attached", 4)
            % {"num": 4},
            nb.ngettext("to %(num)s stop", "to %(num)s stops", 3) % {"num": 3},
            nb.ngettext("%(num)s outside any stop", "%(num)s outside any stop", 1) % {"num": 1},
        )
    )
    assert line == "4 ytringer knyttet til 3 stopp 1 utenfor alle stopp"
    assert nb.gettext("Import transcript") == "Importer transkripsjon"
