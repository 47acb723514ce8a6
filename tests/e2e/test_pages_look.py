"""The researcher pages at desktop and tablet width: nothing overflows sideways, nothing hides.

Each page is also saved as a PNG (in ``test-artifacts/screenshots/``, or in ``$SCREENSHOTS_DIR``
when set: ``SCREENSHOTS_DIR=docs/screenshots`` refreshes the committed ones) so a person can look
at them; the assertions check what a screenshot review would otherwise catch by eye.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT
from tests.e2e.conftest import DESKTOP, TABLET, LiveServer, check_a11y, expect_status, log_in

pytestmark = pytest.mark.e2e

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")
SIZES = {"desktop": DESKTOP, "tablet": TABLET}


def shoot(page: Page, name: str, size: str) -> None:
    """Save the page, after checking it fits the window's width (no sideways scrolling)."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} at {size} scrolls sideways by {overflow}px"
    check_a11y(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{size}.png"))


@pytest.mark.parametrize("size", sorted(SIZES))
def test_pages_fit_and_read_well(
    new_page: Callable[..., Page], live_server: LiveServer, size: str
) -> None:
    page = new_page(viewport=SIZES[size])
    who = live_server.new_researcher("demo")

    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_focused()
    shoot(page, "login", size)

    expect_status(page, 401)
    page.get_by_label("Email").fill(who.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That email and password do not match an account."
    )
    expect(page.get_by_label("Email")).to_have_value(who.email)
    expect(page.get_by_label("Password")).to_be_focused()  # the field to retype
    shoot(page, "login-error", size)

    log_in(page, who)
    expect(page.get_by_text("You are not a member of any study yet.")).to_be_visible()
    shoot(page, "studies-empty", size)

    study_id = live_server.seed_study(who)
    for name in ("Pilot: therapist self-recall", "Alliance ruptures 2026"):
        page.get_by_label("New study").fill(name)
        page.get_by_role("button", name="Create study").click()
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        page.goto("/studies")
    cards = page.locator(".study-card")
    expect(cards).to_have_count(3)
    expect(cards.first).to_contain_text("Alliance ruptures 2026")  # sorted by name
    shoot(page, "studies", size)

    page.goto(f"/studies/{study_id}")
    expect(page.get_by_role("heading", name="Demo: brief structured recall")).to_be_visible()
    expect(page.locator("#dyads tbody tr")).to_have_count(2)
    expect(page.locator("#codebook tbody tr")).to_have_count(5)
    shoot(page, "study", size)
    for section in ("codebook", "scales", "settings"):
        page.locator(f"#{section}").evaluate("el => el.scrollIntoView()")
        shoot(page, f"study-{section}", size)

    expect_status(page, 422)
    page.get_by_label("New dyad code").fill("01")
    page.get_by_role("button", name="Add dyad").click()
    expect(page.locator("#dyads .error")).to_have_text("There is already a dyad 01 in this study.")
    page.locator("#dyads").scroll_into_view_if_needed()
    shoot(page, "validation-error", size)

    page.goto(f"/studies/{study_id}/audit")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_contain_text("dyad created")  # newest first
    expect(rows.last).to_contain_text("study created")
    shoot(page, "audit", size)

    expect_status(page, 404)
    page.goto(f"/studies/{study_id + 100000}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    shoot(page, "not-found", size)
