"""The recording page's *Import transcript* form in Chromium, on a phone (390×844) and a desktop
(1280×800): a researcher imports the interview's WebVTT transcript and reads what went where,
then sends a file with problems and reads them, the previous transcript intact. Then
*Transcribe* runs the harness's stand-in model (``IPR_TRANSCRIBE_COMMAND``), the test being the
worker, and the box follows the job by polling. axe-core runs on each state; screenshots land in
``test-artifacts/interview/transcript-form-*.png``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from ipr import interview, jobs
from ipr.config import load_config
from ipr.models import InterviewUtterance, Job
from tests.e2e.conftest import DESKTOP, PHONE, LiveServer, check_a11y, expect_status, log_in
from tests.e2e.test_interview_recorder import post_files
from tests.e2e.test_interview_safeguards import set_up, shoot
from tests.e2e.test_recall_journey import api, session_video
from tests.test_interview import VTT, events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["session_video"]  # the module fixture, shared with the recall journey

BAD = b"[00:00:01] ok\nno stamp here\n[00:00:03] fine\nnor here\n"
# VTT on the stops of ``events``: a 2000-4000, b 6000-8000, c 9000 to the end (10 000)
SAID = [
    (500, None, "Shall we start?"),
    (2000, 0, "What was happening for you there?"),
    (3999, 0, "I felt stuck."),
    (4000, None, "Let's go on."),
    (6200, 1, "I noticed the pause."),
    (9500, 2, "That was the moment."),
]


@pytest.fixture(scope="module")
def interview_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Ten seconds of a 440 Hz tone, 8 kHz mono WAV (the interview recorded elsewhere)."""
    out = tmp_path_factory.mktemp("transcript-form") / "interview.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
         "-ac", "1", "-ar", "8000", str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def stored(server: LiveServer, rs_id: int, ids: list[int]) -> list[tuple[int, int | None, str]]:
    """The session's utterances: (start, index of the stop in ``ids`` or None, text)."""
    with server.database.session() as s:
        rows = s.scalars(
            select(InterviewUtterance)
            .where(InterviewUtterance.recall_session_id == rs_id)
            .order_by(InterviewUtterance.start_ms)
        ).all()
        return [(u.start_ms, ids.index(u.moment_id) if u.moment_id else None, u.text) for u in rows]


def run_transcription(server: LiveServer) -> int:
    """Be the worker (the harness runs none): run the queued transcription; its job id."""
    assert "interview_transcribe" in jobs.HANDLERS, interview.__name__
    config = load_config(Path(server.env["IPR_INSTANCE_PATH"]), environ=server.env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with server.database.session() as s:
            job_id = s.scalar(
                select(Job.id).where(Job.kind == "interview_transcribe", Job.status == "queued")
            )
        if job_id:
            assert jobs.run_job(server.database, config, job_id) == "done"
            return job_id
        time.sleep(0.3)
    pytest.fail("the page queued no transcription")


def in_sight(page: Page, what: Locator) -> None:
    """The answer shows where the researcher is looking, the button just pressed."""
    box, height = what.bounding_box(), page.viewport_size["height"]
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= height, (box, height)


def test_the_transcript_form_imports_a_file_and_refuses_a_bad_one(
    new_page, live_server: LiveServer, session_video: Path, interview_wav: bytes
) -> None:
    world = set_up(live_server, session_video)
    token, rs_id = world["token"], world["sessions"]["client"]["id"]
    ids = [
        api(live_server, token, "POST", f"/recall-sessions/{rs_id}/moments", {"t_ms": t})["id"]
        for t in (5000, 9000, 12000)
    ]
    sent = {
        "file": ("interview.wav", interview_wav),
        "events": ("", json.dumps(events(*ids)).encode()),
    }
    post_files(live_server, token, f"/recall-sessions/{rs_id}/interview-audio", sent)
    before = "Interview audio 0:10 · no transcript yet"
    for viewport, width in ((PHONE, 390), (DESKTOP, 1280)):
        page = new_page(viewport=viewport, name=f"researcher-{width}")
        expect_status(page, 422)  # the bad file, on purpose
        log_in(page, world["researcher"])
        page.goto(f"/recordings/{world['recording_id']}")
        state = page.locator(f"#transcript-state-{rs_id}")
        expect(state).to_have_text(before)
        form = page.locator("#invite-client form.transcript-import")
        form.get_by_label("Transcript file").set_input_files(
            {"name": "interview.vtt", "mimeType": "text/vtt", "buffer": VTT.encode()}
        )
        form.get_by_role("button", name="Import transcript").click()
        result = page.locator("#invite-client .transcript-result")
        expect(result).to_have_text("4 utterances attached to 3 stops, 2 outside any stop.")
        expect(state).to_have_text("Interview audio 0:10 · transcript of 6 utterances")
        assert stored(live_server, rs_id, ids) == SAID
        in_sight(page, result)  # where the button was, without scrolling
        shoot(page, f"transcript-form-imported-{width}")

        form = page.locator("#invite-client form.transcript-import")
        form.get_by_label("Transcript file").set_input_files(
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": BAD}
        )
        form.get_by_role("button", name="Import transcript").click()
        error = page.locator(f"#transcript-error-{rs_id}")
        expect(error.locator("p")).to_have_text(
            "The timestamped transcript has problems. Nothing was saved; the previous "
            "transcript is unchanged."
        )
        expect(error.locator("li")).to_have_text(
            ["line 2: does not start with [hh:mm:ss]", "line 4: does not start with [hh:mm:ss]"]
        )
        expect(page.locator("#invite-client .transcript-result")).to_have_count(0)
        expect(state).to_have_text("Interview audio 0:10 · transcript of 6 utterances")
        expect(page.get_by_label("Transcript file")).to_have_attribute("aria-invalid", "true")
        assert stored(live_server, rs_id, ids) == SAID
        in_sight(page, error)
        shoot(page, f"transcript-form-refused-{width}")
        before = "Interview audio 0:10 · transcript of 6 utterances"

    # *Transcribe*: queued, then (the test runs the job) done; the polled box and the session's
    # transcript line follow without a reload
    box = page.locator(f"#transcribe-{rs_id}")
    box.get_by_role("button", name="Transcribe").click()
    job = box.locator(".transcribe-job")
    expect(job).to_have_text("Transcription queued: waiting for a worker…")
    check_a11y(page, "transcription queued")
    job_id = run_transcription(live_server)
    with live_server.database.session() as s:
        when = s.get(Job, job_id).finished_at.strftime("%Y-%m-%d %H:%M")
    expect(job).to_have_text(f"Transcribed by the model on {when} UTC.", timeout=15_000)
    expect(state).to_have_text("Interview audio 0:10 · transcript of 2 utterances")
    assert stored(live_server, rs_id, ids) == [
        (2100, 0, "The model heard this at the first stop."),
        (6500, 1, "And this at the second."),
    ]
    in_sight(page, box)
    shoot(page, "transcript-form-transcribed-1280")
