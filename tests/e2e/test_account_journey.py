"""A researcher turns on two-factor in Chromium and logs in with a recovery code."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import TABLET, LiveServer, check_a11y, expect_status, log_in

pytestmark = pytest.mark.e2e


def test_two_factor_enrolment_and_login(
    new_page: Callable[..., Page], live_server: LiveServer
) -> None:
    page = new_page(viewport=TABLET)
    who = live_server.new_researcher("tfa")
    log_in(page, who)
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.get_by_role("button", name="Set up two-factor").click()
    secret = page.locator("#totp-secret").inner_text()
    expect(page.locator("#totp-uri")).to_have_attribute("href", re.compile(r"^otpauth://totp/"))
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn two-factor on").click()
    expect(page.get_by_role("status")).to_have_text("Two-factor authentication is on.")
    codes = page.locator(".recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){3}", c) for c in codes)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    check_a11y(page, "two-factor on, recovery codes")
    page.get_by_role("button", name="Log out").click()

    page.goto("/login")
    page.get_by_label("Email").fill(who.email)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/login/code")
    expect(page.get_by_label("Code")).to_be_focused()
    expect_status(page, 401)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That code is not right.")
    check_a11y(page, "wrong second-factor code")
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/studies")
