"""The recall interview recorded in the browser, end to end (issue 16).

A researcher leads a recall session in Chromium with a fake microphone: records the interview
(MediaRecorder, 2 s chunks uploaded while recording), stops the video at moments, pauses and
resumes the recording, loses the connection for several seconds mid-recording (marking a moment
meanwhile), and ends the recording. A worker attaches it. Then the server's audio must be whole
(its duration is the recorded time: no chunk lost or doubled), its segments must be exactly what
the logged clocks give, and *Play the interview here* on the timeline must play each moment's
stretch: the audio element's currentTime runs from the segment's start to its end.

At every stop the prompt panel shows and the researcher notes the participant's answers (a
free-text answer, a rating, a choice), the offline stop included: there the panel says the
answers wait for the moment, and they are saved once the connection is back and the moment is.
Each moment's answers must be in the database and on the timeline's detail, next to *Play the
interview here*.

Tolerances: the recorded duration may differ from the page's audio clock by 400 ms (the
recorder's start-up and the last chunk's flush); playback starts within 50 ms of the segment's
start and stops within 350 ms after its end (the page pauses on the next animation frame; a
busy machine may drop frames).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from sqlalchemy import select

from ipr import interview, interview_takes, jobs
from ipr.config import load_config
from ipr.models import InterviewAudio, Job, PromptAnswer, RecallSession
from ipr.storage import Storage
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    GUARD_ATTR,
    PHONE,
    LiveServer,
    PageGuard,
    check_a11y,
    log_in,
)
from tests.e2e.test_recall_journey import (
    FAKE_MEDIA,
    api,
    session_video,  # noqa: F401 (a fixture)
    wait_saved,
)
from tests.interview_helpers import VTT, events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHOTS = Path(os.environ.get("IV_SHOTS_DIR", "")) if os.environ.get("IV_SHOTS_DIR") else None


@pytest.fixture(scope="module")
def mic_browser(browser: Browser) -> Iterator[Browser]:
    launched = browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS + FAKE_MEDIA
    )
    yield launched
    launched.close()


@pytest.fixture
def researcher_page(mic_browser: Browser, live_server: LiveServer) -> Iterator[Callable[..., Page]]:
    pages: list[tuple[Page, PageGuard]] = []
    contexts: list[BrowserContext] = []

    def _open(viewport: dict[str, int] | None = None) -> Page:
        context = mic_browser.new_context(
            viewport=viewport or DESKTOP, base_url=live_server.url, permissions=["microphone"]
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        guard = PageGuard.watch(page, live_server.url)
        pages.append((page, guard))
        return page

    yield _open
    problems = []
    for _page, guard in pages:
        # the dropped connection is provoked on purpose: Chromium notes each refused request
        guard.console_errors = [
            e for e in guard.console_errors if "ERR_INTERNET_DISCONNECTED" not in e
        ]
        problems += guard.problems()
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


def shot(page: Page, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def play_to(page: Page, ms: int) -> None:
    """Play on (saving a moment may already have resumed the video) to ``ms``, then pause."""
    if page.evaluate("() => document.getElementById('video').paused"):
        page.get_by_role("button", name="Play", exact=True).click()
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime * 1000 >= {ms}", timeout=15_000
    )
    page.get_by_role("button", name="Pause", exact=True).click()


THEN = "Go back into that moment as it was then, not as you see it now: what was going on for you?"
WHOSE = "Whose words here mattered most?"
HELPFUL = "How helpful or hindering was it?"
WAITING = "Answers not saved yet — retrying"  # in the outbox, behind their moment


def ask(page: Page, answers: dict[str, str]) -> None:
    """At the stop the prompt panel shows: note the answers (free text, a rating, a choice)."""
    panel = page.locator("#prompt-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#prompt-at")).to_contain_text("at 0:")
    panel.get_by_label("Go back into that moment as it was then").fill(answers["then"])
    rating, whose = answers["helpfulness"], answers["whose_words"]
    panel.locator(f"[data-key=helpfulness] label.scale-opt:has(input[value='{rating}'])").click()
    panel.locator(f"fieldset[data-key=whose_words] input[value='{whose}']").check()


def mark(page: Page, text: str, answers: dict[str, str], *, online: bool = True) -> None:
    """Stop the video at a moment and talk about it for at least two seconds (the form open,
    the video paused: this is the moment's stretch of interview), noting the answers to the
    prompts meanwhile, then save."""
    page.get_by_role("button", name="Mark moment").click()
    opened = time.monotonic()
    page.get_by_label("What was happening for you here?").fill(text)
    ask(page, answers)
    state = page.locator("#prompt-state")
    expect(state).to_have_text("Answers saved" if online else WAITING, timeout=15_000)
    left = 2000 - (time.monotonic() - opened) * 1000
    if left > 0:
        page.wait_for_timeout(left)  # the interview's stretch, not a save
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#prompt-panel")).to_be_hidden()
    if online:
        wait_saved(page)


def run_finalise(server: LiveServer, rs_id: int) -> None:
    """Be the worker (the harness runs none): attach the finished take."""
    assert "interview_finalise" in jobs.HANDLERS, interview_takes.__name__
    config = load_config(Path(server.env["IPR_INSTANCE_PATH"]), environ=server.env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with server.database.session() as s:
            ids = s.scalars(
                select(Job.id).where(Job.kind == "interview_finalise", Job.status == "queued")
            ).all()
        if ids:
            for job_id in ids:
                assert jobs.run_job(server.database, config, job_id) == "done"
            return
        time.sleep(0.3)
    pytest.fail("the page never finished the interview recording")


def set_up(server: LiveServer, video: Path) -> dict:
    """A study, a dyad, a processed recording, and a researcher-led session for the client."""
    who = server.new_researcher("interview")
    made = server.flask("ipr", "token", who.email)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    name = f"Interview {uuid.uuid4().hex[:6]}"
    study = api(server, token, "POST", "/studies", {"name": name})
    api(server, token, "PATCH", f"/studies/{study['id']}", {"segment_fixed_ms": 5000})
    dyad = api(server, token, "POST", f"/studies/{study['id']}/dyads", {"code": "09"})
    imported = server.flask(
        "ipr", "import", str(video), "--study", name, "--dyad", "09", "--session", "Session 1",
        "--wait",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    rec = json.loads(imported.stdout.strip().splitlines()[-1])
    assert rec["status"] == "ready", rec
    rs = api(server, token, "POST", f"/recordings/{rec['recording_id']}/recall-sessions",
             {"participant_id": dyad["client"]["id"], "mode": "researcher"})  # fmt: skip
    return {"researcher": who, "token": token, "recording_id": rec["recording_id"],
            "rs_id": rs["id"]}  # fmt: skip


def test_researcher_led_interview_recorded_through_a_dropped_connection(
    researcher_page: Callable[..., Page],
    live_server: LiveServer,
    session_video: Path,  # noqa: F811
) -> None:
    setup = set_up(live_server, session_video)
    token, rs_id = setup["token"], setup["rs_id"]

    page = researcher_page()
    log_in(page, setup["researcher"])
    page.goto(f"/recall/{rs_id}")
    indicator = page.locator("#iv-indicator")
    expect(indicator).to_contain_text("The interview is not being recorded")
    page.get_by_role("button", name="Start watching").click()

    # --- recording: the indicator says so, the level meter moves (the fake microphone beeps)
    page.get_by_role("button", name="Record the interview").click()
    expect(indicator).to_contain_text("Recording the interview")
    expect(page.locator("#iv-rec")).to_have_attribute("data-state", "recording")
    page.wait_for_function("() => document.getElementById('iv-level').value > 0", timeout=10_000)
    check_a11y(page, "interview recording")
    shot(page, "recorder-desktop-recording")

    answers = [
        {"then": "My shoulders dropped: she had heard me.", "helpfulness": "8",
         "whose_words": "therapist"},
        {"then": "Offline: I wanted to say it first, and she got there before me.",
         "helpfulness": "3", "whose_words": "own"},
        {"then": "We were both quiet, and it was all right.", "helpfulness": "9",
         "whose_words": "both"},
    ]  # fmt: skip
    play_to(page, 2500)
    mark(page, "First stop: I felt heard", answers[0])

    # --- the recording paused for a while (its clock stops), then resumed
    page.get_by_role("button", name="Pause recording").click()
    expect(indicator).to_contain_text("Interview recording paused")
    before = page.evaluate("window.iprInterview.audioMs()")
    page.wait_for_timeout(1500)
    assert page.evaluate("window.iprInterview.audioMs()") == before
    page.get_by_role("button", name="Resume recording").click()
    expect(indicator).to_contain_text("Recording the interview")

    # --- the connection drops for several seconds mid-recording; a stop is marked meanwhile
    play_to(page, 6000)
    page.context.set_offline(True)
    page.wait_for_timeout(2500)
    mark(page, "Second stop, marked offline", answers[1], online=False)
    expect(page.locator("#iv-upload")).to_contain_text("No connection", timeout=10_000)
    queued = page.evaluate("window.iprInterview.queued()")
    assert queued >= 2, queued  # several chunks wait in the page
    page.wait_for_timeout(2500)
    page.context.set_offline(False)
    wait_saved(page)  # the moment is created, and its mark gets its id
    logged = page.evaluate("window.iprInterview.events()")
    offline_id = [e for e in logged if e["type"] == "mark"][1].get("moment_id")
    assert offline_id, "the offline stop's mark never got its moment"
    # ... and the answers that waited for it are saved with it
    expect(page.locator("#prompt-panel")).to_have_attribute(
        "data-saved-moment", str(offline_id), timeout=15_000
    )
    expect(page.locator("#iv-upload")).to_have_text("All audio uploaded.", timeout=30_000)

    play_to(page, 9500)
    mark(page, "Third stop", answers[2])
    page.wait_for_timeout(2000)
    page.get_by_role("button", name="End the interview recording").click()
    run_finalise(live_server, rs_id)
    expect(indicator).to_contain_text("Interview recording saved", timeout=20_000)
    shot(page, "recorder-desktop-saved")

    # --- what the page logged, with both clocks
    events = page.evaluate("window.iprInterview.events()")
    stop = events[-1]
    assert stop["type"] == "stop"
    recorded_ms = stop["audio_ms"]
    marks = [e for e in events if e["type"] == "mark"]
    assert len(marks) == 3 and all(e.get("moment_id") for e in marks), marks
    assert [e["type"] for e in events].count("pause") >= 3
    assert all(a["audio_ms"] <= b["audio_ms"] for a, b in zip(events, events[1:], strict=False))

    # --- the server's audio is whole: its duration is the recorded time
    session = api(live_server, token, "GET", f"/recall-sessions/{rs_id}")
    duration = session["interview"]["duration_ms"]
    assert abs(duration - recorded_ms) <= 400, (duration, recorded_ms)
    sent = [{k: v for k, v in e.items() if k != "lid"} for e in events]
    want = [s.to_dict() for s in interview.segments(sent, duration)]
    assert [s["moment_id"] for s in want] == [e["moment_id"] for e in marks]
    assert session["interview"]["segments"] == want
    assert all(s["audio_end_ms"] - s["audio_start_ms"] >= 1900 for s in want), want
    with live_server.database.session() as s:
        row = s.scalar(select(InterviewAudio).where(InterviewAudio.recall_session_id == rs_id))
        rec_key = s.get(RecallSession, rs_id).recording.storage_key
        path = Storage(live_server.env["IPR_RECORDINGS_DIR"]).interview_path(
            rec_key, row.storage_name
        )
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr  # no broken chunk

    # --- each stop's answers are stored with its moment
    ids = [e["moment_id"] for e in marks]
    with live_server.database.session() as s:
        rows = s.execute(
            select(PromptAnswer.moment_id, PromptAnswer.prompt_key, PromptAnswer.value).where(
                PromptAnswer.moment_id.in_(ids)
            )
        ).all()
    stored: dict[int, dict[str, str]] = {}
    for moment_id, key, value in rows:
        stored.setdefault(moment_id, {})[key] = value
    assert stored == dict(zip(ids, answers, strict=True)), stored

    # --- Play the interview here, on the timeline, for each moment
    page.goto(f"/recordings/{setup['recording_id']}/timeline")
    buttons = page.locator(".iv-segments .iv-play-btn")
    expect(buttons).to_have_count(3)
    page.evaluate(
        """() => {
            const a = document.getElementById("iv-player");
            window.ivTimes = [];
            a.addEventListener("playing", () => window.ivTimes.push(["playing", a.currentTime]));
            a.addEventListener("pause", () => window.ivTimes.push(["pause", a.currentTime]));
        }"""
    )
    for seg in want:
        page.evaluate("window.ivTimes = []")
        page.locator(f".iv-segments .iv-play-btn[data-moment-id='{seg['moment_id']}']").click()
        page.wait_for_function(
            "() => window.ivTimes.some(t => t[0] === 'pause')",
            timeout=seg["audio_end_ms"] - seg["audio_start_ms"] + 15_000,
        )
        times = page.evaluate("window.ivTimes")
        started = next(t for kind, t in times if kind == "playing") * 1000
        stopped = next(t for kind, t in times if kind == "pause") * 1000
        assert seg["audio_start_ms"] - 50 <= started <= seg["audio_start_ms"] + 50, (seg, times)
        assert seg["audio_end_ms"] - 1 <= stopped <= seg["audio_end_ms"] + 350, (seg, times)
    check_a11y(page, "timeline with the interview")

    # each moment's detail offers the same, beside its answers (J selects the next moment)
    words = {"therapist": "The therapist's", "own": "My own", "both": "Both"}
    hat = {"3": "Moderately hindering", "8": "Greatly helpful", "9": "Extremely helpful"}
    page.locator("#tl-canvas").focus()
    detail = page.locator("#tl-detail")
    for seg, said, text in zip(
        want, answers, ["First stop: I felt heard", "Second stop, marked offline", "Third stop"],
        strict=True,
    ):  # fmt: skip
        page.keyboard.press("j")
        detail_btn = detail.locator(".iv-play-detail")
        expect(detail_btn).to_have_count(1)
        expect(detail_btn).to_have_attribute("data-moment-id", str(seg["moment_id"]))
        expect(detail.locator("blockquote")).to_have_text(text)
        expect(detail.locator("p", has_text="Interview · ")).to_have_text(
            [
                f"Interview · {THEN} — {said['then']}",
                f"Interview · {WHOSE} — {words[said['whose_words']]}",
                f"Interview · {HELPFUL} — {said['helpfulness']} ({hat[said['helpfulness']]})",
            ]
        )
    shot(page, "timeline-desktop-interview")
    if SHOTS is not None:
        phone = researcher_page(PHONE)
        log_in(phone, setup["researcher"])
        phone.goto(f"/recall/{rs_id}")
        shot(phone, "recorder-phone")
        phone.goto(f"/recordings/{setup['recording_id']}/timeline")
        phone.locator("#iv-play-h").scroll_into_view_if_needed()
        shot(phone, "timeline-phone-interview")


def test_a_tab_closed_mid_interview_keeps_its_audio(
    researcher_page: Callable[..., Page],
    live_server: LiveServer,
    session_video: Path,  # noqa: F811
) -> None:
    """The uploads fail (the chunks wait in IndexedDB), the tab is closed; opened again, the
    page offers the unfinished recording and *Save that recording* sends what the browser kept
    and attaches it."""
    setup = set_up(live_server, session_video)
    token, rs_id = setup["token"], setup["rs_id"]
    page = researcher_page()
    log_in(page, setup["researcher"])
    page.goto(f"/recall/{rs_id}")
    page.get_by_role("button", name="Start watching").click()

    def refuse_chunks(route: Route) -> None:
        if route.request.method == "PATCH":
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/interview/takes/*", refuse_chunks)
    page.get_by_role("button", name="Record the interview").click()
    expect(page.locator("#iv-indicator")).to_contain_text("Recording the interview")
    page.wait_for_function("() => window.iprInterview.queued() >= 3", timeout=20_000)
    queued = page.evaluate("window.iprInterview.queued()")
    recorded = page.evaluate("window.iprInterview.audioMs()")
    page.close()

    again = page.context.new_page()  # the same browser profile: its IndexedDB
    setattr(again, GUARD_ATTR, getattr(page, GUARD_ATTR))
    again.on("console", getattr(page, GUARD_ATTR).on_console)
    again.goto(f"/recall/{rs_id}")
    expect(again.locator("#iv-open-text")).to_contain_text(
        "An earlier interview recording of this session was not finished (0 kB uploaded)."
    )
    check_a11y(again, "an unfinished interview recording")
    again.get_by_role("button", name="Save that recording").click()
    run_finalise(live_server, rs_id)
    expect(again.locator("#iv-indicator")).to_contain_text("Interview recording saved.")
    session = api(live_server, token, "GET", f"/recall-sessions/{rs_id}")
    duration = session["interview"]["duration_ms"]
    # every chunk the browser had kept is in the file (each holds 2 s); the last, unfinished
    # one died with the tab
    assert queued * 2000 - 400 <= duration <= recorded + 400, (queued, recorded, duration)


def post_files(
    server: LiveServer, token: str, path: str, fields: dict[str, tuple[str, bytes]]
) -> Any:
    """A multipart POST to the API, as a lab's own recorder sends it."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, (filename, data) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(server.url + "/api/v1" + path, data=body, method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def test_the_moment_detail_shows_what_was_said(
    researcher_page: Callable[..., Page],
    live_server: LiveServer,
    session_video: Path,  # noqa: F811
    interview_wav: bytes,
) -> None:
    """An interview recorded elsewhere (10 s of tone by ffmpeg), its stops and a WebVTT
    transcript sent through the API: selecting the first moment on the timeline shows the two
    utterances said at that stop, with their times on the interview audio, and the *Play the
    interview here* button right after them."""
    setup = set_up(live_server, session_video)
    token, rs_id = setup["token"], setup["rs_id"]
    ids = [
        api(live_server, token, "POST", f"/recall-sessions/{rs_id}/moments", {"t_ms": t})["id"]
        for t in (5000, 9000, 12000)
    ]
    sent = {
        "file": ("interview.wav", interview_wav),
        "events": ("", json.dumps(events(*ids)).encode()),
    }
    post_files(live_server, token, f"/recall-sessions/{rs_id}/interview-audio", sent)
    got = post_files(live_server, token, f"/recall-sessions/{rs_id}/transcript",
                     {"file": ("t.vtt", VTT.encode())})  # fmt: skip
    assert got["attached"] == {str(ids[0]): 2, str(ids[1]): 1, str(ids[2]): 1}

    page = researcher_page()
    log_in(page, setup["researcher"])
    page.goto(f"/recordings/{setup['recording_id']}/timeline")
    page.locator("#tl-canvas").focus()
    page.keyboard.press("j")  # the first moment: the stop at 5 s, interview 0:02–0:04
    detail = page.locator("#tl-detail")
    expect(detail.locator(".tl-said-h")).to_have_text("What was said")
    expect(detail.locator(".tl-said")).to_have_text(
        ["0:02.0–0:03.0 · What was happening for you there?", "0:03.9–0:04.0 · I felt stuck."]
    )
    # the button follows what was said at its moment
    after = detail.locator(".tl-said + .iv-play-detail")
    expect(after).to_have_count(1)
    expect(after).to_have_attribute("data-moment-id", str(ids[0]))
    check_a11y(page, "the moment's detail with what was said")
    detail.scroll_into_view_if_needed()
    shot(page, "timeline-desktop-said")
    phone = researcher_page(PHONE)
    log_in(phone, setup["researcher"])
    phone.goto(f"/recordings/{setup['recording_id']}/timeline")
    phone.locator("#tl-canvas").focus()
    phone.keyboard.press("j")
    expect(phone.locator("#tl-detail .tl-said")).to_have_count(2)
    phone.locator("#tl-detail .tl-said-h").scroll_into_view_if_needed()
    shot(phone, "timeline-phone-said")
