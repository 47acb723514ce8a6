"""A researcher sets up a study in a real browser; colleagues see exactly what their role allows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, check_a11y, expect_status, log_in

pytestmark = pytest.mark.e2e


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


def same_document(page: Page) -> bool:
    """True while no full page load happened since ``mark_document`` (htmx swapped in place)."""
    return page.evaluate("window.__marker === 1")


def mark_document(page: Page) -> None:
    page.evaluate("window.__marker = 1")


def test_researcher_sets_up_a_study_and_shares_it(
    new_page: Callable[..., Page], live_server: LiveServer
) -> None:
    owner = live_server.new_researcher("owner")
    viewer = live_server.new_researcher("viewer")
    outsider = live_server.new_researcher("outsider")
    study_name = unique("Brief structured recall")

    page = new_page(name="owner")
    log_in(page, owner)
    page.get_by_label("New study").fill(study_name)
    page.get_by_role("button", name="Create study").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(study_name)
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    study_url = page.url
    expect(page.locator(".badge")).to_have_text("owner")
    mark_document(page)

    # a dyad: the therapist and client codes appear in place, without a page load
    page.get_by_label("New dyad code").fill("05")
    page.get_by_role("button", name="Add dyad").click()
    expect(page.get_by_label("Therapist code for dyad 05")).to_have_value("T05")
    expect(page.get_by_label("Client code for dyad 05")).to_have_value("C05")
    expect(page.get_by_label("New dyad code")).to_have_value("")
    assert same_document(page)

    # the codebook: add a code with colour and shortcut, then rename it
    codebook = page.locator("#codebook")
    codebook.get_by_label("New code").fill("Feeling understood")
    codebook.get_by_label("Colour", exact=True).fill("#d62728")
    codebook.get_by_label("Key", exact=True).fill("u")
    codebook.get_by_role("button", name="Add code").click()
    row = codebook.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_label("Colour of Feeling understood")).to_have_value("#d62728")
    expect(row.get_by_label("Shortcut key for Feeling understood")).to_have_value("u")
    row.get_by_label("Name").fill("Feeling deeply understood")
    row.get_by_role("button", name="Save").click()
    expect(row.get_by_label("Colour of Feeling deeply understood")).to_have_value("#d62728")
    expect(row.get_by_label("Name")).to_have_value("Feeling deeply understood")
    assert same_document(page)

    # the default HAT scale: reword the question and relabel the midpoint
    scales = page.locator("#scales")
    scales.get_by_label("Question").fill("How helpful was this moment for you?")
    scales.get_by_label("5", exact=True).fill("Neither helpful nor hindering (neutral)")
    scales.get_by_role("button", name="Save scale").click()
    expect(scales.locator("summary").first).to_contain_text(
        "How helpful was this moment for you? (hat, 1–9)"
    )

    # participant instructions, in Norwegian
    instructions = page.locator("#instructions")
    instructions.get_by_label("Instructions").fill("Se opptaket i ro og mak.\nStopp når du vil.")
    instructions.get_by_label("Language of the participant pages").select_option("nb")
    instructions.get_by_role("button", name="Save instructions").click()
    expect(instructions.get_by_role("status")).to_have_text("Saved")

    # a colleague as viewer
    members = page.locator("#members")
    members.get_by_label("Add a researcher by email").fill(viewer.email)
    members.get_by_role("combobox", name="as").select_option("viewer")
    members.get_by_role("button", name="Add member").click()
    expect(members.get_by_label(f"Role of {viewer.email}")).to_have_value("viewer")
    assert same_document(page)
    check_a11y(page, "study after every section was edited in place")

    # everything survived: a fresh load shows what was saved
    page.reload()
    expect(page.get_by_label("Therapist code for dyad 05")).to_have_value("T05")
    expect(page.get_by_label("Colour of Feeling deeply understood")).to_have_value("#d62728")
    expect(page.locator("#scales").get_by_label("Question")).to_have_value(
        "How helpful was this moment for you?"
    )
    expect(page.locator("#scales").get_by_label("5", exact=True)).to_have_value(
        "Neither helpful nor hindering (neutral)"
    )
    expect(page.get_by_label("Instructions", exact=True)).to_have_value(
        "Se opptaket i ro og mak.\nStopp når du vil."
    )
    expect(page.get_by_label("Language of the participant pages")).to_have_value("nb")

    # a researcher who is not a member gets the plain 404 page, which names nothing
    stranger = new_page(name="outsider")
    log_in(stranger, outsider)
    expect_status(stranger, 404)
    response = stranger.goto(study_url)
    assert response is not None and response.status == 404
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(stranger.locator("body")).not_to_contain_text(study_name)
    expect(stranger.locator("body")).not_to_contain_text("T05")

    # the viewer finds the study in their list and sees it read-only
    colleague = new_page(name="viewer")
    log_in(colleague, viewer)
    colleague.get_by_role("link", name=study_name).click()
    expect(colleague.get_by_role("heading", level=1)).to_have_text(study_name)
    expect(colleague.get_by_text("You can view this study but not change it.")).to_be_visible()
    expect(colleague.locator(".badge")).to_have_text("viewer")
    dyads = colleague.locator("#dyads tbody tr")
    expect(dyads).to_have_text(re.compile(r"05\s+T05\s+C05\s+0"))
    expect(colleague.locator("#codebook tbody tr")).to_contain_text("Feeling deeply understood")
    expect(colleague.locator("#codebook kbd")).to_have_text("u")
    expect(colleague.locator("#instructions .prose")).to_have_text(
        "Se opptaket i ro og mak.\nStopp når du vil."
    )
    for button in ("Add dyad", "Add code", "Save scale", "Save instructions", "Add member"):
        expect(colleague.get_by_role("button", name=button)).to_have_count(0)
    expect(colleague.get_by_label("Study name")).to_be_disabled()
    expect(colleague.get_by_role("link", name="Audit trail")).to_have_count(0)
    check_a11y(colleague, "study, read-only")


def tab_to(page: Page, element_id: str, limit: int = 40) -> int:
    """Press Tab until the element has the focus; the number of presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return presses
    raise AssertionError(f"#{element_id} was not reached in {limit} presses of Tab")


def test_login_and_add_dyad_by_keyboard_alone(page: Page, live_server: LiveServer) -> None:
    who = live_server.new_researcher("keys")
    page.goto("/login")
    expect(page.get_by_label("Email")).to_be_focused()  # autofocus: type straight away
    page.keyboard.type(who.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(who.password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/studies")

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    tab_to(page, "new-study-name")
    study_name = unique("Keyboard study")
    page.keyboard.type(study_name)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(study_name)

    tab_to(page, "new-dyad-code")
    page.keyboard.type("07")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Therapist code for dyad 07")).to_have_value("T07")
    expect(page.get_by_label("Client code for dyad 07")).to_have_value("C07")
    # the focus stays in the form, ready for the next dyad
    expect(page.get_by_label("New dyad code")).to_be_focused()
    page.keyboard.type("08")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Therapist code for dyad 08")).to_have_value("T08")
