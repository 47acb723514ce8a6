"""The follow-up pass in Chromium: the researcher turns it on and opens it early on the dyad
page; the client, on a phone (390×844), follows the same link to the follow-up, replays a short
clip around each of their own moments, rates them again (a reload in between loses nothing),
presses *I need to stop / this is distressing* (the clip pauses, the support text shows, the
owner is told which moment: audit row and e-mail) and continues, finishes, and ends for now
from the same dialog; the ratings are stored beside the moments and exported."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from ipr import interview, jobs, recall
from ipr.config import load_config
from ipr.models import AuditEvent, FollowUpRating, Job, Moment, RecallSession
from tests.e2e.conftest import (
    DESKTOP,
    PHONE,
    TABLET,
    LiveServer,
    check_a11y,
    expect_status,
    log_in,
)
from tests.e2e.test_recall_journey import (  # noqa: F401 — fixtures used by name
    api,
    session_video,
    set_up_recall,
)
from tests.smtp_inbox import Inbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SHOTS = Path(os.environ.get("FOLLOWUP_SHOTS", "/tmp/followup"))


def _shoot(page: Page, name: str) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
    check_a11y(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"followup-{name}.png"), full_page=True)


def _saved(page: Page) -> None:
    expect(page.locator("#save-status")).to_have_text("All changes saved", timeout=15_000)


def test_a_client_rates_their_own_moments_again_on_a_phone(
    new_page: Callable[..., Page],
    live_server: LiveServer,
    session_video: Path,  # noqa: F811
    smtp_inbox: Inbox,
) -> None:
    setup = set_up_recall(live_server, session_video)
    token, client_link = setup["token"], setup["links"]["client"]
    rs_id = client_link["id"]
    bearer = client_link["token"]

    # --- the researcher turns the follow-up on (study page)
    desk = new_page(viewport=DESKTOP, name="researcher")
    log_in(desk, setup["researcher"])
    desk.goto(f"/studies/{setup['study_id']}#followup")
    section = desk.locator("#followup")
    section.get_by_label("Schedule a follow-up when a participant finishes").check()
    section.get_by_label("Days after finishing").fill("30")
    section.get_by_label(re.compile(r"^Follow-up instructions \(English")).fill(
        "A month has passed. Please look at your moments once more."
    )
    section.get_by_role("button", name="Save follow-up").click()
    expect(desk.locator("#followup .saved")).to_have_text("Saved")
    check_a11y(desk, "study follow-up setting")
    SHOTS.mkdir(parents=True, exist_ok=True)
    desk.locator("#followup").screenshot(path=str(SHOTS / "followup-study-setting.png"))

    # --- the client's blind phase (through the participant API), then they finish
    for body in (
        {"t_ms": 4000, "text": "When she said I could stop, I relaxed.", "ratings": {"hat": 7}},
        {"t_ms": 12_000, "end_ms": 14_000, "text": "I felt rushed here.", "ratings": {"hat": 3}},
    ):
        req = urllib.request.Request(
            f"{live_server.url}/api/v1/recall-sessions/{rs_id}/moments",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 201
    with live_server.database.session() as s:
        rs = s.get(RecallSession, rs_id)
        recall.finish(s, rs, actor="participant C07")  # what *I'm finished* does

    # --- the dyad page shows it scheduled; the researcher opens it early
    dyads = api(live_server, token, "GET", f"/studies/{setup['study_id']}/dyads")
    desk.goto(f"/dyads/{dyads['dyads'][0]['id']}")
    row = desk.locator(f"#followup-{rs_id}")
    expect(row.locator(".followup-state")).to_contain_text("Due ")
    _shoot(desk, "dyad-scheduled")
    row.get_by_role("button", name="Open now").click()
    expect(desk.locator(f"#followup-{rs_id} .followup-state")).to_contain_text("not opened yet")

    # --- on a laptop the clip and the form sit side by side (the same link, another device)
    laptop = new_page(viewport=DESKTOP, name="client-laptop")
    laptop.goto(client_link["url"])
    laptop.get_by_role("button", name="Start").click()
    expect(laptop.locator("#fu-pos")).to_have_text("Moment 1 of 2, at 0:04")
    video, form = (
        laptop.locator("#fu-video").bounding_box(),
        laptop.locator("#fu-form").bounding_box(),
    )
    assert video and form and form["x"] > video["x"] + video["width"] - 1  # side by side
    assert form["y"] + form["height"] <= 800  # the whole form without scrolling
    _shoot(laptop, "laptop-moment-1")
    tablet = new_page(viewport=TABLET, name="client-tablet")
    tablet.goto(client_link["url"])
    tablet.get_by_role("button", name="Start").click()
    expect(tablet.locator("#fu-text")).to_have_text("When she said I could stop, I relaxed.")
    _shoot(tablet, "tablet-moment-1")

    # --- the client, on a phone, follows their link
    phone = new_page(viewport=PHONE, name="client-phone")
    phone.goto(client_link["url"])
    expect(phone).to_have_url(re.compile(rf"/recall/{rs_id}/followup$"))
    expect(phone.get_by_text("A month has passed.")).to_be_visible()
    _shoot(phone, "phone-intro")
    phone.get_by_role("button", name="Start").click()
    expect(phone.locator("#fu-pos")).to_have_text("Moment 1 of 2, at 0:04")
    expect(phone.locator("#fu-text")).to_have_text("When she said I could stop, I relaxed.")
    expect(phone.locator("#fu-range")).to_have_text("0:00 to 0:14")
    # the clip plays from 10 s before the moment and stops 10 s after it
    phone.get_by_role("button", name="Play this moment").click()
    phone.wait_for_function(
        "() => { const v = document.getElementById('fu-video');"
        " return v.paused && v.currentTime >= 13.5; }",
        timeout=30_000,
    )
    at = phone.evaluate("document.getElementById('fu-video').currentTime")
    assert 13.5 <= at <= 14.6, at
    phone.get_by_role("radio", name="5, Neither helpful nor hindering").check(force=True)
    phone.get_by_label("Anything you would like to add now?").fill("It matters less now.")
    expect(phone.locator("#save-status")).to_have_text("Saving…")
    _saved(phone)  # typing pauses: the comment is saved without leaving the field
    _shoot(phone, "phone-moment-1")
    # a reload keeps what was saved
    phone.reload()
    phone.get_by_role("button", name="Start").click()
    expect(phone.get_by_role("radio", name="5, Neither helpful nor hindering")).to_be_checked()
    expect(phone.get_by_label("Anything you would like to add now?")).to_have_value(
        "It matters less now."
    )
    phone.get_by_role("button", name="Next").click()
    expect(phone.locator("#fu-pos")).to_have_text("Moment 2 of 2, at 0:12")
    expect(phone.locator("#fu-text")).to_have_text("I felt rushed here.")
    expect(phone.locator("#fu-range")).to_have_text("0:02 to 0:20")
    # the server's answer is lost: the page retries the same save, which changes nothing more
    sent: list[str] = []

    def lose_first_answer(route: Route) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        sent.append(route.request.post_data or "")
        if len(sent) == 1:
            route.fetch()  # it reaches the server ...
            route.fulfill(status=503, body="")  # ... but the page hears only a failure
        else:
            route.continue_()

    expect_status(phone, 503)
    saves = f"**/recall/{rs_id}/followup/moments/*"
    phone.route(saves, lose_first_answer)
    phone.get_by_role("radio", name="2, Greatly hindering").check(force=True)
    expect(phone.locator("#save-status")).to_have_text("Not saved yet — trying again")
    _saved(phone)
    phone.unroute(saves)
    assert len(sent) == 2 and sent[0] == sent[1]
    _shoot(phone, "phone-moment-2")

    # --- *I need to stop*: the clip pauses, the support text shows, the owner is told
    button = phone.get_by_role("button", name="I need to stop / this is distressing")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44  # a thumb's target
    phone.get_by_role("button", name="Play this moment").click()
    phone.wait_for_function(
        "() => { const v = document.getElementById('fu-video');"
        " return !v.paused && v.currentTime > 2.3; }",
        timeout=30_000,
    )
    before = len(smtp_inbox.messages)
    button.click()
    dialog = phone.get_by_role("dialog", name="We have paused here")
    expect(dialog).to_be_visible()
    assert phone.evaluate("document.getElementById('fu-video').paused") is True
    expect(dialog).to_contain_text(interview.DEFAULT_SUPPORT["en"])
    expect(phone.locator("#distress-state")).to_have_text("The researcher has been told.")
    _shoot(phone, "phone-distress")
    with live_server.database.session() as s:
        second = s.scalar(
            select(Moment.id).where(Moment.recall_session_id == rs_id, Moment.t_ms == 12_000)
        )
        (details,) = s.scalars(
            select(AuditEvent.details).where(
                AuditEvent.action == "distress_flagged", AuditEvent.object_id == str(rs_id)
            )
        ).all()
        (job_id,) = s.scalars(
            select(Job.id).where(Job.kind == "distress_email", Job.study_id == setup["study_id"])
        ).all()
    assert details == {
        "participant": "C07", "where": "followup", "moment_id": second, "position_ms": 12_000,
    }  # fmt: skip
    config = load_config(Path(live_server.env["IPR_INSTANCE_PATH"]), environ=live_server.env)
    assert "distress_email" in jobs.HANDLERS
    assert jobs.run_job(live_server.database, config, job_id) == "done"  # the worker's part
    mail = smtp_inbox.wait_for(before + 1)[before]
    assert mail["Subject"] == "Distress flagged by participant C07 during the follow-up"
    assert mail["To"] == setup["researcher"].email
    assert "while looking again at their moment at 00:00:12.000" in mail.get_content()
    assert "I felt rushed here." not in mail.get_content()
    # they continue: the dialog closes, the clip waits paused, the rating is still there
    phone.get_by_role("button", name="Continue when I'm ready").click()
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    assert phone.evaluate("document.getElementById('fu-video').paused") is True
    expect(phone.get_by_role("radio", name="2, Greatly hindering")).to_be_checked()

    phone.get_by_role("button", name="I'm done").click()
    expect(
        phone.get_by_role("heading", name="Thank you — you have finished the follow-up")
    ).to_be_visible()
    _shoot(phone, "phone-done")
    # … and from the same dialog they can end for now: every device of the link ends
    button.click()
    expect(dialog).to_be_visible()
    phone.get_by_role("button", name="End for now").click()
    phone.wait_for_url("**/stop")
    expect(phone.locator("main")).to_contain_text("You have stopped for now.")
    with live_server.database.session() as s:
        flagged = s.scalars(
            select(AuditEvent.details)
            .where(AuditEvent.action == "distress_flagged", AuditEvent.object_id == str(rs_id))
            .order_by(AuditEvent.id)
        ).all()
        emails = s.scalars(
            select(Job.id).where(Job.kind == "distress_email", Job.study_id == setup["study_id"])
        ).all()
    assert flagged[1] == {  # the pass was over: no moment on screen
        "participant": "C07", "where": "followup", "moment_id": None, "position_ms": None,
    }  # fmt: skip
    assert emails == [job_id]  # within ten minutes: no second e-mail

    # --- stored beside the moments, never as moments; exported beside the first rating
    with live_server.database.session() as s:
        rows = s.execute(
            select(
                FollowUpRating.ratings, FollowUpRating.comment, FollowUpRating.version, Moment.phase
            )
            .join(Moment, Moment.id == FollowUpRating.moment_id)
            .where(Moment.recall_session_id == rs_id)
            .order_by(Moment.t_ms)
        ).all()
        moments = s.scalars(select(Moment.phase).where(Moment.recall_session_id == rs_id)).all()
    assert [tuple(r) for r in rows] == [
        ({"hat": 5}, "It matters less now.", 2, "blind"),  # the rating, then the comment
        ({"hat": 2}, "", 1, "blind"),  # sent twice, stored once
    ]
    assert moments == ["blind", "blind"]  # no moment was added by the follow-up
    desk.reload()
    expect(desk.locator(f"#followup-{rs_id} .followup-state")).to_contain_text(
        "2 of 2 moments rated"
    )
    _shoot(desk, "dyad-done")
    req = urllib.request.Request(
        f"{live_server.url}/api/v1/recordings/{setup['recording_id']}/export.csv",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read().decode("utf-8-sig")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    exported = [
        (r["text"], r["rating_hat"], r["followup_rating_hat"], r["followup_comment"])
        for r in csv.DictReader(io.StringIO(body))
        if r["participant"] == "C07"
    ]
    assert exported == [
        ("When she said I could stop, I relaxed.", "7", "5", "It matters less now."),
        ("I felt rushed here.", "3", "2", ""),
    ]
