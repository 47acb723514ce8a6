"""Researcher pages that fit a tablet (768×1024) and a phone (390×844): nothing scrolls sideways.

Each page is saved as a PNG in ``test-artifacts/screenshots/`` (``SCREENSHOTS_DIR=docs/screenshots``
refreshes the kept ones) so a person can look at them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import make_video
from tests.e2e.conftest import LiveServer, expect_status, log_in
from tests.e2e.test_invitations_journey import PHONE, TABLET_PORTRAIT, fits, ready_recording

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", ["tablet", "phone"])
def test_researcher_pages_fit_tablet_and_phone(
    new_page: Callable[..., Page], live_server: LiveServer, tmp_path: Path, size: str
) -> None:
    viewport = TABLET_PORTRAIT if size == "tablet" else PHONE
    who = live_server.new_researcher("fit")
    study_id = live_server.seed_study(who, f"Fitting study {size}")
    rec_id, dyad_id = ready_recording(live_server, study_id, make_video(tmp_path / "v.mp4", 2.0))
    page = new_page(viewport=viewport, name=size)
    expect_status(page, 404)  # this recording has no analysis files: its plot stays empty
    log_in(page, who)
    fits(page, f"studies-{size}")
    page.goto(f"/studies/{study_id}")
    fits(page, f"study-{size}")
    page.goto(f"/dyads/{dyad_id}")
    fits(page, f"dyad-{size}")
    page.goto(f"/recordings/{rec_id}")
    fits(page, f"recording-{size}")
    page.goto(f"/studies/{study_id}/dashboard")
    fits(page, f"dashboard-{size}")
