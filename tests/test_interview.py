"""The recall interview's server side: audio aligned to stops, transcripts, distress, consent,
withdrawal (issue 16). Real audio made by ffmpeg; the clocks are constructed so every expected
offset is known exactly."""

from __future__ import annotations

import html as html_lib
import io
import json
import re

import pytest
from sqlalchemy import select

from ipr import interview, jobs
from ipr.models import (
    AuditEvent,
    InterviewAudio,
    InterviewUtterance,
    Job,
    Moment,
    RecallSession,
    VoiceNote,
)
from tests.conftest import MEDIA_DATA, jpost, make_app, participant
from tests.interview_helpers import VTT, events, upload
from tests.smtp_inbox import smtp_server


@pytest.fixture
def app(tmp_path, any_db_url):
    """Every test here runs on SQLite and on PostgreSQL (withdrawal deletes across tables)."""
    app = make_app(tmp_path, any_db_url)
    yield app
    app.extensions["ipr_db"].dispose()


@pytest.fixture
def env(interview_env):
    """The shared researcher-led session with three stops (tests/conftest.py), on this app."""
    return interview_env


def test_audio_is_aligned_to_every_stop_and_served_with_range(env, db, interview_wav) -> None:
    a, b, c = env["moments"]
    resp = upload(env, interview_wav, events(a, b, c))
    assert resp.status_code == 201, resp.json
    got = env["api"]("GET", f"/api/v1/recall-sessions/{env['rs']['id']}").json["interview"]
    assert got["duration_ms"] == 10_000
    assert got["segments"] == [
        {"moment_id": a, "audio_start_ms": 2000, "audio_end_ms": 4000},
        {"moment_id": b, "audio_start_ms": 6000, "audio_end_ms": 8000},
        {"moment_id": c, "audio_start_ms": 9000, "audio_end_ms": 10_000},  # to the end
    ]
    part = env["api"]("GET", got["audio_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.data == interview_wav[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(interview_wav)}"
    assert env["api"]("GET", got["audio_url"], bearer="ipr_wrong").status_code == 401
    stored = db.scalar(select(InterviewAudio))
    path = env["storage"].interview_path(env["rec"].storage_key, stored.storage_name)
    assert path.read_bytes() == interview_wav  # beside the recording, not under static/
    assert path.parent.parent == env["storage"].recording_dir(env["rec"].storage_key)
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "interview_audio_attached"))
    assert audit.details["events"] == 8


def test_uploads_are_validated_strictly(app, env, db, interview_wav) -> None:
    a, b, _ = env["moments"]
    bad = [
        {"type": "rewind", "video_ms": 0, "audio_ms": 0},
        {"type": "pause", "video_ms": 1, "audio_ms": 3000, "moment_id": 999_999},
        {"type": "play", "video_ms": -1, "audio_ms": 2000},
        {"type": "mark", "video_ms": 1, "audio_ms": 11_000},
    ]
    resp = upload(env, interview_wav, bad)
    assert resp.status_code == 422
    assert resp.json["error"]["problems"] == [
        "events[0]: type must be one of play, pause, seek, mark, stop",
        "events[1]: moment_id 999999 is no moment of this session",
        "events[2]: video_ms must be a whole number of ms ≥ 0",
        "events[2]: audio_ms goes back in time (2000 < 3000)",
        "events[3]: audio_ms 11000 is past the end of the audio (10000)",
        "events[3]: a mark names its moment_id",
    ]
    not_audio = upload(env, b"just some text, not audio", events(a, b, a))
    assert not_audio.status_code == 422
    assert not_audio.json["error"]["field"] == "file"
    self_rs = env["session"]("therapist", "self")
    assert upload(env, interview_wav, [], rs_id=self_rs["id"]).status_code == 409
    app.config["INTERVIEW_AUDIO_MAX_BYTES"] = 1000
    assert upload(env, interview_wav, events(a, b, a)).status_code == 413
    assert db.scalar(select(InterviewAudio)) is None
    leftovers = [p for p in env["storage"].root.rglob("*") if p.is_file()]
    assert leftovers == []  # nothing of a refused upload stays on disk


def test_transcript_utterances_go_to_the_stop_they_were_said_at(env, db, interview_wav) -> None:
    a, b, c = env["moments"]
    rs_id = env["rs"]["id"]
    files = {"file": (io.BytesIO(VTT.encode()), "t.vtt")}
    early = env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript", data=files)
    assert early.status_code == 409  # nothing to align to yet
    assert upload(env, interview_wav, events(a, b, c)).status_code == 201
    files = {"file": (io.BytesIO(VTT.encode()), "t.vtt")}
    resp = env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript", data=files)
    assert resp.status_code == 201, resp.json
    assert resp.json["attached"] == {str(a): 2, str(b): 1, str(c): 1}
    assert resp.json["unattached"] == 2
    got = env["api"]("GET", f"/api/v1/recall-sessions/{rs_id}").json["transcripts"]
    assert got == [
        {"moment_id": a, "utterances": [
            {"start_ms": 2000, "end_ms": 3000, "text": "What was happening for you there?"},
            {"start_ms": 3999, "end_ms": 4000, "text": "I felt stuck."}]},
        {"moment_id": b, "utterances": [
            {"start_ms": 6200, "end_ms": 7000, "text": "I noticed the pause."}]},
        {"moment_id": c, "utterances": [
            {"start_ms": 9500, "end_ms": 10_000, "text": "That was the moment."}]},
    ]  # fmt: skip
    study_id = env["rec"].study_id
    doc = env["api"]("GET", f"/api/v1/studies/{study_id}/export.json").json
    exported = {
        m["id"]: [u["text"] for u in m["interview_transcript"]]
        for d in doc["study"]["dyads"] for r in d["recordings"] for m in r["moments"]
    }  # fmt: skip
    assert exported == {
        a: ["What was happening for you there?", "I felt stuck."],
        b: ["I noticed the pause."],
        c: ["That was the moment."],
    }
    # a timestamped text replaces it, with the same rule
    text = "[00:00:02] Tell me.\n\n[00:00:06.100] Here.\n[00:00:04] Next one.\n"
    files = {"file": (io.BytesIO(text.encode()), "t.txt")}
    resp = env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript", data=files)
    assert resp.json["format"] == "text"
    assert resp.json["attached"] == {str(a): 1, str(b): 1}
    rows = db.scalars(select(InterviewUtterance).order_by(InterviewUtterance.start_ms)).all()
    assert [(u.start_ms, u.end_ms, u.moment_id) for u in rows] == [
        (2000, 4000, a), (4000, 6100, None), (6100, None, b),
    ]  # fmt: skip
    broken = {"file": (io.BytesIO(b"[00:00:01] ok\nno stamp here\n"), "t.txt")}
    resp = env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript", data=broken)
    assert resp.status_code == 422
    assert resp.json["error"]["problems"] == ["line 2: does not start with [hh:mm:ss]"]


def test_srt_is_read_like_vtt() -> None:
    srt = (
        "1\n00:00:02,000 --> 00:00:03,500\nHello\nthere\n\n2\n00:01:00,250 --> 00:01:01,000\nBye\n"
    )
    fmt, said = interview.parse_transcript(srt.encode(), "x.srt")
    assert fmt == "srt"
    assert said == [
        interview.Utterance(2000, 3500, "Hello there"),
        interview.Utterance(60_250, 61_000, "Bye"),
    ]


def test_distress_pauses_shows_support_text_and_tells_the_owner(app, env, db) -> None:
    with smtp_server() as smtp:
        app.config.update(SMTP_URL=smtp.url, SMTP_FROM="ipr@clinic.example.org")
        invited = env["session"]("therapist", "self")
        page = participant(app, invited["url"])
        resp = jpost(page, f"/recall/{invited['id']}/distress", {})
        assert resp.status_code == 200, resp.json
        assert resp.json["paused"] is True
        assert resp.json["support_text"] == interview.DEFAULT_SUPPORT["en"]
        db.expire_all()
        assert db.get(RecallSession, invited["id"]).paused_at is not None
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "distress_flagged"))
        assert (event.actor, event.object_id) == ("participant T01", str(invited["id"]))
        job = db.get(Job, resp.json["email_job_id"])
        assert job.kind == "distress_email"
        assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
        (msg,) = smtp.messages
        assert smtp.envelopes[0] == ("ipr@clinic.example.org", ["owner@example.org"])
        assert msg["Subject"] == "Distress flagged by participant T01"
        again = jpost(page, f"/recall/{invited['id']}/distress", {})
        assert again.json["email_job_id"] is None  # a second click e-mails nobody again
    # the study's own text, in Norwegian, through the participant API (the link as Bearer)
    study_id = env["rec"].study_id
    put = env["api"]("PUT", f"/api/v1/studies/{study_id}/support-text",
                     json={"language": "en", "text": "Call Anna on 22 00 00 00."})  # fmt: skip
    assert put.status_code == 200
    app.config.update(SMTP_URL="")
    resp = env["api"](
        "POST", f"/api/v1/recall-sessions/{invited['id']}/distress", bearer=invited["token"]
    )
    assert resp.status_code == 200
    assert (resp.json["support_text"], resp.json["email_job_id"]) == (
        "Call Anna on 22 00 00 00.", None
    )  # fmt: skip
    assert (
        interview.support_text(db.get(type(env["dyad"].study), study_id), "nb")
        == (interview.DEFAULT_SUPPORT["nb"])
    )


def test_the_recording_page_shows_who_pressed_i_need_to_stop(app, env, db, owner_web) -> None:
    """Without a mail server the participant is still told "the researcher has been told": the
    recording page, where the researcher follows the invitations, must say so."""
    app.config.update(SMTP_URL="", SMTP_FROM="")
    invited = env["session"]("therapist", "self")
    url = f"/recordings/{env['rec'].id}"
    assert "I need to stop" not in owner_web.get(url).get_data(as_text=True)
    page = participant(app, invited["url"])
    assert jpost(page, f"/recall/{invited['id']}/position", {"t_ms": 7000}).status_code == 204
    for _ in range(2):
        assert jpost(page, f"/recall/{invited['id']}/distress", {}).status_code == 200
    at = db.scalar(
        select(AuditEvent.created_at)
        .where(AuditEvent.action == "distress_flagged")
        .order_by(AuditEvent.id.desc())
    )
    html = owner_web.get(url).get_data(as_text=True)
    row = html.split('id="invite-therapist"')[1].split("</li>")[0]
    flag = re.search(r'<p class="notice warn distress-flag"[^>]*>(.*?)</p>', row, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", flag) == (
        f"Pressed “I need to stop / this is distressing” {at:%Y-%m-%d %H:%M} UTC, at 0:07 "
        "(2 times). No e-mail was sent: no mail server is set (IPR_SMTP_URL)."
    )
    client_row = html.split('id="invite-client"')[1].split("</li>")[0]
    assert "distress-flag" not in client_row  # the other participant pressed nothing
    # the same panel, fetched by htmx, says it too
    frag = owner_web.get(f"/recordings/{env['rec'].id}/recall", htmx=True).get_data(as_text=True)
    assert f'id="distress-{invited["id"]}"' in frag
    # ... and so does the study's dashboard, where every dyad's sessions are followed at once
    dash = owner_web.get(f"/studies/{env['rec'].study_id}/dashboard").get_data(as_text=True)
    row = re.search(rf'<tr data-recording="{env["rec"].id}">(.*?)</tr>', dash, re.S).group(1)
    tds = re.findall(r"<td>(.*?)</td>", row)
    cells = [" ".join(re.sub(r"<[^>]+>", "", c).split()) for c in tds]
    assert cells[1:3] == ["in progress asked to stop", "in progress"]
    title = re.search(r'class="distress-chip" title="([^"]*)"', row).group(1)
    assert html_lib.unescape(title) == (
        f"Pressed “I need to stop / this is distressing” {at:%Y-%m-%d %H:%M} UTC, at 0:07"
    )


def test_consent_is_recorded_with_version_date_and_recorder(env, db, owner) -> None:
    pid = env["dyad"].participant("client").id
    url = f"/api/v1/participants/{pid}/consent"
    bad = env["api"]("POST", url, json={"sheet_version": "v2", "consented_on": "2999-01-01"})
    assert bad.status_code == 422
    ok = env["api"]("POST", url, json={"sheet_version": "v2.1", "consented_on": "2026-11-02"})
    assert ok.status_code == 201
    (record,) = env["api"]("GET", url).json["consent"]
    assert (record["sheet_version"], record["consented_on"], record["recorded_by_id"]) == (
        "v2.1", "2026-11-02", owner.id,
    )  # fmt: skip


def test_withdrawal_erases_everything_of_the_participant(app, env, db, interview_wav) -> None:
    a, b, c = env["moments"]
    rs_id = env["rs"]["id"]
    env["api"]("PATCH", f"/api/v1/recall-sessions/{rs_id}/moments/{a}", json={"text": "SECRET"})
    assert upload(env, interview_wav, events(a, b, c)).status_code == 201
    files = {"file": (io.BytesIO(VTT.encode()), "t.vtt")}
    assert env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript",
                      data=files).status_code == 201  # fmt: skip
    storage = env["storage"]
    voice = storage.voice_dir(env["rec"].storage_key)
    voice.mkdir(parents=True)
    (voice / ("a" * 32 + ".webm")).write_bytes(MEDIA_DATA)
    db.add(VoiceNote(study_id=env["rec"].study_id, moment_id=a, storage_name="a" * 32 + ".webm",
                     mime_type="audio/webm", size_bytes=1000))  # fmt: skip
    db.commit()
    other = env["session"]("therapist", "researcher")
    kept = env["api"]("POST", f"/api/v1/recall-sessions/{other['id']}/moments",
                      json={"t_ms": 7000, "text": "the therapist's own"}).json["id"]  # fmt: skip
    audio_file = next((storage.recording_dir(env["rec"].storage_key) / "interview").iterdir())
    pid = env["dyad"].participant("client").id
    resp = env["api"]("POST", f"/api/v1/participants/{pid}/withdraw")
    assert resp.status_code == 200, resp.json
    assert resp.json["erased"] == {
        "recall_sessions": 1, "moments": 3, "voice_notes": 1, "interview_audio_files": 1,
        "transcript_utterances": 6, "prompt_answers": 0,
    }  # fmt: skip
    assert not audio_file.exists()
    assert list(voice.iterdir()) == []
    db.expire_all()
    assert db.scalar(select(InterviewAudio)) is None
    assert db.scalar(select(InterviewUtterance)) is None
    assert [m.id for m in db.scalars(select(Moment))] == [kept]
    receipt = db.scalar(select(AuditEvent).where(AuditEvent.action == "participant_withdrawn"))
    assert receipt.details == resp.json["erased"]
    study_id = env["rec"].study_id
    for fmt in ("json", "csv"):
        body = env["api"]("GET", f"/api/v1/studies/{study_id}/export.{fmt}").get_data(as_text=1)
        assert "the therapist's own" in body
        for gone in ("SECRET", "I felt stuck", "What was happening"):
            assert gone not in body


def test_a_second_upload_replaces_the_first_and_realigns_the_transcript(
    env, db, interview_wav
) -> None:
    a, b, c = env["moments"]
    rs_id = env["rs"]["id"]
    assert upload(env, interview_wav, events(a, b, c)).status_code == 201
    first = db.scalar(select(InterviewAudio)).storage_name
    files = {"file": (io.BytesIO(VTT.encode()), "t.vtt")}
    env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript", data=files)
    swapped = [
        {"type": "pause", "video_ms": 9000, "audio_ms": 500, "moment_id": c},
        {"type": "play", "video_ms": 9000, "audio_ms": 5000},
    ]
    assert upload(env, interview_wav, swapped).status_code == 201
    db.expire_all()
    (audio,) = db.scalars(select(InterviewAudio)).all()
    assert audio.storage_name != first
    folder = env["storage"].recording_dir(env["rec"].storage_key) / "interview"
    assert [p.name for p in folder.iterdir()] == [audio.storage_name]
    rows = db.scalars(select(InterviewUtterance).order_by(InterviewUtterance.start_ms)).all()
    assert [u.moment_id for u in rows] == [c, c, c, c, None, None]


def test_the_timeline_shows_what_was_said_at_each_moment(
    app, env, db, owner_web, interview_wav
) -> None:
    """The researcher's timeline page carries each moment's utterances (interview audio ms);
    a participant's pages never do, and the timeline refuses the participant."""
    a, b, c = env["moments"]
    rs_id = env["rs"]["id"]
    assert upload(env, interview_wav, events(a, b, c)).status_code == 201
    files = {"file": (io.BytesIO(VTT.encode()), "t.vtt")}
    resp = env["api"]("POST", f"/api/v1/recall-sessions/{rs_id}/transcript", data=files)
    assert resp.status_code == 201, resp.json
    rec_id = env["rec"].id
    page = owner_web.get(f"/recordings/{rec_id}/timeline").get_data(as_text=True)
    payload = json.loads(page.split('id="timeline-data">')[1].split("</script>")[0])
    assert payload["utterances"] == {
        str(a): [
            {"start_ms": 2000, "end_ms": 3000, "text": "What was happening for you there?"},
            {"start_ms": 3999, "end_ms": 4000, "text": "I felt stuck."},
        ],
        str(b): [{"start_ms": 6200, "end_ms": 7000, "text": "I noticed the pause."}],
        str(c): [{"start_ms": 9500, "end_ms": 10_000, "text": "That was the moment."}],
    }
    # a deleted moment's words leave the page with it
    assert env["api"]("DELETE", f"/api/v1/recall-sessions/{rs_id}/moments/{b}").status_code in (
        200, 204,
    )  # fmt: skip
    page = owner_web.get(f"/recordings/{rec_id}/timeline").get_data(as_text=True)
    payload = json.loads(page.split('id="timeline-data">')[1].split("</script>")[0])
    assert sorted(payload["utterances"]) == sorted([str(a), str(c)])
    # the dyad's other participant, on their own link: none of it, anywhere they can go
    invited = env["session"]("therapist", "self")
    other = participant(app, invited["url"])
    seen = "".join(
        other.get(url).get_data(as_text=True)
        for url in (other.landing, f"/recall/{invited['id']}", f"/recall/{invited['id']}/moments")
    )
    assert "I felt stuck." not in seen and "utterances" not in seen
    assert other.get(f"/recordings/{rec_id}/timeline").status_code in (302, 303, 404)
