"""Prompt answers are as durable as moments (issue 16): the answers a researcher notes at a stop
go through the recall page's outbox (static/js/recall.js), so they survive a dead connection and
a reload, and are retried with backoff without another edit. Chromium against the live server;
the network is cut with Playwright routes, as in the recall journey.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from ipr.models import Moment, PromptAnswer
from tests.e2e.conftest import (
    DESKTOP,
    GUARD_ATTR,
    LiveServer,
    check_a11y,
    expect_status,
    log_in,
)
from tests.e2e.test_interview_safeguards import ANSWER, SECRET, set_up, start, stop_at
from tests.e2e.test_recall_journey import session_video, wait_saved

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["session_video"]  # the module fixture, shared with the recall journey

THEN = "Go back into that moment as it was then"


def stored(server: LiveServer, rs_id: int) -> tuple[list[str], list[tuple[int, str, str]]]:
    """The session's moments (their text) and every prompt answer (moment, key, value)."""
    with server.database.session() as s:
        moments = s.execute(
            select(Moment.id, Moment.text).where(
                Moment.recall_session_id == rs_id, Moment.deleted_at.is_(None)
            )
        ).all()
        answers = s.execute(
            select(PromptAnswer.moment_id, PromptAnswer.prompt_key, PromptAnswer.value)
            .where(PromptAnswer.moment_id.in_([m.id for m in moments]))
            .order_by(PromptAnswer.prompt_key)
        ).all()
    return [m.text for m in moments], [tuple(a) for a in answers]


def open_researcher_page(new_page, world: dict, rs_id: int) -> Page:
    page = new_page(viewport=DESKTOP, name="researcher")
    log_in(page, world["researcher"])
    page.goto(f"/recall/{rs_id}")
    start(page)
    return page


def test_answers_typed_offline_survive_a_reload_and_reach_the_server(
    new_page, live_server: LiveServer, session_video: Path
) -> None:
    world = set_up(live_server, session_video)
    rs_id = world["sessions"]["client"]["id"]
    page = open_researcher_page(new_page, world, rs_id)
    writes = re.compile(rf"/recall/{rs_id}/moments(/|$)")
    blocked = {"on": True}

    def unreachable(route: Route) -> None:
        if blocked["on"] and route.request.method != "GET":
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(writes, unreachable)
    stop_at(page, 3000)
    page.get_by_role("button", name="Mark moment").click()
    page.get_by_label("What was happening for you here?").fill(SECRET)
    panel = page.locator("#prompt-panel")
    panel.get_by_label(THEN).fill(ANSWER)
    panel.locator("fieldset[data-key=helpfulness] label.scale-opt:has(input[value='8'])").click()
    panel.get_by_label("The therapist's").check()
    expect(page.locator("#prompt-state")).to_have_text("Answers not saved yet — retrying")
    expect(page.locator("#save-status")).to_have_text("Not saved yet — retrying")
    check_a11y(page, "answers waiting for the connection")
    kept = json.loads(page.evaluate(f"localStorage.getItem('ipr-recall-outbox-{rs_id}')"))
    answers = [o["body"] for o in kept if o["op"] == "answers"]
    assert answers == [{"then": ANSWER, "helpfulness": 8, "whose_words": "therapist"}]
    page.get_by_role("button", name="Save", exact=True).click()

    page.once("dialog", lambda dialog: dialog.accept())  # "leave with unsaved changes?"
    page.reload()
    start(page)
    # still offline: the stop and its answers are back in the page, waiting
    mine = page.locator("#mine .moment")
    expect(mine).to_have_count(1)
    expect(mine.first).to_contain_text("not saved yet")
    mine.first.get_by_role("button", name="Edit").click()
    expect(panel.get_by_label(THEN)).to_have_value(ANSWER)
    expect(panel.locator("fieldset[data-key=helpfulness] input[value='8']")).to_be_checked()
    expect(panel.get_by_label("The therapist's")).to_be_checked()
    expect(page.locator("#prompt-state")).to_have_text("Answers not saved yet — retrying")
    assert stored(live_server, rs_id) == ([], [])

    blocked["on"] = False  # the connection is back: no edit needed
    expect(page.locator("#prompt-state")).to_have_text("Answers saved", timeout=40_000)
    wait_saved(page)
    page.unroute(writes)
    texts, rows = stored(live_server, rs_id)
    assert texts == [SECRET]
    mid = rows[0][0]
    assert rows == [
        (mid, "helpfulness", "8"), (mid, "then", ANSWER), (mid, "whose_words", "therapist"),
    ]  # fmt: skip
    assert page.evaluate(f"localStorage.getItem('ipr-recall-outbox-{rs_id}')") is None
    # the refused requests were provoked on purpose: Chromium notes each one
    guard = getattr(page, GUARD_ATTR)
    guard.console_errors = [e for e in guard.console_errors if "ERR_INTERNET_DISCONNECTED" not in e]


def test_answers_refused_twice_with_503_are_sent_again_without_an_edit(
    new_page, live_server: LiveServer, session_video: Path
) -> None:
    world = set_up(live_server, session_video)
    rs_id = world["sessions"]["client"]["id"]
    page = open_researcher_page(new_page, world, rs_id)
    expect_status(page, 503)
    stop_at(page, 3000)
    page.get_by_role("button", name="Mark moment").click()
    page.get_by_label("What was happening for you here?").fill(SECRET)
    wait_saved(page)  # the moment itself is on the server
    bodies: list[dict] = []

    def busy_twice(route: Route) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        bodies.append(json.loads(route.request.post_data or "null"))
        if len(bodies) <= 2:
            route.fulfill(status=503, body="")
        else:
            route.continue_()

    answers_url = re.compile(rf"/recall/{rs_id}/moments/\d+/answers$")
    page.route(answers_url, busy_twice)
    page.locator("#prompt-panel").get_by_label(THEN).fill(ANSWER)
    expect(page.locator("#prompt-state")).to_have_text("Answers not saved yet — retrying")
    expect(page.locator("#prompt-state")).to_have_text("Answers saved", timeout=20_000)
    wait_saved(page)
    page.unroute(answers_url)
    assert bodies == [{"answers": {"then": ANSWER}}] * 3
    texts, rows = stored(live_server, rs_id)
    assert texts == [SECRET]
    assert [(key, value) for _, key, value in rows] == [("then", ANSWER)]
