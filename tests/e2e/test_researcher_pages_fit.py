"""Researcher pages that fit a tablet (768×1024) and a phone (390×844): nothing scrolls sideways.

Each page is saved as a PNG in ``test-artifacts/screenshots/`` (``SCREENSHOTS_DIR=docs/screenshots``
refreshes the kept ones) so a person can look at them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ipr.models import Recording
from tests.conftest import make_video
from tests.e2e.conftest import LiveServer, expect_status, log_in
from tests.e2e.test_invitations_journey import PHONE, TABLET_PORTRAIT, fits, ready_recording

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", ["768", "390"])
def test_researcher_pages_fit_tablet_and_phone(
    new_page: Callable[..., Page], live_server: LiveServer, tmp_path: Path, size: str
) -> None:
    viewport = TABLET_PORTRAIT if size == "768" else PHONE
    who = live_server.new_researcher("fit")
    study_id = live_server.seed_study(who, f"Fitting study {size}")
    rec_id, dyad_id = ready_recording(live_server, study_id, make_video(tmp_path / "v.mp4", 2.0))
    page = new_page(viewport=viewport, name=size)
    expect_status(page, 404)  # this recording has no analysis files: its plot stays empty
    log_in(page, who)
    fits(page, f"fit-{size}-studies")
    # the top bar's links and Log out are never broken over two lines ("API / tokens", "Log / out")
    lines = page.locator(".topbar a, .topbar button").evaluate_all(
        """els => els.map(e => { const r = document.createRange(); r.selectNodeContents(e);
             const tops = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
             return [e.textContent.trim(), tops.size]; })"""
    )
    labels = ("IPR annotator", "Studies", "API tokens", "Account", "Log out")
    assert lines == [[t, 1] for t in labels]
    page.goto(f"/studies/{study_id}")
    fits(page, f"fit-{size}-study")
    page.goto(f"/dyads/{dyad_id}")
    fits(page, f"fit-{size}-dyad")
    page.goto(f"/recordings/{rec_id}")
    fits(page, f"fit-{size}-recording")
    page.locator("#invite-client").get_by_role("button", name="Start recall for C01").click()
    expect(page.locator("#invite-client .link-box")).to_be_visible()
    fits(page, f"fit-{size}-invitations-panel")
    second, _ = ready_recording(live_server, study_id, make_video(tmp_path / "v5.mp4", 2.0))
    with live_server.database.session() as s:
        s.get(Recording, second).session_label = "Session 5"
        s.commit()
    page.goto(f"/studies/{study_id}/dashboard")
    fits(page, f"fit-{size}-dashboard")
    # stacked as cards, every value keeps its own column's name, also in the row that shares its
    # dyad cell with the row above (rowspan)
    columns = ["Session", "Therapist recall", "Client recall", "Moments T / C", "Pairs",
               "Co-marking", "Chance", "Synchrony", "Timeline"]  # fmt: skip
    for rec in (rec_id, second):
        row = page.locator(f'tr[data-recording="{rec}"] td')
        assert row.evaluate_all("cells => cells.map(c => c.dataset.label)") == columns
    expect(page.locator(f'tr[data-recording="{second}"] td').first).to_have_text("Session 5")
    page.goto(f"/recordings/{rec_id}/export")
    fits(page, f"fit-{size}-export")
    page.goto(f"/recordings/{rec_id}/import")
    fits(page, f"fit-{size}-import")
    page.goto("/account/tokens")
    fits(page, f"fit-{size}-tokens")
