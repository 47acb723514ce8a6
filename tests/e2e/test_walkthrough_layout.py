"""Layout details a walkthrough in Chromium found, at 1280, 768 and 390 px wide: the export page's
radio buttons beside their labels, the dyad page's Session column on one line, a gap between the
recording page's signal plot and its Movement regions card. Each page is saved as a PNG in
``test-artifacts/screenshots/`` for a person to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from ipr.models import Recording
from ipr.storage import Storage
from tests.conftest import make_video
from tests.e2e.conftest import LiveServer, expect_status, log_in
from tests.e2e.test_invitations_journey import fits, ready_recording

pytestmark = pytest.mark.e2e

# how many lines each element's text takes on screen
LINES = """els => els.map(e => { const r = document.createRange(); r.selectNodeContents(e);
  return new Set([...r.getClientRects()].filter(x => x.width > 0)
    .map(x => Math.round(x.top))).size; })"""
# how far (px) each choice's radio or checkbox sits from the middle of its label's first line
OFF_CENTRE = """labels => labels.map(label => {
  const input = label.querySelector('input'), r = document.createRange();
  r.setStartAfter(input); r.setEndAfter(label.lastChild);
  const line = [...r.getClientRects()].find(x => x.width > 0), box = input.getBoundingClientRect();
  return Math.round(Math.abs(box.top + box.height / 2 - (line.top + line.height / 2)));
})"""
LONG_NAME = "session-03-therapy-room-camera-a-copied-from-the-usb-stick-again.mp4"


@pytest.mark.parametrize("width", [1280, 768, 390])
def test_export_choices_sessions_column_and_recording_cards_at_three_widths(
    new_page: Callable[..., Page], live_server: LiveServer, tmp_path: Path, width: int
) -> None:
    who = live_server.new_researcher("walk")
    study_id = live_server.seed_study(who, f"Walkthrough study {width}")
    rec_id, dyad_id = ready_recording(live_server, study_id, make_video(tmp_path / "v.mp4", 2.0))
    with live_server.database.session() as s:  # and a refused copy of it, as the worker leaves it
        original = s.get(Recording, rec_id)
        original.sha256, original.original_name = "ab" * 32, "session-03.mp4"
        copy = Recording(
            study_id=study_id, dyad_id=dyad_id, session_label="Session 3", status="failed",
            storage_key=Storage.new_key(), original_name=LONG_NAME, sha256="ab" * 32,
            error_code="duplicate", error=f"This file was already uploaded as dyad 01, "
            f"Session 3 (recording {rec_id}).",
        )  # fmt: skip
        s.add(copy)
        s.commit()
        copy_id = copy.id
    page = new_page(viewport={"width": width, "height": 900}, name=str(width))
    expect_status(page, 404)  # this recording has no analysis files: its plot stays empty
    log_in(page, who)

    page.goto(f"/studies/{study_id}")
    fits(page, f"walk-{width}-study")
    assert page.locator("#new-dyad-code").get_attribute("placeholder") == "e.g. 03"

    page.goto(f"/dyads/{dyad_id}")
    fits(page, f"walk-{width}-dyad")
    assert page.locator("#sessions td.session").evaluate_all(LINES) == [1, 1]
    duplicate = page.locator("#sessions tr", has_text=LONG_NAME)
    assert duplicate.get_by_role("link", name="dyad 01, Session 3").get_attribute("href") == (
        f"/recordings/{rec_id}"
    )
    assert duplicate.get_by_role("button", name="Remove the refused upload Session 3").is_visible()
    page.goto(f"/recordings/{copy_id}")
    fits(page, f"walk-{width}-duplicate")
    assert page.get_by_role("button", name="Remove this upload").is_visible()
    for other in ("Try again", "Delete recording"):  # one way to remove the row, not two
        assert page.get_by_role("button", name=other).count() == 0

    page.goto(f"/recordings/{rec_id}/export")
    fits(page, f"walk-{width}-export")
    choices = page.locator(".export-form label.choice")
    assert choices.locator("input[type=radio]").count() >= 2
    offsets = choices.evaluate_all(OFF_CENTRE)  # the last two are checkboxes, which were right
    assert offsets == [offsets[-1]] * choices.count() and offsets[-1] <= 2  # radios were 11 px off

    page.goto(f"/recordings/{rec_id}")
    fits(page, f"walk-{width}-recording")
    gaps = page.evaluate("""() => {
      const box = (q) => document.querySelector(q).getBoundingClientRect();
      return [box('#regions').top - box('.recording-layout').bottom,
              box('#regions').top - box('#signals').bottom >= 20];
    }""")
    assert gaps == [20, True]  # 1.25rem below the player, plot and clips, as between cards
