"""The participant's page on a phone, a tablet and a laptop: one client journey at each size.

At each size a client starts watching (the video is in view, not scrolled away), marks a point, a
span with a peak added while playing on, records a voice note (Chromium's fake microphone), saves
with the Save button in sight, saves once more at the very end (playback does not start over) and
finishes; a finished client sees only what is left to do. axe-core checks every state. Screenshots
land in ``test-artifacts/devices/`` (``DEVICES_SHOTS_TO_DOCS=1`` also refreshes
``docs/screenshots/devices-*.png``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import ROOT
from tests.e2e.conftest import LiveServer, check_a11y, log_in
from tests.e2e.test_recall_journey import (  # noqa: F401 (fixtures)
    current_ms,
    media_browser,
    own_json,
    participant_page,
    session_video,
    set_up_recall,
    wait_saved,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZES = {
    "phone": {"width": 390, "height": 844},
    "tablet": {"width": 768, "height": 1024},
    "laptop": {"width": 1366, "height": 768},
}
SHOTS = ROOT / "test-artifacts" / "devices"
DOCS_SHOTS = ROOT / "docs" / "screenshots"


def in_view(page: Page, target: Locator) -> bool:
    """The whole element is inside the window (nothing to scroll to reach it)."""
    box = target.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return (
        box["y"] >= 0
        and box["x"] >= 0
        and box["y"] + box["height"] <= size["height"]
        and box["x"] + box["width"] <= size["width"]
    )


def shoot(page: Page, size: str, name: str) -> None:
    """Check the state with axe and the width, then keep a picture of it."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} at {size} scrolls sideways by {overflow}px"
    check_a11y(page, f"{name} ({size})")
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"devices-{size}-{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("DEVICES_SHOTS_TO_DOCS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SHOTS / path.name)


def play_until(page: Page, ms: int) -> None:
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime * 1000 >= {ms}", timeout=15_000
    )


@pytest.mark.parametrize("size", list(SIZES))
def test_client_recalls_at_each_size(
    participant_page: Callable[..., Page],  # noqa: F811
    live_server: LiveServer,
    session_video: Path,  # noqa: F811
    size: str,
) -> None:
    setup = set_up_recall(live_server, session_video)
    link = setup["links"]["client"]
    page = participant_page(viewport=SIZES[size], name=f"client-{size}")
    page.goto(link["url"])
    expect(page.get_by_role("heading", name="Before you start")).to_be_visible()
    shoot(page, size, "instructions")
    page.get_by_role("button", name="Start watching").click()

    # the video, its Play button and the Mark button are in view at once, without scrolling
    play = page.get_by_role("button", name="Play", exact=True)
    mark = page.get_by_role("button", name="Mark moment")
    expect(play).to_be_focused()
    assert page.evaluate("window.scrollY") == 0
    for target in (page.locator("#video"), play, mark):
        assert in_view(page, target), f"{target} is out of view at {size}"
    shoot(page, size, "player")
    if size == "phone":  # the same phone held sideways: the video and the moments side by side
        page.set_viewport_size({"width": 844, "height": 390})
        video_box = page.locator("#video").bounding_box()
        side_box = page.locator(".side").bounding_box()
        assert video_box and side_box and side_box["x"] >= video_box["x"] + video_box["width"]
        for target in (page.locator("#video"), play, mark):
            assert in_view(page, target), f"{target} is out of view on a phone held sideways"
        shoot(page, "phone-landscape", "player")
        page.set_viewport_size(SIZES[size])

    # a point, at about 2 s
    play.click()
    play_until(page, 2000)
    mark.click()
    form = page.locator("#mark-form")
    save = form.get_by_role("button", name="Save", exact=True)
    expect(page.get_by_label("What was happening for you here?")).to_be_focused()
    assert in_view(page, save)
    page.get_by_label("What was happening for you here?").fill(f"{size}: a point")
    save.click()
    wait_saved(page)

    # a span: marked at about 5 s; a peak added while it plays on, before any end; then the end
    page.wait_for_function("() => document.getElementById('video').currentTime * 1000 >= 5000")
    mark.click()
    start_ms = current_ms(page)
    page.get_by_label("What was happening for you here?").fill(f"{size}: a span")
    form.locator("#span-box summary").click()
    page.get_by_role("button", name="Play", exact=True).click()
    play_until(page, start_ms + 1000)
    form.get_by_role("button", name="Add a peak here").click()
    expect(form.locator("#peaks li")).to_have_count(1)
    expect(form.locator("#form-error")).to_be_hidden()
    play_until(page, start_ms + 2000)
    if size == "phone":  # no end given: Save ends the span where playback stopped, peak and all
        page.get_by_role("button", name="Pause", exact=True).click()
    else:
        form.get_by_role("button", name="It ended here").click()
        page.get_by_role("button", name="Pause", exact=True).click()
    expect(form.locator("#peaks li")).to_have_count(1)  # the peak is kept

    # a voice note on the same moment, then Save: in sight without scrolling
    form.get_by_role("button", name="Speak instead").click()
    expect(form.get_by_role("button", name="Stop recording")).to_be_focused()
    page.wait_for_timeout(1200)
    form.get_by_role("button", name="Stop recording").click()
    expect(form.locator("#voice-audio")).to_be_visible()
    wait_saved(page)
    assert in_view(page, save), f"Save is out of view at {size} after a span and a voice note"
    shoot(page, size, "form")
    save.click()
    wait_saved(page)

    # at the very end: saving a moment there leaves the video at the end, not back at 0:00
    page.locator("#seek").evaluate(
        "el => { el.value = el.max; el.dispatchEvent(new Event('input')); }"
    )
    page.wait_for_function("() => document.getElementById('video').currentTime >= 19.5")
    mark.click()
    page.get_by_label("What was happening for you here?").fill(f"{size}: at the end")
    save.click()
    wait_saved(page)
    assert page.evaluate("document.getElementById('video').paused") is True
    assert current_ms(page) >= 19_500
    shoot(page, size, "moments")

    moments = own_json(page, link["id"])["moments"]
    assert [m["text"] for m in moments] == [
        f"{size}: a point",
        f"{size}: a span",
        f"{size}: at the end",
    ]
    point, span, _ = moments
    assert point["end_ms"] is None and 2000 <= point["t_ms"] < 4000
    # where *Mark* paused the video; the paused clock can settle a millisecond later
    assert abs(span["t_ms"] - start_ms) <= 40
    assert start_ms + 2000 <= span["end_ms"] < start_ms + 4000
    assert len(span["peaks_ms"]) == 1
    assert start_ms + 1000 <= span["peaks_ms"][0] < span["end_ms"]
    assert span["voice_url"] == f"/recall/{link['id']}/moments/{span['id']}/voice"

    # finishing: afterwards no break, no stop, no mark; the thanks are in view
    page.get_by_role("button", name="I'm finished").click()
    page.get_by_role("button", name="Yes, I'm finished").click()
    expect(page.locator("#locked-note")).to_be_visible(timeout=15_000)
    for gone in ("Take a break", "Stop for now", "I'm finished", "Mark moment"):
        expect(page.get_by_role("button", name=gone)).to_have_count(0)
    expect(page.get_by_text(re.compile(f"^{size}: a span"))).to_be_visible()
    shoot(page, size, "finished")


def test_researcher_pages_pass_axe_on_a_phone(
    new_page: Callable[..., Page], live_server: LiveServer
) -> None:
    """The researcher's pages at phone size: no serious or critical axe finding on any of them.
    (How they are laid out on a phone is the researcher-page layout's business.)"""
    page = new_page(viewport=SIZES["phone"], name="researcher-phone")
    who = live_server.new_researcher("phone")
    page.goto("/login")
    assert check_a11y(page, "login") == []
    log_in(page, who)
    study_id = live_server.seed_study(who)
    visited = {
        "studies": "/studies",
        "study": f"/studies/{study_id}",
        "dashboard": f"/studies/{study_id}/dashboard",
        "audit": f"/studies/{study_id}/audit",
        "account": "/account",
    }
    for name, url in visited.items():
        page.goto(url)
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        assert check_a11y(page, name) == [], name
    page.goto(f"/studies/{study_id}")
    page.locator("#dyads tbody a").first.click()
    expect(page.get_by_role("heading", level=1).first).to_be_visible()
    assert check_a11y(page, "dyad") == []
