"""A researcher searches a study's moments and interview transcripts in Chromium (issue 16):
typing finds the moment by what the client said in the recall interview, and the result opens
the timeline at that moment. Screenshots at 1280×800 and 390×844 go to test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ipr import recall, studies
from ipr.models import InterviewUtterance, Moment, Recording, User
from ipr.storage import Storage
from tests.conftest import ROOT
from tests.e2e.conftest import PHONE, LiveServer, check_a11y, log_in

pytestmark = pytest.mark.e2e

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")
DURATION = 120_000


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "playable.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=240x136:rate=1:duration={DURATION // 1000}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-movflags", "+faststart", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def seed(server: LiveServer, who: str, video: Path) -> dict[str, int]:
    with server.database.session() as s:
        user = s.scalar(select(User).where(User.email == who))
        study = studies.create_study(s, user, "Search demo")
        dyad = studies.create_dyad(s, study, user, "01")
        rec = Recording(
            study_id=study.id, dyad_id=dyad.id, session_label="Session 2",
            storage_key=Storage.new_key(), status="ready", duration_ms=DURATION,
            width=240, height=136, fps_num=1, fps_den=1, has_audio=False,
        )  # fmt: skip
        s.add(rec)
        s.commit()
        derived = Storage(server.env["IPR_RECORDINGS_DIR"]).derived_dir(rec.storage_key)
        derived.mkdir(parents=True)
        try:  # a hard link: the media route refuses links that lead out of its folder
            os.link(video, derived / "playable.mp4")
        except OSError:
            shutil.copy(video, derived / "playable.mp4")
        (derived / "analysis.json").write_text(json.dumps({
            "duration_ms": DURATION, "scene_cuts_ms": [], "silences_ms": [],
            "motion_energy": {"rate_hz": 1.0, "left": [0.1] * 120, "right": [0.2] * 120},
        }))  # fmt: skip
        (derived / "waveform.json").write_text(json.dumps({
            "sample_rate": 8000,
            "levels": [{"ms_per_peak": 1000, "peaks": [0.3] * 120}],
        }))  # fmt: skip
        ids = {"study": study.id, "rec": rec.id}
        for role, says in (
            ("client", [(15_000, "I went quiet"), (64_000, "Something shifted"),
                        (90_000, "I felt stuck with the homework")]),
            ("therapist", [(16_000, "She seemed stuck"), (70_000, "I pushed a bit")]),
        ):  # fmt: skip
            rs, _ = recall.create_session(
                s, rec, dyad.participant(role), "researcher", user, days=14
            )
            rs.status = "submitted"
            for t, text in says:
                m = Moment(study_id=study.id, recall_session_id=rs.id, t_ms=t, text=text,
                           codes=[], ratings={})  # fmt: skip
                s.add(m)
                s.flush()
                ids[text] = m.id
            if role == "client":
                s.add(InterviewUtterance(
                    study_id=study.id, recall_session_id=rs.id, moment_id=ids["Something shifted"],
                    start_ms=181_500, end_ms=186_000,
                    text="It was like a knot in my stomach, I was stuck and then it let go.",
                ))  # fmt: skip
        s.commit()
    done = server.flask("ipr", "figures", "--study", str(ids["study"]))
    assert done.returncode == 0, done.stderr
    return ids


def shoot(page: Page, name: str) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
    check_a11y(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"search-{name}.png"), full_page=True)


def test_search_finds_what_was_said_and_opens_the_timeline_there(
    new_page: Callable[..., Page], live_server: LiveServer, short_video: Path
) -> None:
    page = new_page(name="desktop")
    who = live_server.new_researcher("search")
    ids = seed(live_server, who.email, short_video)
    log_in(page, who)
    page.goto(f"/studies/{ids['study']}")
    page.get_by_role("navigation", name="Study sections").get_by_role("link", name="Search").click()
    expect(page.get_by_role("heading", name="Search moments and interviews")).to_be_visible()
    shoot(page, "empty")

    page.get_by_label("Words to find").fill("stuck")  # typing alone searches (htmx)
    hits = page.locator(".search-hit")
    expect(hits).to_have_count(3)
    expect(hits.nth(0)).to_contain_text("therapist T01 · 0:16")
    expect(hits.nth(0)).to_contain_text("matched: comment")
    expect(hits.nth(1)).to_contain_text("client C01 · 1:04")
    expect(hits.nth(1)).to_contain_text("matched: transcript")
    expect(hits.nth(2)).to_contain_text("I felt stuck with the homework")
    shoot(page, "results")

    page.get_by_label("Words to find").fill("knot stomach")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("matched: transcript")
    expect(hits.first).to_contain_text("a knot in my stomach")
    assert page.url.endswith("search?q=knot%20stomach")  # in the address: reload, share, back

    hits.first.get_by_role("link").click()
    page.wait_for_url(f"**/recordings/{ids['rec']}/timeline#moment-{ids['Something shifted']}")
    expect(page.locator("#tl-canvas")).to_have_attribute("data-ready", "1")
    expect(page.locator("#tl-detail")).to_contain_text("Something shifted")
    assert page.evaluate("window.iprTimeline.selected") == ids["Something shifted"]

    phone = new_page(viewport=PHONE, name="phone")
    log_in(phone, who)
    phone.goto(f"/studies/{ids['study']}/search?q=stuck")
    expect(phone.locator(".search-hit")).to_have_count(3)
    shoot(phone, "phone")
