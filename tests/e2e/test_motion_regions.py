"""Movement regions in Chromium: a researcher draws two regions on the demo recording, the
motion pass runs again in the worker, and the movement plot changes accordingly.

The screenshot (``SCREENSHOTS_DIR=docs/screenshots`` refreshes the committed one) shows the
drawn regions over the still and the redrawn movement curves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ipr import jobs
from ipr.config import load_config
from ipr.demo import seed_recording
from ipr.jobs import make_huey
from ipr.models import Job, Recording, Study, User
from ipr.storage import Storage
from tests.conftest import ROOT, make_video
from tests.e2e.conftest import LiveServer, expect_status, log_in
from tests.e2e.test_invitations_journey import ready_recording

pytestmark = pytest.mark.e2e

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")


def drag(page: Page, box: dict[str, float], a: tuple[float, float], b: tuple[float, float]):
    page.mouse.move(box["x"] + a[0] * box["width"], box["y"] + a[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + (a[0] + b[0]) / 2 * box["width"], box["y"] + b[1] * box["height"])
    page.mouse.move(box["x"] + b[0] * box["width"], box["y"] + b[1] * box["height"])
    page.mouse.up()


def canvas_pixels(page: Page) -> str:
    return page.evaluate("document.getElementById('signals-canvas').toDataURL()")


def test_drawn_regions_rerun_the_motion_pass_and_change_the_plot(
    live_server: LiveServer, page: Page
) -> None:
    who = live_server.new_researcher("motion")
    study_id = live_server.seed_study(who, "Movement regions (e2e)")
    instance = Path(live_server.env["IPR_INSTANCE_PATH"])
    config = load_config(instance, environ=live_server.env)
    huey = make_huey(config, instance)
    with live_server.database.session() as s:
        user = s.scalar(select(User).where(User.email == who.email))
        study = s.get(Study, study_id)
        rec, _ = seed_recording(s, study, user, config, live_server.database, huey, seconds=12)
        rec_id, key = rec.id, rec.storage_key
        assert rec.status == "ready"
    analysis = Storage(config["RECORDINGS_DIR"]).derived(key, "analysis.json")
    before = json.loads(analysis.read_text())["motion_energy"]
    assert {"left", "right"} <= set(before)

    log_in(page, who)
    page.goto(f"/recordings/{rec_id}")
    stage = page.locator("#region-stage")
    expect(page.locator("#region-still")).to_be_visible()
    page.wait_for_function("document.getElementById('region-still').naturalWidth > 0")
    page.wait_for_timeout(300)  # the curves are drawn once the analysis has loaded
    plot_before = canvas_pixels(page)
    stage.scroll_into_view_if_needed()
    box = stage.bounding_box()  # viewport coordinates: the picture must be on screen
    assert box is not None
    # therapist: the top-left quarter of the moving test pattern; client: the whole right half
    page.get_by_role("radio", name="Therapist").check()
    drag(page, box, (0.02, 0.02), (0.25, 0.5))
    page.get_by_role("radio", name="Client").check()
    drag(page, box, (0.52, 0.05), (0.97, 0.97))
    therapist = page.locator(".region-box.region-therapist")
    expect(therapist).to_be_visible()
    therapist.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # keyboard nudge: 1% of the width each
    page.get_by_role("button", name="Save regions and analyse movement again").click()
    expect(page.locator("#region-message")).to_contain_text("Saved")

    with live_server.database.session() as s:
        saved = s.get(Recording, rec_id).regions
        job = s.scalar(select(Job).where(Job.recording_id == rec_id, Job.kind == "motion"))
        job_id = job.id
    assert [r["name"] for r in saved] == ["therapist", "client"]
    assert abs(saved[0]["x"] - 0.05) <= 0.01 and abs(saved[0]["w"] - 0.23) <= 0.01
    assert abs(saved[1]["x"] - 0.52) <= 0.01 and abs(saved[1]["h"] - 0.92) <= 0.01
    expect(page.locator("#job-status")).to_contain_text("Analysing movement again")

    assert jobs.run_job(live_server.database, config, job_id) == "done"  # the worker's part
    page.wait_for_load_state("load")
    expect(page.locator("#job-status")).not_to_contain_text("Analysing", timeout=15_000)
    page.wait_for_function("document.getElementById('region-still').naturalWidth > 0")
    page.wait_for_timeout(500)
    after = json.loads(analysis.read_text())["motion_energy"]
    assert set(k for k, v in after.items() if isinstance(v, list)) == {"therapist", "client"}
    assert after["therapist"] != before["left"]
    expect(page.locator(".region-box")).to_have_count(2)
    plot_after = canvas_pixels(page)
    assert plot_after != plot_before
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#regions").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "motion-regions.png"), full_page=True)


def test_a_region_is_placed_and_shaped_from_the_keyboard_alone(
    live_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    """Drawing is a drag; *Add rectangle* puts the chosen region on the picture for the keys."""
    who = live_server.new_researcher("motion-keys")
    study_id = live_server.seed_study(who, "Movement regions by keyboard (e2e)")
    rec_id, _ = ready_recording(live_server, study_id, make_video(tmp_path / "v.mp4", 2.0))
    expect_status(page, 404)  # this recording has no analysis files: no still, no plot
    log_in(page, who)
    page.goto(f"/recordings/{rec_id}")
    page.get_by_role("radio", name="Therapist").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Add rectangle")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".region-box.region-therapist")).to_be_focused()
    page.get_by_role("radio", name="Therapist").focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("radio", name="Client")).to_be_checked()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    client = page.locator(".region-box.region-client")
    expect(client).to_be_focused()
    for key in ["Shift+ArrowLeft"] * 5 + ["ArrowUp"] * 2:  # 5% narrower, 2% higher
        page.keyboard.press(key)
    expect(client).to_have_attribute(
        "aria-label", "client region: 55% from the left, 8% from the top, 35% wide, 80% high"
    )
    page.get_by_role("button", name="Save regions and analyse movement again").press("Enter")
    expect(page.locator("#region-message")).to_contain_text("Saved")
    with live_server.database.session() as s:
        saved = s.get(Recording, rec_id).regions
    assert [(r["name"], r["x"], r["y"], r["w"], r["h"]) for r in saved] == [
        ("therapist", 0.05, 0.1, 0.4, 0.8),
        ("client", 0.55, 0.08, 0.35, 0.8),
    ]


def test_suggest_from_faces_puts_a_region_around_each_person(
    live_server: LiveServer, new_page
) -> None:
    """The still is a split-screen session's thumbnail with two real faces (see
    tests/test_motion.py); "Suggest from faces" draws the therapist box around the left face
    and the client box around the right one, at a desktop and at a phone's width."""
    import cv2

    from tests.e2e.conftest import PHONE, check_a11y
    from tests.test_motion import FACES, two_faces_side_by_side

    who = live_server.new_researcher("faces")
    study_id = live_server.seed_study(who, "Face suggestion (e2e)")
    instance = Path(live_server.env["IPR_INSTANCE_PATH"])
    config = load_config(instance, environ=live_server.env)
    huey = make_huey(config, instance)
    with live_server.database.session() as s:
        user = s.scalar(select(User).where(User.email == who.email))
        rec, _ = seed_recording(
            s, s.get(Study, study_id), user, config, live_server.database, huey, seconds=4
        )
        rec_id, key = rec.id, rec.storage_key
    still = Storage(config["RECORDINGS_DIR"]).derived(key, "clips/001.jpg")
    thumb = cv2.resize(two_faces_side_by_side(), (320, 90), interpolation=cv2.INTER_AREA)
    assert cv2.imwrite(str(still), thumb, [cv2.IMWRITE_JPEG_QUALITY, 85])

    for viewport, name in ((None, "desktop"), (PHONE, "phone")):
        page = new_page(viewport=viewport, name=name)
        log_in(page, who)
        page.goto(f"/recordings/{rec_id}")
        page.wait_for_function("document.getElementById('region-still').naturalWidth > 0")
        page.get_by_role("button", name="Suggest from faces").click()
        expect(page.locator("#region-message")).to_contain_text(
            "Suggested around the two largest faces found"
        )
        stage = page.locator("#region-stage")
        stage.scroll_into_view_if_needed()
        outer = stage.bounding_box()
        assert outer is not None
        for role in ("therapist", "client"):
            box = page.locator(f".region-box.region-{role}").bounding_box()
            assert box is not None
            x0, y0, x1, y1 = FACES[role]  # the face, in fractions of the picture
            assert box["x"] <= outer["x"] + x0 * outer["width"] + 1
            assert outer["x"] + x1 * outer["width"] - 1 <= box["x"] + box["width"]
            assert box["y"] <= outer["y"] + y0 * outer["height"] + 1
            assert outer["y"] + y1 * outer["height"] - 1 <= box["y"] + box["height"]
        check_a11y(page, f"regions suggested from faces, {name}")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#regions").screenshot(path=str(SHOTS / f"motion-suggest-{name}.png"))
