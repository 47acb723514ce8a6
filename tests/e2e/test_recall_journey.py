"""The participant's recall page, end to end: two blinded participants on one real recording.

Therapist and client open their own links in separate browser contexts (own cookies), mark
moments by button and by keyboard, edit one, delete one, record a voice note from Chromium's fake
microphone, reload and find everything. Neither page, nor its JSON, ever carries the other's text
or count until the researcher reveals; then each sees the other's moments and can respond.
Screenshots of each step land in ``test-artifacts/recall/`` (``RECALL_SHOTS_TO_DOCS=1`` also
refreshes ``docs/screenshots/recall-*.png``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from sqlalchemy import select

from ipr import studies
from ipr.models import Study, User
from tests.conftest import ROOT
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    TABLET,
    LiveServer,
    PageGuard,
    check_a11y,
    expect_status,
    log_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
SHOTS = ROOT / "test-artifacts" / "recall"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
DURATION_MS = 20_000


# --- the browser with a fake microphone, and pages guarded like the harness's ------------------


@pytest.fixture(scope="module")
def media_browser(browser: Browser) -> Iterator[Browser]:
    """A second Chromium from the same Playwright, with a fake microphone that needs no prompt."""
    launched = browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS + FAKE_MEDIA
    )
    yield launched
    launched.close()


@pytest.fixture
def participant_page(
    media_browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Like the harness's ``new_page``, in the fake-microphone browser."""
    opened: list[tuple[str, Page, PageGuard]] = []
    contexts: list[BrowserContext] = []

    def _open(
        viewport: dict[str, int] | None = None, name: str = "", beside: Page | None = None
    ) -> Page:
        """A page in a fresh context, or a second tab ``beside`` an open page (same cookies)."""
        if beside is not None:
            context = beside.context
        else:
            context = media_browser.new_context(
                viewport=viewport or DESKTOP, base_url=live_server.url, permissions=["microphone"]
            )
            context.set_default_timeout(10_000)
            contexts.append(context)
        page = context.new_page()
        guard = PageGuard.watch(page, live_server.url)
        opened.append((name or f"participant{len(opened) + 1}", page, guard))
        return page

    yield _open

    for name, page, _ in opened:  # every page's last state is checked too
        if not page.is_closed() and page.url.startswith(live_server.url):
            try:
                check_a11y(page, f"{name}, last state")
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"could not run axe on {name}: {exc}")
    problems = [f"{name}: {msg}" for name, _, guard in opened for msg in guard.problems()]
    call = getattr(request.node, "report_call", None)
    if (call is not None and call.failed) or problems:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for name, page, _ in opened:
            try:
                page.screenshot(path=str(SHOTS / f"failed-{name}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"could not save a screenshot of {name}: {exc}")
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


def shoot(page: Page, name: str, *, docs: bool = False) -> None:
    """Save a screenshot after checking nothing scrolls sideways; ``docs`` marks the keepers."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
    check_a11y(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"recall-{name}.png"
    page.screenshot(path=str(path))
    if docs and os.environ.get("RECALL_SHOTS_TO_DOCS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SHOTS / path.name)


# --- data, built through the app -----------------------------------------------------------------


def api(server: LiveServer, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + "/api/v1" + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture(scope="module")
def session_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of moving test pattern with a tone, small enough to process in a few seconds."""
    path = tmp_path_factory.mktemp("recall-media") / "session.mp4"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={DURATION_MS // 1000}",
            "-f", "lavfi", "-i", f"sine=frequency=330:duration={DURATION_MS // 1000}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac",
            "-shortest", "-movflags", "+faststart", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


def set_up_recall(server: LiveServer, video: Path) -> dict[str, Any]:
    """A study with a codebook, a dyad, a processed recording and a link for each participant."""
    who = server.new_researcher("recall")
    made = server.flask("ipr", "token", who.email)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    name = f"Recall journey {uuid.uuid4().hex[:6]}"
    study = api(server, token, "POST", "/studies", {"name": name})
    api(
        server,
        token,
        "PATCH",
        f"/studies/{study['id']}",
        {
            "participants_can_code": True,
            "allow_early_reveal": True,
            "segment_fixed_ms": 5000,
            "instructions": "Watch your session and stop wherever something mattered to you.",
        },
    )
    with server.database.session() as s:
        user = s.scalar(select(User).where(User.email == who.email))
        row = s.get(Study, study["id"])
        studies.add_code(s, row, user, {"name": "Insight", "colour": "#1f77b4", "shortcut": "i"})
        s.commit()
    dyad = api(server, token, "POST", f"/studies/{study['id']}/dyads", {"code": "07"})
    imported = server.flask(
        "ipr", "import", str(video), "--study", name, "--dyad", "07", "--session", "Session 3",
        "--wait",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    rec = json.loads(imported.stdout.strip().splitlines()[-1])
    assert rec["status"] == "ready", rec
    links = {}
    for role in ("therapist", "client"):
        made_rs = api(
            server,
            token,
            "POST",
            f"/recordings/{rec['recording_id']}/recall-sessions",
            {"participant_id": dyad[role]["id"], "mode": "self"},
        )
        links[role] = made_rs
    return {
        "researcher": who,
        "token": token,
        "study_id": study["id"],
        "recording_id": rec["recording_id"],
        "links": links,
    }


# --- the page's moves ----------------------------------------------------------------------------


def current_ms(page: Page) -> int:
    return page.evaluate("Math.round(document.getElementById('video').currentTime * 1000)")


def play_until(page: Page, ms: int) -> None:
    """Play (with the Play button) until the video has reached ``ms``, then pause."""
    page.get_by_role("button", name="Play", exact=True).click()
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime * 1000 >= {ms}", timeout=15_000
    )
    page.get_by_role("button", name="Pause", exact=True).click()


def wait_saved(page: Page) -> None:
    expect(page.locator("#save-status")).to_have_text("All changes saved", timeout=15_000)
    expect(page.locator("#mine .unsaved")).to_have_count(0)  # no moment still says otherwise


def own_json(page: Page, rs_id: int) -> dict[str, Any]:
    """What the page's own JSON endpoint answers, fetched with the participant's cookie."""
    got = page.evaluate(
        """async (url) => {
            const resp = await fetch(url, {headers: {Accept: "application/json"}});
            return {status: resp.status, body: await resp.json()};
        }""",
        f"/recall/{rs_id}/moments",
    )
    assert got["status"] == 200
    return got["body"]


def status_of(page: Page, url: str) -> int:
    return page.evaluate("async (url) => (await fetch(url, {method: 'HEAD'})).status", url)


def wait_typed_saved(page: Page, text: str) -> None:
    """Wait until ``text``, typed into the open form, is on the server. The form sends typing
    800 ms after the last key, and until then "All changes saved" is true of the old text."""
    expect(mine(page).filter(has_text=text)).to_have_count(1)  # the form has sent it ...
    wait_saved(page)  # ... and the server has answered


def mark_by_button(page: Page, text: str, rating: int | None = None) -> None:
    page.get_by_role("button", name="Mark moment").click()
    expect(page.get_by_label("What was happening for you here?")).to_be_focused()
    page.get_by_label("What was happening for you here?").fill(text)
    if rating is not None:
        page.locator("fieldset.scale").first.locator(
            f"label.scale-opt:has(input[value='{rating}'])"
        ).click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("button", name="Mark moment")).to_be_focused()
    wait_saved(page)


def mark_by_keyboard(page: Page, text: str) -> None:
    page.keyboard.press("m")
    textarea = page.get_by_label("What was happening for you here?")
    expect(textarea).to_be_focused()
    page.keyboard.type(text)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_role("button", name="Mark moment")).to_be_focused()
    wait_saved(page)


def tab_to(page: Page, name: str, limit: int = 30) -> None:
    """Press Tab until the button called ``name`` has the focus, each stop showing a ring."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen = page.evaluate(
            """() => {
                const el = document.activeElement;
                const style = getComputedStyle(el);
                return {name: el.textContent.trim(), ring: style.outlineStyle !== "none"
                        && parseFloat(style.outlineWidth) >= 2};
            }"""
        )
        assert seen["ring"], f"no visible focus ring on {seen['name']!r}"
        if seen["name"] == name:
            return
    pytest.fail(f"{name!r} is not reachable with {limit} presses of Tab")


def mine(page: Page):
    return page.locator("#mine > li")


# --- the journey ---------------------------------------------------------------------------------


def test_two_blinded_participants_recall_one_session(
    participant_page: Callable[..., Page],
    new_page: Callable[..., Page],
    live_server: LiveServer,
    session_video: Path,
) -> None:
    setup = set_up_recall(live_server, session_video)
    t_link, c_link = setup["links"]["therapist"], setup["links"]["client"]
    t_rs, c_rs = t_link["id"], c_link["id"]

    # --- the therapist, on a laptop: instructions first, then the player
    therapist = participant_page(viewport=DESKTOP, name="therapist")
    therapist.goto(t_link["url"])
    expect(therapist).to_have_url(re.compile(rf"/recall/{t_rs}$"))  # the token left the URL
    expect(therapist.get_by_role("heading", name="Before you start")).to_be_visible()
    expect(therapist.get_by_text("stop wherever something mattered to you")).to_be_visible()
    expect(therapist.locator("#video")).to_be_hidden()
    shoot(therapist, "instructions", docs=True)
    therapist.get_by_role("button", name="Start watching").click()
    expect(therapist.get_by_role("button", name="Play", exact=True)).to_be_focused()
    expect(therapist.locator("#clip-progress")).to_have_text("Clip 1 of 4")
    expect(therapist.locator(".clip-btn")).to_have_count(4)

    # mark by button at about 3 s, with a HAT rating and a code
    play_until(therapist, 3000)
    t1_ms = current_ms(therapist)
    therapist.get_by_role("button", name="Mark moment").click()
    form = therapist.locator("#mark-form")
    expect(form).to_be_visible()
    expect(form.locator("#form-at")).to_have_text(re.compile(r"at 0:0[34]"))
    therapist.get_by_label("What was happening for you here?").fill("T-alpha: I felt we connected")
    form.locator("label.scale-opt:has(input[value='7'])").click()
    expect(form.locator(".scale-ends .chosen")).to_have_text("7 · Moderately helpful")
    therapist.keyboard.press("i")  # the codebook shortcut, focus is on the rating
    expect(form.get_by_label("Insight")).to_be_checked()
    shoot(therapist, "mark-form", docs=True)
    form.get_by_role("button", name="Save", exact=True).click()
    expect(therapist.get_by_role("button", name="Mark moment")).to_be_focused()
    wait_saved(therapist)
    expect(mine(therapist)).to_have_count(1)
    expect(mine(therapist).first).to_contain_text("T-alpha: I felt we connected")

    # saving resumed playback (the study's setting); Space pauses and plays, even with the
    # focus on the Mark button, and never presses that button
    expect(therapist.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    therapist.keyboard.press(" ")
    expect(therapist.get_by_role("button", name="Play", exact=True)).to_be_visible()
    expect(therapist.locator("#mark-form")).to_be_hidden()
    therapist.keyboard.press(" ")
    therapist.wait_for_function("() => document.getElementById('video').currentTime * 1000 >= 6500")

    # mark by keyboard: M marks (and pauses), Ctrl+Enter saves
    mark_by_keyboard(therapist, "T-beta: the silence was heavy")
    expect(therapist.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    therapist.keyboard.press(" ")
    expect(therapist.get_by_role("button", name="Play", exact=True)).to_be_visible()

    # ←/→ move 5 s, ',' and '.' one frame (25 fps: 40 ms)
    before = current_ms(therapist)
    therapist.locator("body").press("ArrowLeft")
    assert abs(current_ms(therapist) - max(0, before - 5000)) <= 50
    at = current_ms(therapist)
    therapist.locator("body").press(".")
    assert abs(current_ms(therapist) - (at + 40)) <= 5

    # a third moment (a span: it went on until a later time), then delete it
    therapist.locator(".clip-btn").nth(3).click()  # clip 4 starts at 15 s
    expect(therapist.locator("#clip-progress")).to_have_text("Clip 4 of 4")
    mark_by_button(therapist, "T-gamma: to be deleted")
    expect(mine(therapist)).to_have_count(3)
    doomed = mine(therapist).filter(has_text="T-gamma")
    doomed.get_by_role("button", name=re.compile("^Delete")).click()
    expect(doomed).to_contain_text("Delete this moment?")
    doomed.get_by_role("button", name="Yes, delete").click()
    wait_saved(therapist)
    expect(mine(therapist)).to_have_count(2)

    # edit the first: new words and an end time typed as m:ss
    first = mine(therapist).filter(has_text="T-alpha")
    first.get_by_role("button", name=re.compile("^Edit")).click()
    textarea = therapist.get_by_label("What was happening for you here?")
    expect(textarea).to_have_value("T-alpha: I felt we connected")
    textarea.fill("T-alpha (edited): I felt we really connected")
    therapist.locator("#span-box summary").click()
    therapist.get_by_label("Ended at (m:ss)").fill("0:05")
    therapist.get_by_label("Ended at (m:ss)").press("Tab")
    wait_saved(therapist)
    # a peak: step ten pictures (10 x 40 ms) past the start, then add it
    for _ in range(10):
        therapist.get_by_role("button", name="One picture forward").click()
    therapist.get_by_role("button", name="Add a peak here").click()
    expect(therapist.locator("#peaks li")).to_have_count(1)
    wait_saved(therapist)

    # a voice note from the fake microphone, on the same moment
    therapist.get_by_role("button", name="Speak instead").click()
    expect(therapist.get_by_role("button", name="Stop recording")).to_be_focused()
    therapist.wait_for_timeout(1200)
    therapist.get_by_role("button", name="Stop recording").click()
    expect(therapist.locator("#voice-audio")).to_be_visible()
    wait_saved(therapist)
    expect(therapist.locator("#voice-state")).to_have_text("Voice note saved.")
    shoot(therapist, "voice-note", docs=True)
    therapist.keyboard.press("Escape")
    expect(therapist.get_by_role("button", name="Mark moment")).to_be_focused()
    expect(mine(therapist).first).to_contain_text("T-alpha (edited)")
    expect(mine(therapist).first).to_contain_text("until 0:05")
    expect(mine(therapist).first).to_contain_text("voice note")

    body = own_json(therapist, t_rs)
    assert [m["text"] for m in body["moments"]] == [
        "T-alpha (edited): I felt we really connected",
        "T-beta: the silence was heavy",
    ]
    alpha = body["moments"][0]
    assert alpha["t_ms"] == t1_ms
    assert alpha["end_ms"] == 5000
    assert alpha["peaks_ms"] == [t1_ms + 400]
    assert alpha["ratings"] == {"hat": 7}
    assert len(alpha["codes"]) == 1
    assert alpha["voice_url"] == f"/recall/{t_rs}/moments/{alpha['id']}/voice"
    assert body["revealed"] is None
    voice = therapist.evaluate(
        """async (url) => {
            const resp = await fetch(url);
            const bytes = (await resp.arrayBuffer()).byteLength;
            return {status: resp.status, type: resp.headers.get("Content-Type"), bytes};
        }""",
        alpha["voice_url"],
    )
    assert voice["status"] == 200
    assert voice["type"].startswith("audio/webm")
    assert voice["bytes"] > 1000
    shoot(therapist, "moments", docs=True)

    # a break: the video pauses under a quiet overlay until the participant is ready
    therapist.get_by_role("button", name="Play", exact=True).click()
    therapist.get_by_role("button", name="Take a break").click()
    pause_overlay = therapist.get_by_role("dialog", name="Taking a break")
    expect(pause_overlay).to_be_visible()
    expect(pause_overlay.get_by_role("button", name="Continue when you're ready")).to_be_focused()
    assert therapist.evaluate("document.getElementById('video').paused") is True
    shoot(therapist, "break", docs=True)
    therapist.keyboard.press("Enter")
    expect(pause_overlay).to_be_hidden()
    expect(therapist.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    therapist.keyboard.press(" ")
    position = current_ms(therapist)

    # reload: everything is there, and the page resumes at the last position
    therapist.reload()
    expect(therapist.get_by_role("heading", name="Before you start")).to_be_hidden()
    expect(mine(therapist)).to_have_count(2)
    expect(mine(therapist).first).to_contain_text("T-alpha (edited)")
    expect(mine(therapist).first).to_contain_text("voice note")
    expect(therapist.get_by_role("button", name="Read the instructions again")).to_be_visible()
    therapist.wait_for_function(
        f"() => Math.abs(document.getElementById('video').currentTime * 1000 - {position}) < 100"
    )

    # --- two tabs of the same participant: the later save does not silently overwrite
    tab2 = participant_page(name="therapist-tab2", beside=therapist)
    expect_status(tab2, 409)
    tab2.goto(f"/recall/{t_rs}")
    for tab in (therapist, tab2):
        mine(tab).filter(has_text="T-beta").get_by_role("button", name=re.compile("^Edit")).click()
    therapist.get_by_label("What was happening for you here?").fill("T-beta: heavy (tab one)")
    # tab one's edit must be on the server before tab two types: else tab two may save first
    # and the conflict dialog opens, rightly, in tab one (what made this step time out)
    wait_typed_saved(therapist, "T-beta: heavy (tab one)")
    texts = [m["text"] for m in own_json(therapist, t_rs)["moments"]]
    assert texts == ["T-alpha (edited): I felt we really connected", "T-beta: heavy (tab one)"]
    tab2.bring_to_front()  # a person types in the tab in front (a hidden tab's timers are held)
    tab2.get_by_label("What was happening for you here?").fill("T-beta: heavy (tab two)")
    conflict = tab2.get_by_role("dialog", name="This moment was changed somewhere else")
    expect(conflict).to_be_visible(timeout=15_000)
    expect(conflict.locator("#conflict-theirs")).to_have_text("T-beta: heavy (tab one)")
    expect(conflict.locator("#conflict-mine")).to_have_text("T-beta: heavy (tab two)")
    shoot(tab2, "conflict", docs=True)
    conflict.get_by_role("button", name="Keep my version").click()
    wait_saved(tab2)
    texts = [m["text"] for m in own_json(therapist, t_rs)["moments"]]
    assert texts == ["T-alpha (edited): I felt we really connected", "T-beta: heavy (tab two)"]
    tab2.close()
    therapist.keyboard.press("Escape")

    # --- the client, on a tablet in portrait: the moments sit beside the player
    client = participant_page(viewport=TABLET, name="client")
    client.goto(c_link["url"])
    # by keyboard alone, with a visible focus ring at every stop
    tab_to(client, "Start watching")
    client.keyboard.press("Enter")
    expect(client.get_by_role("button", name="Play", exact=True)).to_be_focused()
    client.keyboard.press(" ")  # on the focused Play button: plays once, not twice
    client.wait_for_function("() => document.getElementById('video').currentTime * 1000 >= 2000")
    expect(client.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    client.keyboard.press("m")
    expect(client.get_by_label("What was happening for you here?")).to_be_focused()
    client.keyboard.type("C-one: I felt judged here")
    client.keyboard.press("Tab")
    expect(client.get_by_role("button", name="Speak instead")).to_be_focused()
    client.keyboard.press("Tab")
    expect(client.get_by_role("radio", name="1, Extremely hindering")).to_be_focused()
    client.keyboard.press("ArrowRight")
    client.keyboard.press("ArrowRight")
    expect(client.get_by_role("radio", name="3, Moderately hindering")).to_be_checked()
    client.keyboard.press("Control+Enter")
    expect(client.get_by_role("button", name="Mark moment")).to_be_focused()
    wait_saved(client)
    assert client.evaluate("document.getElementById('video').paused") is False  # resumed
    client.wait_for_function("() => document.getElementById('video').currentTime * 1000 >= 4000")
    mark_by_button(client, "C-two: relief when she laughed")
    client.keyboard.press(" ")
    expect(mine(client)).to_have_count(2)
    box_video = client.locator("#video").bounding_box()
    box_list = client.locator("#lists").bounding_box()
    assert box_video and box_list and box_list["x"] > box_video["x"] + box_video["width"]
    shoot(client, "tablet", docs=True)

    # --- nothing is lost: the server stores a moment but its answer never arrives; the page
    # retries with the same Idempotency-Key and the server does not make a second moment
    keys: list[str | None] = []

    def lose_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fetch()  # it reaches the server ...
            route.fulfill(status=503, body="")  # ... but the page hears only a failure
        else:
            route.continue_()

    expect_status(client, 503)
    moments_url = f"**/recall/{c_rs}/moments"
    client.route(moments_url, lose_first_answer)
    client.get_by_role("button", name="Mark moment").click()
    client.get_by_label("What was happening for you here?").fill("C-three: said once")
    client.get_by_role("button", name="Save", exact=True).click()
    expect(client.locator("#save-status")).to_have_text("Not saved yet — retrying")
    wait_saved(client)
    client.unroute(moments_url)
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    assert [m["text"] for m in own_json(client, c_rs)["moments"]].count("C-three: said once") == 1

    # the server cannot be reached at all: the change waits in the page (and localStorage),
    # survives a reload, and is sent when the server answers again
    blocked = {"on": True}

    def unreachable(route: Route) -> None:
        if blocked["on"] and route.request.method != "GET":
            route.fulfill(status=503, body="")
        else:
            route.continue_()

    client.route(moments_url, unreachable)
    client.get_by_role("button", name="Mark moment").click()
    client.get_by_label("What was happening for you here?").fill("C-four: kept through a reload")
    client.get_by_role("button", name="Save", exact=True).click()
    expect(client.locator("#save-status")).to_have_text("Not saved yet — retrying")
    expect(mine(client).filter(has_text="C-four")).to_contain_text("not saved yet")
    assert "C-four" in client.evaluate(f"localStorage.getItem('ipr-recall-outbox-{c_rs}')")
    client.once("dialog", lambda dialog: dialog.accept())  # "leave with unsaved changes?"
    client.reload()
    blocked["on"] = False
    expect(mine(client).filter(has_text="C-four")).to_have_count(1)
    wait_saved(client)
    client.unroute(moments_url)
    expect(mine(client)).to_have_count(4)
    assert client.evaluate(f"localStorage.getItem('ipr-recall-outbox-{c_rs}')") is None
    # and a deleted moment stays gone
    doomed = mine(client).filter(has_text="C-three")
    doomed.get_by_role("button", name=re.compile("^Delete")).click()
    doomed.get_by_role("button", name="Yes, delete").click()
    wait_saved(client)
    expect(mine(client)).to_have_count(3)

    # --- blinding: neither page nor JSON carries the other's words or count
    therapist.reload()
    expect(mine(therapist)).to_have_count(2)
    t_html = therapist.content()
    t_json = json.dumps(own_json(therapist, t_rs))
    for secret in ("C-one", "C-two", "C-four", "judged", "relief"):
        assert secret not in t_html and secret not in t_json
    assert therapist.locator("#other").count() == 0
    client.reload()
    c_html = client.content()
    c_json = json.dumps(own_json(client, c_rs))
    for secret in ("T-alpha", "T-beta", "heavy", "connected"):
        assert secret not in c_html and secret not in c_json
    assert len(own_json(client, c_rs)["moments"]) == 3
    # the other participant's session is simply not there for this cookie
    expect_status(therapist, 404)
    expect_status(client, 404)
    assert status_of(therapist, f"/recall/{c_rs}/moments") == 404
    assert status_of(client, f"/recall/{t_rs}/media/playable.mp4") == 404

    # --- the researcher sees both lanes
    researcher = new_page(name="researcher")
    log_in(researcher, setup["researcher"])
    # (the recording page's own view does not fill in the lanes yet; its Recall section's URL does)
    researcher.goto(f"/recordings/{setup['recording_id']}/recall")
    recall_section = researcher.locator("#recall")
    expect(recall_section.locator(".lane-therapist")).to_contain_text("T-alpha (edited)")
    expect(recall_section.locator(".lane-client")).to_contain_text("C-one: I felt judged here")
    recall_section.scroll_into_view_if_needed()
    check_a11y(researcher, "both lanes, with code chips")
    researcher.screenshot(path=str(SHOTS / "recall-researcher-lanes.png"))

    # --- the reveal: each sees the other's moments and can respond
    api(live_server, setup["token"], "POST", f"/recordings/{setup['recording_id']}/reveal")
    therapist.reload()
    other = therapist.locator("#other > li")
    expect(other).to_have_count(3)
    expect(other.first).to_contain_text("C-one: I felt judged here")
    other.first.get_by_role("button", name=re.compile("^Respond")).click()
    expect(therapist.locator("#form-responds")).to_contain_text("C-one: I felt judged here")
    therapist.get_by_label("What was happening for you here?").fill("T-reply: I did not notice")
    therapist.get_by_role("button", name="Save", exact=True).click()
    wait_saved(therapist)
    reply = mine(therapist).filter(has_text="T-reply")
    expect(reply).to_contain_text("In response to the other person’s moment at 0:02")
    shoot(therapist, "revealed", docs=True)
    client.reload()
    expect(client.locator("#other > li")).to_have_count(3)
    expect(client.locator("#other")).to_contain_text("T-beta: heavy (tab two)")

    # --- the therapist finishes: after the reveal the response pass stays open; the client
    # stops for now
    therapist.get_by_role("button", name="I'm finished").click()
    therapist.get_by_role("button", name="Yes, I'm finished").click()
    expect(therapist.locator("#response-note")).to_contain_text(
        "Thank you — you have finished.", timeout=15_000
    )
    expect(therapist.get_by_role("button", name="I'm finished")).to_have_count(0)
    shoot(therapist, "finished")
    # --- the study speaks Norwegian: the client's page follows, down to the goodbye
    api(live_server, setup["token"], "PATCH", f"/studies/{setup['study_id']}", {"language": "nb"})
    client.reload()
    expect(client.locator("html")).to_have_attribute("lang", "nb")
    expect(client.get_by_role("button", name="Marker øyeblikk")).to_be_visible()
    expect(client.get_by_role("heading", name="Dette markerte den andre")).to_be_visible()
    expect(client.locator("#save-status")).to_have_text("Alle endringer er lagret")
    client.get_by_role("button", name="Marker øyeblikk").click()
    expect(client.get_by_label("Hva skjedde for deg her?")).to_be_focused()
    shoot(client, "nb", docs=True)
    client.keyboard.press("Escape")
    client.get_by_role("button", name="Stopp for nå").click()
    shoot(client, "stop-confirm")
    client.get_by_role("button", name="Ja, stopp for nå").click()
    expect(client.get_by_role("heading", name="Takk. Du har stoppet for nå.")).to_be_visible()
    shoot(client, "goodbye", docs=True)
