"""The recall interview's prompts and safeguards, end to end in Chromium (issue 16).

A researcher leads a recall: at a stop the prompt sheet shows beside the video, the answers
typed there are saved with the moment and appear on the timeline's detail. A participant on a
phone presses *I need to stop / this is distressing*: the video pauses, the study's support text
shows, and the owner is told (audit row, e-mail in the test inbox). Consent is recorded and the
participant withdraws: their data is gone from the disk and from every export.
Screenshots land in ``test-artifacts/interview/`` (``INTERVIEW_SHOTS_TO_DOCS=1`` also refreshes
``docs/screenshots/interview-*.png``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ipr import dataset, interview, jobs
from ipr.config import load_config
from ipr.models import AuditEvent, Job, PromptAnswer, Recording
from tests.conftest import ROOT
from tests.e2e.conftest import DESKTOP, PHONE, LiveServer, check_a11y, log_in
from tests.e2e.test_recall_journey import api, session_video, wait_saved
from tests.smtp_inbox import Inbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SHOTS = ROOT / "test-artifacts" / "interview"
__all__ = ["session_video"]  # the module fixture, shared with the recall journey

SUPPORT = "We have stopped. You can call Anna at the clinic on 22 00 00 00, any time today."
SECRET = "the client's words at the stop"
ANSWER = "My chest went tight when she said that."


def shoot(page: Page, name: str) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
    check_a11y(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    if os.environ.get("INTERVIEW_SHOTS_TO_DOCS") == "1":  # refresh the ones docs/ keeps
        shutil.copy(SHOTS / f"{name}.png", ROOT / "docs" / "screenshots" / f"interview-{name}.png")


def set_up(server: LiveServer, video: Path) -> dict[str, Any]:
    """A study, dyad 07 with a processed recording; the client's recall is researcher-led and
    the therapist's self-guided."""
    who = server.new_researcher("interview")
    made = server.flask("ipr", "token", who.email)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    name = f"Interview {uuid.uuid4().hex[:6]}"
    study = api(server, token, "POST", "/studies", {"name": name})
    dyad = api(server, token, "POST", f"/studies/{study['id']}/dyads", {"code": "07"})
    imported = server.flask(
        "ipr", "import", str(video), "--study", name, "--dyad", "07", "--session", "Session 3",
        "--wait",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    rec = json.loads(imported.stdout.strip().splitlines()[-1])
    assert rec["status"] == "ready", rec
    sessions = {
        role: api(server, token, "POST", f"/recordings/{rec['recording_id']}/recall-sessions",
                  {"participant_id": dyad[role]["id"], "mode": mode})
        for role, mode in (("client", "researcher"), ("therapist", "self"))
    }  # fmt: skip
    return {"researcher": who, "token": token, "study": study, "dyad": dyad,
            "recording_id": rec["recording_id"], "sessions": sessions}  # fmt: skip


def start(page: Page) -> None:
    if page.locator("#start-btn").is_visible():
        page.locator("#start-btn").click()
    expect(page.locator("#video")).to_be_visible()
    page.wait_for_function("() => document.getElementById('video').readyState >= 1")


def stop_at(page: Page, ms: int) -> None:
    """Play on (unless already playing: a saved moment resumes the video) to ``ms``, pause."""
    if page.evaluate("document.getElementById('video').paused"):
        page.get_by_role("button", name="Play", exact=True).click()
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime * 1000 >= {ms}", timeout=15_000
    )
    page.get_by_role("button", name="Pause", exact=True).click()


def test_the_researcher_asks_the_prompts_at_a_stop_and_the_answers_are_kept(
    new_page, live_server: LiveServer, session_video: Path
) -> None:
    world = set_up(live_server, session_video)
    rs = world["sessions"]["client"]
    page = new_page(viewport=DESKTOP, name="researcher")
    log_in(page, world["researcher"])
    page.goto(f"/recall/{rs['id']}")
    start(page)
    panel = page.locator("#prompt-panel")
    expect(panel).to_be_hidden()  # nothing to ask before a stop
    stop_at(page, 3000)
    page.get_by_role("button", name="Mark moment").click()
    expect(panel).to_be_visible()
    expect(page.locator("#prompt-at")).to_contain_text("at 0:0")
    page.get_by_label("What was happening for you here?").fill(SECRET)
    panel.get_by_label("Go back into that moment as it was then").fill(ANSWER)
    panel.locator("fieldset[data-key=helpfulness] label.scale-opt:has(input[value='8'])").click()
    panel.get_by_label("The therapist's").check()
    expect(page.locator("#prompt-state")).to_have_text("Answers saved", timeout=15_000)
    shoot(page, "prompts-at-a-stop-1280")
    page.get_by_role("button", name="Save", exact=True).click()
    wait_saved(page)
    expect(panel).to_be_hidden()
    with live_server.database.session() as s:
        rows = s.execute(
            select(PromptAnswer.prompt_key, PromptAnswer.value).where(
                PromptAnswer.study_id == world["study"]["id"]
            )
        ).all()
    assert sorted(rows) == [
        ("helpfulness", "8"), ("then", ANSWER), ("whose_words", "therapist"),
    ]  # fmt: skip
    # reopened after a reload, the stop shows its answers again
    page.reload()
    start(page)
    page.locator("#mine .moment").first.get_by_role("button", name="Edit").click()
    expect(panel.get_by_label("Go back into that moment as it was then")).to_have_value(ANSWER)
    expect(panel.get_by_label("The therapist's")).to_be_checked()
    page.get_by_role("button", name="Close").click()
    # the timeline's detail reads them
    page.goto(f"/recordings/{world['recording_id']}/timeline")
    page.locator("body").press("j")
    detail = page.locator("#tl-detail")
    expect(detail).to_contain_text(SECRET)
    first = "Go back into that moment as it was then, not as you see it now"
    expect(detail).to_contain_text(f"Interview · {first}: what was going on for you? — {ANSWER}")
    expect(detail).to_contain_text("How helpful or hindering was it? — 8 (Greatly helpful)")
    detail.scroll_into_view_if_needed()
    shoot(page, "timeline-detail-with-answers-1280")


def test_distress_on_a_phone_pauses_shows_support_and_tells_the_owner(
    new_page, live_server: LiveServer, session_video: Path, smtp_inbox: Inbox
) -> None:
    world = set_up(live_server, session_video)
    study_id = world["study"]["id"]
    api(live_server, world["token"], "PUT", f"/studies/{study_id}/support-text",
        {"language": "en", "text": SUPPORT})  # fmt: skip
    link = world["sessions"]["therapist"]
    page = new_page(viewport=PHONE, name="participant-phone")
    page.goto(link["url"])
    start(page)
    button = page.get_by_role("button", name="I need to stop / this is distressing")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44  # a thumb's target
    shoot(page, "distress-button-390")
    page.get_by_role("button", name="Play", exact=True).click()
    page.wait_for_function("() => document.getElementById('video').currentTime > 0.5")
    before = len(smtp_inbox.messages)
    button.click()
    dialog = page.get_by_role("dialog", name="We have paused here")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.getElementById('video').paused") is True
    expect(dialog).to_contain_text(SUPPORT)
    expect(page.locator("#distress-state")).to_have_text("The researcher has been told.")
    shoot(page, "distress-support-390")
    with live_server.database.session() as s:
        flagged = AuditEvent.action == "distress_flagged"
        event = s.scalar(select(AuditEvent).where(flagged, AuditEvent.object_id == str(link["id"])))
        assert event is not None and event.actor == "participant T07"
        (job_id,) = s.scalars(
            select(Job.id).where(
                Job.kind == "distress_email", Job.status == "queued", Job.study_id == study_id
            )
        ).all()
    config = load_config(Path(live_server.env["IPR_INSTANCE_PATH"]), environ=live_server.env)
    assert "distress_email" in jobs.HANDLERS, interview.__name__
    assert jobs.run_job(live_server.database, config, job_id) == "done"  # the worker's part
    mail = smtp_inbox.wait_for(before + 1)[before]
    assert mail["Subject"] == "Distress flagged by participant T07"
    assert mail["To"] == world["researcher"].email
    assert SECRET not in mail.get_content()
    # the session can be resumed: the dialog closes, the video waits paused for the participant
    page.get_by_role("button", name="Continue when I'm ready").click()
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.getElementById('video').paused") is True
    expect(button).to_be_focused()
    # … or ended, from the keyboard this time: the link works again later
    button.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="End for now").click()
    page.wait_for_url("**/stop")
    expect(page.locator("main")).to_contain_text("You have stopped for now.")
    page.goto(link["url"])
    expect(page.get_by_role("button", name="I need to stop / this is distressing")).to_be_visible()


def _http(server: LiveServer, token: str, method: str, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(server.url + "/api/v1" + path, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _texts(fmt: str, body: bytes) -> str:
    """Every text an export holds (a ZIP's members, an XLSX's sheets), decoded."""
    if fmt in ("xlsx", "bundle", "zip") or body[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return "\n".join(
                archive.read(n).decode("utf-8", "replace")
                for n in archive.namelist()
                if not n.endswith((".mp4", ".png", ".wav", ".webm"))
            )
    return body.decode("utf-8", "replace")


TEXT_FORMATS = ("csv", "xlsx", "json", "bundle", "methods", "eaf", "textgrid", "vtt", "srt")


def _every_export(server: LiveServer, world: dict[str, Any]) -> dict[str, bytes]:
    """Every format at every level it exists on; the moment clips are cut by being the worker."""
    token, rec_id, study_id = world["token"], world["recording_id"], world["study"]["id"]
    out = {}
    for fmt in (*TEXT_FORMATS, "svg", "png"):
        for level, obj in (("studies", study_id), ("recordings", rec_id)):
            status, body = _http(server, token, "GET", f"/{level}/{obj}/export.{fmt}")
            assert status == 200, (fmt, level, status, body[:200])
            out[f"{level}.{fmt}"] = body
    status, _ = _http(server, token, "GET", f"/recordings/{rec_id}/export.zip")
    if status == 202:
        config = load_config(Path(server.env["IPR_INSTANCE_PATH"]), environ=server.env)
        assert "moment_clips" in jobs.HANDLERS, dataset.__name__
        with server.database.session() as s:
            ids = s.scalars(
                select(Job.id).where(Job.kind == "moment_clips", Job.status == "queued")
            ).all()
        for job_id in ids:
            assert jobs.run_job(server.database, config, job_id) == "done"
        status, body = _http(server, token, "GET", f"/recordings/{rec_id}/export.zip")
    assert status == 200
    out["recordings.zip"] = body
    return out


def test_consent_then_withdrawal_erases_the_participant_on_disk_and_in_every_export(
    new_page, live_server: LiveServer, session_video: Path
) -> None:
    world = set_up(live_server, session_video)
    token, rs = world["token"], world["sessions"]["client"]
    client_id = world["dyad"]["client"]["id"]
    # the interview: the researcher marks two stops for C07 and notes an answer at one
    page = new_page(viewport=DESKTOP, name="researcher")
    log_in(page, world["researcher"])
    page.goto(f"/recall/{rs['id']}")
    start(page)
    for ms, words in ((2000, SECRET), (6000, SECRET + " again")):
        stop_at(page, ms)
        page.get_by_role("button", name="Mark moment").click()
        page.get_by_label("What was happening for you here?").fill(words)
        page.locator("#prompt-panel").get_by_label("What were you feeling right then?").fill(ANSWER)
        expect(page.locator("#prompt-state")).to_have_text("Answers saved", timeout=15_000)
        page.get_by_role("button", name="Save", exact=True).click()
        wait_saved(page)
    # the therapist's own moment must stay
    with live_server.database.session() as s:
        mine = PromptAnswer.study_id == world["study"]["id"]
        assert len(s.scalars(select(PromptAnswer).where(mine)).all()) == 2
    therapist = world["sessions"]["therapist"]
    p = new_page(viewport=DESKTOP, name="therapist")
    p.goto(therapist["url"])
    start(p)
    stop_at(p, 1000)
    p.get_by_role("button", name="Mark moment").click()
    p.get_by_label("What was happening for you here?").fill("the therapist keeps this")
    p.get_by_role("button", name="Save", exact=True).click()
    wait_saved(p)
    consent = api(live_server, token, "POST", f"/participants/{client_id}/consent",
                  {"sheet_version": "v3", "consented_on": "2026-11-01"})  # fmt: skip
    assert consent["sheet_version"] == "v3"
    recordings = Path(live_server.env["IPR_RECORDINGS_DIR"])
    before = _every_export(live_server, world)
    with live_server.database.session() as s:  # the clips ZIP the worker made for this study
        key = s.scalar(
            select(Job.params).where(
                Job.kind == "moment_clips", Job.study_id == world["study"]["id"]
            )
        )["key"]
    cached = recordings / ".exports" / f"{key}.zip"
    assert SECRET in _texts("zip", cached.read_bytes())
    for key in ("studies.csv", "studies.xlsx", "studies.json", "studies.bundle",
                "recordings.eaf", "recordings.textgrid", "recordings.vtt", "recordings.srt",
                "recordings.zip"):  # fmt: skip
        assert SECRET in _texts(key.split(".")[1], before[key]), key  # the check can fail
    for key in ("studies.csv", "studies.json", "studies.bundle", "recordings.eaf"):
        assert ANSWER in _texts(key.split(".")[1], before[key]), key
    assert "2 client moments" in before["studies.methods"].decode()
    clips_before = zipfile.ZipFile(io.BytesIO(before["recordings.zip"])).namelist()
    assert sum("_client_" in n for n in clips_before) == 2
    # the withdrawal (the interview is over: its page is closed)
    page.close()
    erased = api(live_server, token, "POST", f"/participants/{client_id}/withdraw")
    assert erased["erased"] == {
        "recall_sessions": 1, "moments": 2, "voice_notes": 0, "interview_audio_files": 0,
        "transcript_utterances": 0, "prompt_answers": 2,
    }  # fmt: skip
    assert not cached.exists()  # its clips.csv held the words: withdrawal removed it
    after = _every_export(live_server, world)
    for key, body in after.items():
        text = _texts(key.split(".")[1], body)
        assert SECRET not in text and ANSWER not in text, key
    assert "the therapist keeps this" in _texts("csv", after["studies.csv"])
    assert "2 client moments" not in after["studies.methods"].decode()
    assert after["recordings.svg"] != before["recordings.svg"]  # the client's marks are gone
    assert not any(
        "C07" in n for n in zipfile.ZipFile(io.BytesIO(after["recordings.zip"])).namelist()
    )
    # on disk: nothing of the participant anywhere under the media folder, the database rows gone
    with live_server.database.session() as s:
        folder = recordings / s.get(Recording, world["recording_id"]).storage_key
    for path in [*folder.rglob("*"), *(recordings / ".exports").glob("*")]:
        if path.is_file() and path.suffix in (".csv", ".json", ".txt", ".eaf", ".zip"):
            assert SECRET not in _texts(path.suffix[1:], path.read_bytes()), path
    with live_server.database.session() as s:
        assert s.scalars(select(PromptAnswer).where(mine)).all() == []
        withdrawn = AuditEvent.action == "participant_withdrawn"
        receipt = s.scalar(
            select(AuditEvent).where(withdrawn, AuditEvent.object_id == str(client_id))
        )
        assert receipt.details == erased["erased"]
    # consent stays as the record of what was consented to and withdrawn
    (kept,) = api(live_server, token, "GET", f"/participants/{client_id}/consent")["consent"]
    assert (kept["sheet_version"], kept["consented_on"]) == ("v3", "2026-11-01")
    # the participant's page is gone
    assert _http(live_server, token, "GET", f"/recall-sessions/{rs['id']}")[0] == 404


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_study_page_edits_the_prompt_sheet(
    new_page, live_server: LiveServer, viewport: dict[str, int]
) -> None:
    who = live_server.new_researcher("sheet")
    study_id = live_server.seed_study(who, f"Prompt sheet {uuid.uuid4().hex[:6]}")
    page = new_page(viewport=viewport, name="sheet")
    log_in(page, who)
    page.goto(f"/studies/{study_id}#prompts")
    section = page.locator("#prompts")
    expect(section).to_contain_text("This study uses the default sheet")
    first = section.get_by_label("Question (English)").first
    expect(first).to_have_value(
        "Go back into that moment as it was then, not as you see it now: what was going on for you?"
    )
    # every question and list of choices is shown whole, not cut after two lines
    cut = section.locator("textarea").evaluate_all(
        "els => els.filter(e => e.offsetParent && e.scrollHeight > e.clientHeight + 1)"
        ".map(e => e.id)"
    )
    assert cut == []
    first.fill("What was it like for you, right then?")
    blank = section.locator("li.is-new")
    blank.get_by_label("Kind of answer").select_option("choice")
    blank.get_by_label("Question (English)").fill("Was this moment new to you?")
    blank.get_by_label("Choices (English), one a line").fill("Yes\nNo\nNot sure")
    section.get_by_role("button", name="Save prompts").click()
    expect(page.locator("#prompts .saved")).to_have_text("Saved")
    expect(page.locator("#prompts")).not_to_contain_text("This study uses the default sheet")
    expect(page.locator("#prompts").get_by_label("Question (English)").first).to_have_value(
        "What was it like for you, right then?"
    )
    expect(page.locator("#prompts code", has_text="was_this_moment_new_to_you")).to_be_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    check_a11y(page, f"prompt sheet saved at {viewport['width']}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#prompts").screenshot(path=str(SHOTS / f"study-prompts-{viewport['width']}.png"))
    # the API reads the same sheet
    token = live_server.flask("ipr", "token", who.email).stdout.strip()
    sheet = api(live_server, token, "GET", f"/studies/{study_id}/prompts")
    assert sheet["prompts"][0]["text"]["en"] == "What was it like for you, right then?"
    assert sheet["prompts"][-1]["choices"] == [
        {"value": "yes", "label": {"en": "Yes"}},
        {"value": "no", "label": {"en": "No"}},
        {"value": "not_sure", "label": {"en": "Not sure"}},
    ]
