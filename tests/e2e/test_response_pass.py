"""The response pass after a reveal, in Chromium: a FINISHED therapist (English) and a client who
has NOT finished (Norwegian) each answer the other's moments, by mouse and by keyboard, without
anyone reopening anything; their blind-phase moments stay frozen."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT
from tests.e2e.conftest import LiveServer, expect_status, log_in
from tests.e2e.test_recall_journey import (  # noqa: F401 — fixtures used by name
    api,
    media_browser,
    mine,
    own_json,
    participant_page,
    play_until,
    session_video,
    set_up_recall,
    tab_to,
    wait_saved,
)
from tests.e2e.test_timeline_screens import moment_point

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# longer than the 140 characters an editable moment shows in the list: read whole after the reveal
C_BLIND = (
    "C-blind: I felt rushed, as if I had to have an answer ready before I even knew what I "
    "felt, and I could not say so then. It stayed with me for the rest of the session."
)


def _mark(page: Page, button: str, label: str, text: str, save: str) -> None:
    page.get_by_role("button", name=button).click()
    page.get_by_label(label).fill(text)
    page.get_by_role("button", name=save, exact=True).click()


def test_finished_and_unfinished_participants_respond_after_the_reveal(
    participant_page: Callable[..., Page],  # noqa: F811
    new_page: Callable[..., Page],
    live_server: LiveServer,
    session_video: Path,  # noqa: F811
) -> None:
    setup = set_up_recall(live_server, session_video)  # the study allows an early reveal
    t_link, c_link = setup["links"]["therapist"], setup["links"]["client"]
    t_rs, c_rs = t_link["id"], c_link["id"]
    question = "What was happening for you here?"

    # --- blind phase: the therapist marks one moment and finishes; the client marks one
    therapist = participant_page(name="therapist")
    therapist.goto(t_link["url"])
    therapist.get_by_role("button", name="Start watching").click()
    play_until(therapist, 2000)
    _mark(therapist, "Mark moment", question, "T-blind: she looked away", "Save")
    wait_saved(therapist)
    therapist.get_by_role("button", name="I'm finished").click()
    therapist.get_by_role("button", name="Yes, I'm finished").click()
    expect(therapist.locator("#locked-note")).to_be_visible(timeout=15_000)
    expect(therapist.get_by_role("button", name="Mark moment")).to_have_count(0)
    client = participant_page(name="client")
    client.goto(c_link["url"])
    client.get_by_role("button", name="Start watching").click()
    play_until(client, 6000)
    _mark(client, "Mark moment", question, C_BLIND, "Save")
    wait_saved(client)

    # --- the reveal; the finished therapist gets the response pass, nobody reopened anything
    recording = setup["recording_id"]
    api(live_server, setup["token"], "POST", f"/recordings/{recording}/reveal")
    # the client's page was open during the reveal: a late edit of a blind moment is refused
    expect_status(client, 409)
    mine(client).filter(has_text="C-blind").get_by_role("button", name=re.compile("^Edit")).click()
    client.get_by_label(question).fill("C-blind: changed after the reveal")
    expect(client.locator("#save-status")).to_contain_text(
        "can no longer be changed or deleted", timeout=15_000
    )
    expect(mine(client).filter(has_text="C-blind: I felt rushed")).to_have_count(1)
    assert [m["text"] for m in own_json(client, c_rs)["moments"]] == [C_BLIND]
    therapist.reload()
    expect(therapist.locator("#response-note")).to_contain_text("Thank you — you have finished.")
    expect(therapist.get_by_text("You can respond to any of these moments.")).to_be_visible()
    blind = mine(therapist).filter(has_text="T-blind")
    expect(blind.get_by_role("button", name=re.compile("^(Edit|Delete)"))).to_have_count(0)
    other = therapist.locator("#other > li")
    expect(other).to_have_count(1)
    # the other person's words are read whole, not cut after two lines (nowhere else shows them)
    words = other.first.locator(".words")
    expect(words).to_have_text(C_BLIND)
    assert words.evaluate("e => e.scrollHeight <= e.clientHeight + 1 && e.clientHeight > 40")
    expect(blind.locator(".words")).to_have_text("T-blind: she looked away")
    # by mouse
    other.first.get_by_role("button", name=re.compile("^Respond")).click()
    expect(therapist.locator("#form-title")).to_have_text("Your response")
    expect(therapist.locator("#form-responds")).to_contain_text(C_BLIND)
    therapist.get_by_label(question).fill("T-answer-mouse: I saw you hurry")
    therapist.get_by_role("button", name="Save", exact=True).click()
    wait_saved(therapist)
    # by keyboard: R answers the other's moment at the playhead; Ctrl+Enter saves
    therapist.locator("#play-btn").focus()
    therapist.keyboard.press("r")
    expect(therapist.get_by_label(question)).to_be_focused()
    expect(therapist.locator("#form-responds")).to_contain_text("C-blind")
    therapist.keyboard.type("T-answer-keys: and I sped up")
    therapist.keyboard.press("Control+Enter")
    wait_saved(therapist)
    answers = mine(therapist).filter(has_text="T-answer")
    expect(answers).to_have_count(2)
    expect(answers.first).to_contain_text("In response to the other person’s moment at 0:0")
    body = own_json(therapist, t_rs)
    c_blind = body["revealed"][0]["id"]
    assert sorted((m["text"], m["phase"], m["responds_to_id"]) for m in body["moments"]) == [
        ("T-answer-keys: and I sped up", "response", c_blind),
        ("T-answer-mouse: I saw you hurry", "response", c_blind),
        ("T-blind: she looked away", "blind", None),
    ]

    # --- the client has not finished; the study now speaks Norwegian
    api(live_server, setup["token"], "PATCH", f"/studies/{setup['study_id']}", {"language": "nb"})
    client.reload()
    expect(client.locator("html")).to_have_attribute("lang", "nb")
    expect(client.locator("#response-note")).to_contain_text(
        "Øyeblikkene du markerte før, beholdes slik de var."
    )
    expect(client.get_by_text("Du kan svare på hvert av disse øyeblikkene.")).to_be_visible()
    c_own = mine(client).filter(has_text="C-blind")
    expect(c_own.get_by_role("button", name=re.compile("^(Endre|Slett)"))).to_have_count(0)
    theirs = client.locator("#other > li")
    expect(theirs).to_have_count(3)  # the therapist's blind moment and both answers
    expect(theirs.filter(has_text="T-answer-mouse")).to_contain_text("den andres svar")
    # by keyboard: Tab to the first Svar (the therapist's blind moment), Enter, type, Ctrl+Enter
    client.locator("#play-btn").focus()
    tab_to(client, "Svar", limit=40)
    client.keyboard.press("Enter")
    expect(client.get_by_label("Hva skjedde for deg her?")).to_be_focused()
    expect(client.locator("#form-title")).to_have_text("Ditt svar")
    client.keyboard.type("C-svar-tast: jeg merket det ikke")
    client.keyboard.press("Control+Enter")
    expect(client.locator("#save-status")).to_have_text("Alle endringer er lagret", timeout=15_000)
    # by mouse: answer the therapist's answer
    theirs.filter(has_text="T-answer-mouse").get_by_role("button", name=re.compile("^Svar")).click()
    client.get_by_label("Hva skjedde for deg her?").fill("C-svar-mus: ja, jeg hastet")
    client.get_by_role("button", name="Lagre", exact=True).click()
    expect(client.locator("#save-status")).to_have_text("Alle endringer er lagret", timeout=15_000)
    expect(mine(client).filter(has_text="C-svar")).to_have_count(2)
    by_text = {m["text"]: m for m in body["moments"]}
    got = own_json(client, c_rs)["moments"]
    assert sorted((m["text"], m["phase"], m["responds_to_id"]) for m in got) == [
        (C_BLIND, "blind", None),
        (
            "C-svar-mus: ja, jeg hastet",
            "response",
            by_text["T-answer-mouse: I saw you hurry"]["id"],
        ),
        ("C-svar-tast: jeg merket det ikke", "response", by_text["T-blind: she looked away"]["id"]),
    ]

    # --- the researcher's timeline draws the answers threaded to what they answer
    researcher = new_page(name="researcher")
    log_in(researcher, setup["researcher"])
    researcher.goto(f"/recordings/{recording}/timeline")
    expect(researcher.locator("#tl-canvas")).to_have_attribute("data-ready", "1")
    answer = by_text["T-answer-mouse: I saw you hurry"]
    spot = moment_point(researcher, answer["id"])
    researcher.mouse.move(spot["x"], spot["y"])
    tip = researcher.locator("#tl-tip")
    expect(tip).to_contain_text("Response after the reveal to the client's moment at 0:0")
    expect(tip).to_contain_text("not counted in any figure")
    researcher.screenshot(path=str(ROOT / "test-artifacts" / "timeline-responses.png"))
