"""The dyad timeline in Chromium: a 50-minute session with 60 moments, read at a glance.

The demo recording is built here: a small 50-minute test-pattern video, real movement from the
corpus (five consecutive rMEA intake sessions, patient = left, therapist = right, 25 Hz), a
speech-like waveform with pauses, scene cuts and 5-minute clips. Screenshots of the whole session
and of a zoomed-in stretch are saved (``SCREENSHOTS_DIR=docs/screenshots`` refreshes the
committed ones) after checking what a researcher relies on: hover, click-to-seek, J/K stepping,
zoom, filters and the live tolerance.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ipr import recall, studies
from ipr.models import Clip, Moment, Recording, ResearcherAnnotation, User
from ipr.storage import Storage
from ipr.synchrony import read_mea_txt
from tests.conftest import CORPUS, ROOT
from tests.e2e.conftest import LiveServer, check_a11y, log_in

pytestmark = pytest.mark.e2e

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")
DURATION = 50 * 60 * 1000
MEA = CORPUS / "motion_energy" / "rMEA_extdata" / "normal"

THERAPIST_SAYS = [
    "I noticed she went quiet and I was not sure whether to stay with it.",
    "Here I decided to name the tension between us.",
    "I felt relief when she picked up the thread again.",
    "I was tempted to reassure her and held back.",
    "This is where I think the alliance repaired a bit.",
]
CLIENT_SAYS = [
    "I felt understood for the first time in a while.",
    "I was annoyed she changed the subject.",
    "Here I almost cried but did not want to show it.",
    "That question made me think about my father.",
    "I felt she was really listening to me.",
]


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50 minutes of a small test pattern: the player needs real media of the right length."""
    path = tmp_path_factory.mktemp("timeline") / "playable.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=240x136:rate=1:duration={DURATION // 1000}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "20",
         "-movflags", "+faststart", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def movement() -> tuple[list[float], list[float]]:
    """Five real 10-minute intake sessions back to back (patient left, therapist right)."""
    files = sorted(MEA.glob("*.txt"))[:5]
    if len(files) < 5:
        pytest.skip("../shared/corpus not present")
    left, right = [], []
    for path in files:
        patient, therapist = read_mea_txt(path)
        left.append(patient)
        right.append(therapist)
    return (
        np.round(np.concatenate(left), 3).tolist(),
        np.round(np.concatenate(right), 3).tolist(),
    )


def analysis_files(derived: Path, rng: random.Random) -> None:
    silences, t = [], 4000
    while t < DURATION - 10_000:
        length = rng.randrange(600, 4000)
        silences.append([t, t + length])
        t += length + rng.randrange(4000, 30_000)
    left, right = movement()
    cuts = [612_000, 1_404_000, 2_210_000]
    (derived / "analysis.json").write_text(
        json.dumps(
            {
                "duration_ms": DURATION,
                "scene_cuts_ms": cuts,
                "silences_ms": silences,
                "motion_energy": {"rate_hz": 25.0, "left": left, "right": right},
            }
        )
    )
    levels = []
    for ms in (100, 500, 2000):
        n = DURATION // ms
        times = np.arange(n) * ms
        envelope = 0.35 + 0.25 * np.sin(times / 7000.0) ** 2
        peaks = envelope * np.array([rng.uniform(0.4, 1.0) for _ in range(n)])
        for a, b in silences:
            peaks[(times >= a) & (times < b)] *= 0.04
        levels.append({"ms_per_peak": ms, "peaks": np.round(peaks, 3).tolist()})
    (derived / "waveform.json").write_text(json.dumps({"sample_rate": 8000, "levels": levels}))


def seed(server: LiveServer, who: str, video: Path) -> dict[str, int]:
    """A study with dyad 01 and sessions 3 and 5, each with moments from both participants."""
    rng = random.Random(3)
    with server.database.session() as s:
        user = s.scalar(select(User).where(User.email == who))
        study = studies.create_study(s, user, "Alliance ruptures (timeline demo)")
        codes = [
            studies.add_code(s, study, user, {"name": name, "colour": colour})
            for name, colour in (
                ("Insight", "#1f77b4"),
                ("Rupture", "#d62728"),
                ("Repair", "#2ca02c"),
                ("Empathy", "#9467bd"),
            )
        ]
        dyad = studies.create_dyad(s, study, user, "01")
        studies.create_dyad(s, study, user, "02")
        ids = {"study": study.id, "dyad": dyad.id}
        for label, n_shared in (("Session 3", 18), ("Session 5", 11)):
            rec = Recording(
                study_id=study.id, dyad_id=dyad.id, session_label=label,
                storage_key=Storage.new_key(), status="ready", duration_ms=DURATION,
                width=320, height=180, fps_num=2, fps_den=1, has_audio=False,
            )  # fmt: skip
            for k in range(10):
                rec.clips.append(
                    Clip(study_id=study.id, index=k + 1, start_ms=k * 300_000,
                         end_ms=(k + 1) * 300_000)
                )  # fmt: skip
            s.add(rec)
            s.commit()
            derived = Storage(server.env["IPR_RECORDINGS_DIR"]).derived_dir(rec.storage_key)
            derived.mkdir(parents=True)
            try:  # a hard link: the media route refuses links that lead out of its folder
                os.link(video, derived / "playable.mp4")
            except OSError:
                shutil.copy(video, derived / "playable.mp4")
            analysis_files(derived, rng)
            sessions = {}
            for role in ("therapist", "client"):
                rs, _ = recall.create_session(
                    s, rec, dyad.participant(role), "researcher", user, days=14
                )
                rs.status = "submitted"
                sessions[role] = rs
            shared = sorted(rng.sample(range(60_000, DURATION - 60_000, 1000), n_shared))
            times = {
                "therapist": shared + rng.sample(range(30_000, DURATION - 30_000, 1000), 10),
                "client": [t + rng.randrange(-4000, 4500) for t in shared]
                + rng.sample(range(30_000, DURATION - 30_000, 1000), 14),
            }
            first = None
            for role, says in (("therapist", THERAPIST_SAYS), ("client", CLIENT_SAYS)):
                for k, t in enumerate(sorted(times[role])):
                    span = rng.random() < 0.2
                    m = Moment(
                        study_id=study.id,
                        recall_session_id=sessions[role].id,
                        t_ms=t,
                        end_ms=min(t + 45_000, DURATION) if span else None,
                        peaks_ms=[t + 20_000] if span else [],
                        text=says[k % len(says)],
                        codes=[codes[rng.randrange(4)].id] if rng.random() < 0.7 else [],
                        ratings={"hat": rng.choice([2, 3, 5, 6, 7, 7, 8, 8, 9])},
                    )
                    s.add(m)
                    s.flush()
                    first = first or m.id
                    if rng.random() < 0.25:
                        s.add(
                            ResearcherAnnotation(
                                study_id=study.id, moment_id=m.id, user_id=user.id,
                                codes=[codes[rng.randrange(4)].id], note="",
                            )
                        )  # fmt: skip
            s.commit()
            ids.setdefault("rec", rec.id)
    # what a worker does after moments change: compute and store the figures
    done = server.flask("ipr", "figures", "--study", str(ids["study"]))
    assert done.returncode == 0, done.stderr
    return ids


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
    check_a11y(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"timeline-{name}.png"), full_page=full_page)


def moment_point(page: Page, moment_id: int) -> dict[str, float]:
    """Where a moment's marker is drawn, in page coordinates (from the board's hit list)."""
    return page.evaluate(
        """id => {
          const b = window.iprTimeline, r = b.canvas.getBoundingClientRect();
          const it = b.items.find(i => i.m && i.m.id === id);
          return it && {x: r.left + it.cx, y: r.top + (it.y0 + it.y1) / 2};
        }""",
        moment_id,
    )


def test_timeline_reads_at_a_glance(
    new_page: Callable[..., Page], live_server: LiveServer, long_video: Path
) -> None:
    page = new_page(viewport={"width": 1440, "height": 1000})
    who = live_server.new_researcher("timeline")
    ids = seed(live_server, who.email, long_video)
    log_in(page, who)

    page.goto(f"/recordings/{ids['rec']}/timeline")
    canvas = page.locator("#tl-canvas")
    expect(canvas).to_have_attribute("data-ready", "1")
    expect(page.locator("#figures")).to_contain_text("Co-marking")
    expect(page.locator("#comarking-figure")).to_contain_text("chance", timeout=30_000)
    expect(page.locator("#synchrony-figure")).to_contain_text("when shuffled", timeout=60_000)
    expect(page.locator("#tl-range")).to_have_text("Showing 0:00–50:00 of 50:00")
    data = json.loads(page.locator("#timeline-data").text_content())
    assert len(data["lanes"]["therapist"]) == 28 and len(data["lanes"]["client"]) == 32
    shoot(page, "session", full_page=True)

    # hover a paired therapist moment: its text, rating and partner
    pair = data["pairs"][5]
    therapist = next(
        m for m in data["lanes"]["therapist"] if m["id"] == pair["therapist_moment_id"]
    )
    page.keyboard.press("0")
    canvas.scroll_into_view_if_needed()
    spot = moment_point(page, therapist["id"])
    page.mouse.move(spot["x"], spot["y"])
    tip = page.locator("#tl-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(therapist["text"][:30])
    expect(tip).to_contain_text("Paired with the client's moment")

    # click: the video seeks there and the detail panel shows both sides of the pair
    page.mouse.click(spot["x"], spot["y"])
    expect(page.locator("#tl-detail")).to_contain_text(therapist["text"][:30])
    playhead = "Math.abs(document.getElementById('tl-player').currentTime * 1000 - {}) < 600"
    page.wait_for_function(playhead.format(therapist["t_ms"]))

    # J steps to the next moment in time, whichever lane it is in
    ordered = sorted(
        [(m["t_ms"], m["id"]) for lane in ("therapist", "client") for m in data["lanes"][lane]]
    )
    following = ordered[ordered.index((therapist["t_ms"], therapist["id"])) + 1]
    canvas.focus()
    page.keyboard.press("j")
    page.wait_for_function(playhead.format(following[0]))
    assert page.evaluate("window.iprTimeline.selected") == following[1]

    # zoom in to about two minutes around the selection
    for _ in range(5):
        page.get_by_role("button", name="Zoom in").click()
    span = page.evaluate("window.iprTimeline.view.end - window.iprTimeline.view.start")
    assert span == DURATION / 32
    page.mouse.move(10, 10)
    shoot(page, "zoomed", full_page=True)

    # the tolerance control re-computes the matching live and refreshes the figures
    before = len(page.evaluate("window.iprTimeline.data.pairs"))
    page.locator("#tl-tolerance").fill("1000")
    expect(page.locator("#figures h2")).to_contain_text("±1.0 s")
    after = page.evaluate("window.iprTimeline.data.pairs.length")
    assert after < before
    page.locator("#tl-tolerance").fill("5000")
    expect(page.locator("#figures h2")).to_contain_text("±5.0 s")
    assert page.evaluate("window.iprTimeline.data.pairs.length") == before

    # filters: hiding the client lane leaves only therapist moments to step through
    page.get_by_label("client", exact=True).uncheck()
    assert page.evaluate("window.iprTimeline.ordered().length") == 28
    page.get_by_label("client", exact=True).check()

    page.goto(f"/dyads/{ids['dyad']}/timeline")
    expect(page.locator(".tl-session")).to_have_count(2)
    expect(page.locator(".tl-session").first).to_contain_text("Session 3")
    shoot(page, "dyad", full_page=True)

    page.goto(f"/studies/{ids['study']}/dashboard")
    expect(page.locator("tr[data-recording]")).to_have_count(2)
    shoot(page, "dashboard")
