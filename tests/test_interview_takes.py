"""The interview recorder's chunk upload (issue 16): a take is appended at byte offsets, retries
are idempotent, gaps are refused with the offset to resume from, and the finished take is
remuxed, probed and attached by the worker. Real Opus-in-WebM audio made by ffmpeg, cut into
chunks the way MediaRecorder hands them over (a byte stream cut anywhere)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ipr import interview, jobs, studies
from ipr.models import InterviewAudio, Job
from ipr.ratelimit import RateLimiter
from tests.conftest import Web, api_token
from tests.interview_helpers import tone

DURATION_MS = 6000


@pytest.fixture(scope="module")
def webm(tmp_path_factory) -> bytes:
    """Six seconds of a 440 Hz tone as Opus in a *live* WebM (no duration, no cues), which is
    what Chromium's MediaRecorder writes."""
    out = tmp_path_factory.mktemp("take") / "take.webm"
    return tone(out, 6, "-c:a", "libopus", "-b:a", "32k", "-live", "1", "-f", "webm")


@pytest.fixture
def env(interview_env):
    """The shared researcher-led session (tests/conftest.py) by its id, with two of its stops."""
    return {
        **interview_env,
        "rs": interview_env["rs"]["id"],
        "moments": interview_env["moments"][:2],
    }


def cookie(web: Web, method: str, url: str, **kw):
    """The recall page's door: login cookie and the CSRF header."""
    headers = {"X-CSRFToken": web.csrf, "Accept": "application/json", **kw.pop("headers", {})}
    return web.client.open(url, method=method, headers=headers, **kw)


def chunks(data: bytes, n: int) -> list[tuple[int, bytes]]:
    size = -(-len(data) // n)
    return [(i, data[i : i + size]) for i in range(0, len(data), size)]


def put(env, take: str, offset: int, data: bytes, web: Web | None = None):
    url = f"/recall-sessions/{env['rs']}/interview/takes/{take}"
    headers = {"Upload-Offset": str(offset), "Content-Type": "application/octet-stream"}
    if web is not None:
        return cookie(web, "PATCH", url, headers=headers, data=data)
    return env["api"]("PATCH", "/api/v1" + url, headers=headers, data=data)


def take_files(env) -> list[str]:
    folder = env["storage"].recording_dir(env["rec"].storage_key) / "interview"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def run_jobs(app, db) -> list[str]:
    ids = db.scalars(select(Job.id).where(Job.kind == "interview_finalise").order_by(Job.id))
    return [jobs.run_job(app.extensions["ipr_db"], dict(app.config), i) for i in list(ids)]


def test_chunks_out_of_order_duplicated_and_after_a_gap_make_one_whole_take(
    app, db, env, webm
) -> None:
    web = env["web"]
    page = web.get(f"/recall/{env['rs']}").get_data(as_text=True)
    assert 'id="iv-rec"' in page and "interview_recorder.js" in page  # researcher-led only
    start = cookie(web, "POST", f"/recall-sessions/{env['rs']}/interview/takes")
    assert start.status_code == 201, start.json
    take = start.json["take"]
    assert start.json == {"take": take, "offset": 0, "status": "recording", "events": 0,
                          "error": None, "job_id": None}  # fmt: skip
    parts = chunks(webm, 5)
    # the first chunk arrives, then the third before the second: refused, with where to resume
    assert put(env, take, *parts[0], web=web).json == {"offset": len(parts[0][1])}
    gap = put(env, take, *parts[2], web=web)
    assert gap.status_code == 409
    assert gap.json["error"]["code"] == "offset_mismatch"
    assert gap.json["error"]["offset"] == parts[1][0]
    assert gap.headers["Upload-Offset"] == str(parts[1][0])
    assert f"send from byte {parts[1][0]}" in gap.json["error"]["message"]
    # the client resumes from there; a retried chunk (the answer was lost) stores nothing twice
    assert put(env, take, *parts[1], web=web).json == {"offset": parts[2][0]}
    again = put(env, take, *parts[1], web=web)
    assert (again.status_code, again.json) == (200, {"offset": parts[2][0]})
    # a retry that overlaps the end adds only the new bytes
    overlap_from = parts[2][0] - 10
    resp = put(env, take, overlap_from, webm[overlap_from : parts[3][0]], web=web)
    assert resp.json == {"offset": parts[3][0]}
    # the rest through the API door, with the events
    for off, data in parts[3:]:
        assert put(env, take, off, data).status_code == 200
    status = env["api"]("GET", f"/api/v1/recall-sessions/{env['rs']}/interview/takes/{take}")
    assert status.json["offset"] == len(webm) and status.headers["Upload-Offset"] == str(len(webm))
    part = env["storage"].recording_dir(env["rec"].storage_key) / "interview"
    assert (part / f"take-{env['rs']}-{take}.part").read_bytes() == webm  # contiguous, no dupes

    a, b = env["moments"]
    evs = [
        {"type": "play", "video_ms": 0, "audio_ms": 0},
        {"type": "pause", "video_ms": 5000, "audio_ms": 1500, "moment_id": a},
        {"type": "mark", "video_ms": 5000, "audio_ms": 1500, "moment_id": a},
        {"type": "play", "video_ms": 5000, "audio_ms": 3000},
        {"type": "pause", "video_ms": 9000, "audio_ms": 4000, "moment_id": b},
        {"type": "stop", "video_ms": 9000, "audio_ms": 6100},  # the browser's clock ran on
    ]
    url = f"/recall-sessions/{env['rs']}/interview/takes/{take}"
    assert cookie(web, "PUT", url + "/events", json={"events": evs[:3]}).json == {"events": 3}
    done = cookie(web, "POST", url + "/finish", json={"events": evs})
    assert done.status_code == 202, done.json
    assert done.json["status"] == "finishing" and done.json["events"] == 6
    # a chunk after the end is refused
    late = put(env, take, len(webm), b"late", web=web)
    assert late.status_code == 409 and late.json["error"]["code"] == "conflict"

    assert run_jobs(app, db) == ["done"]
    session = env["api"]("GET", f"/api/v1/recall-sessions/{env['rs']}").json
    duration = session["interview"]["duration_ms"]
    assert abs(duration - DURATION_MS) <= 40  # Opus frames are 20 ms
    assert session["interview"]["format"] == "matroska,webm"
    assert session["interview"]["segments"] == [
        {"moment_id": a, "audio_start_ms": 1500, "audio_end_ms": 3000},
        {"moment_id": b, "audio_start_ms": 4000, "audio_end_ms": duration},  # the stop, clamped
    ]
    audio = db.scalar(select(InterviewAudio))
    assert audio.events[-1] == {"type": "stop", "video_ms": 9000, "audio_ms": duration}
    # the stored file is a seekable WebM (the remux wrote a duration) served with Range
    rng = env["api"]("GET", session["interview"]["audio_url"], headers={"Range": "bytes=0-99"})
    assert rng.status_code == 206 and len(rng.data) == 100
    page = cookie(web, "GET", f"/recall-sessions/{env['rs']}/interview.audio")
    assert page.status_code == 200 and page.mimetype == "audio/webm"
    probe = interview.probe_audio(interview.audio_path(env["storage"], _rs(db, env), audio))
    assert probe[0] == "webm"
    # the take's bytes are gone; its state stays as "done" for the browser's poll
    assert take_files(env) == [audio.storage_name, f"take-{env['rs']}-{take}.json"]
    assert cookie(web, "GET", url).json["status"] == "done"
    # the researcher's timeline plays each stop's stretch (Play the interview here)
    html = web.get(f"/recordings/{env['rec'].id}/timeline").get_data(as_text=True)
    audio_url = f"/recall-sessions/{env['rs']}/interview.audio"
    for mid, t, start, end in ((a, 5000, 1500, 3000), (b, 9000, 4000, duration)):
        assert (
            f'data-src="{audio_url}" data-moment-id="{mid}" data-t-ms="{t}" '
            f'data-start-ms="{start}" data-end-ms="{end}"'
        ) in html
    assert html.count(">Play the interview here</button>") == 2
    assert cookie(web, "GET", f"/recall-sessions/{env['rs']}/interview/takes").json == {"takes": []}


def _rs(db, env):
    from ipr.models import RecallSession

    return db.get(RecallSession, env["rs"])


def test_refusals(app, db, env, webm, make_user) -> None:
    web = env["web"]
    base = f"/recall-sessions/{env['rs']}/interview/takes"
    take = cookie(web, "POST", base).json["take"]
    # oversize: one chunk over the cap (the body limit or the domain's), the whole take over
    # IPR_INTERVIEW_AUDIO_MAX_BYTES
    big = put(env, take, 0, b"\0" * (4 * 1024**2 + 1), web=web)
    assert big.status_code == 413 and big.json["error"]["code"] == "too_large"
    huge = put(env, take, 0, b"\0" * (5 * 1024**2), web=web)
    assert huge.status_code == 413 and huge.json["error"]["code"] == "too_large"
    app.config["INTERVIEW_AUDIO_MAX_BYTES"] = 1000
    assert put(env, take, 0, b"\0" * 600, web=web).status_code == 200
    over = put(env, take, 600, b"\0" * 600, web=web)
    assert over.status_code == 413 and "at most" in over.json["error"]["message"]
    app.config["INTERVIEW_AUDIO_MAX_BYTES"] = 1024**3
    # a bad offset header
    bad = env["api"]("PATCH", f"/api/v1{base}/{take}", headers={"Upload-Offset": "-1"}, data=b"x")
    assert bad.status_code == 400
    # wrong token, no login, an unknown take
    assert put(env, take, 600, b"x").status_code == 200
    wrong = env["api"]("PATCH", f"/api/v1{base}/{take}", bearer="ipr_not-a-token",
                       headers={"Upload-Offset": "601"}, data=b"y")  # fmt: skip
    assert wrong.status_code == 401
    anon = Web(app)
    anon.get("/login")
    resp = cookie(anon, "PATCH", f"{base}/{take}", headers={"Upload-Offset": "601"}, data=b"y")
    assert resp.status_code == 401
    assert put(env, "f" * 32, 0, b"x", web=web).status_code == 404
    assert put(env, "../../etc", 0, b"x", web=web).status_code == 404
    # another study's researcher: 404, as for a missing session; a viewer: 403
    other = make_user("other@example.org")
    other_token = api_token(db, other)
    resp = env["api"]("PATCH", f"/api/v1{base}/{take}", bearer=other_token,
                      headers={"Upload-Offset": "601"}, data=b"y")  # fmt: skip
    assert resp.status_code == 404
    resp = env["api"]("POST", f"/api/v1{base}", bearer=other_token)
    assert resp.status_code == 404
    viewer = make_user("viewer@example.org")
    studies.add_member(db, env["study"], env["study"].memberships[0].user, viewer.email, "viewer")
    resp = env["api"]("POST", f"/api/v1{base}", bearer=api_token(db, viewer))
    assert resp.status_code == 403
    # nothing of theirs was stored
    part = env["storage"].recording_dir(env["rec"].storage_key) / "interview"
    assert (part / f"take-{env['rs']}-{take}.part").read_bytes() == b"\0" * 600 + b"x"
    # a self-guided session has no interview
    self_rs = env["session"]("therapist", "self")["id"]
    resp = env["api"]("POST", f"/api/v1/recall-sessions/{self_rs}/interview/takes")
    assert resp.status_code == 409
    # events that are not events
    resp = cookie(web, "PUT", f"{base}/{take}/events", json={"events": [{"type": "dance"}]})
    assert resp.status_code == 422
    # a take that is not WebM audio fails in the worker, says why, and can be discarded
    assert cookie(web, "POST", f"{base}/{take}/finish", json={}).status_code == 202
    assert run_jobs(app, db) == ["failed"]
    state = cookie(web, "GET", f"{base}/{take}").json
    assert state["status"] == "failed" and "could not be read" in state["error"]
    assert [t["take"] for t in cookie(web, "GET", base).json["takes"]] == [take]
    assert db.scalar(select(InterviewAudio)) is None
    assert cookie(web, "DELETE", f"{base}/{take}").status_code == 204
    assert take_files(env) == []


def test_withdrawal_and_erasure_remove_takes_and_audio(app, db, env, webm) -> None:
    web = env["web"]
    base = f"/recall-sessions/{env['rs']}/interview/takes"
    done = cookie(web, "POST", base).json["take"]
    assert put(env, done, 0, webm, web=web).status_code == 200
    evs = [{"type": "pause", "video_ms": 5000, "audio_ms": 100, "moment_id": env["moments"][0]}]
    assert cookie(web, "POST", f"{base}/{done}/finish", json={"events": evs}).status_code == 202
    assert run_jobs(app, db) == ["done"]
    open_take = cookie(web, "POST", base).json["take"]  # a second one, still being recorded
    assert put(env, open_take, 0, webm[:1000], web=web).status_code == 200
    assert len(take_files(env)) == 4  # the audio, the done state, the open take's two files
    pid = env["dyad"].participant("client").id
    resp = env["api"]("POST", f"/api/v1/participants/{pid}/withdraw")
    assert resp.status_code == 200, resp.json
    assert resp.json["erased"]["interview_audio_files"] == 1
    assert take_files(env) == []
    assert db.scalar(select(InterviewAudio)) is None


def test_researcher_erasure_of_a_participant_removes_the_interview(app, db, env, webm) -> None:
    """The recordings page's erase (studies.erase_participant_data) covers takes and audio."""
    web = env["web"]
    base = f"/recall-sessions/{env['rs']}/interview/takes"
    take = cookie(web, "POST", base).json["take"]
    assert put(env, take, 0, webm, web=web).status_code == 200
    assert cookie(web, "POST", f"{base}/{take}/finish", json={"events": []}).status_code == 202
    assert run_jobs(app, db) == ["done"]
    audio = db.scalar(select(InterviewAudio))
    # no events at all: the audio is kept, aligned by the session's position at the start
    assert audio.events == [{"type": "pause", "video_ms": 0, "audio_ms": 0}]
    assert audio.storage_name in take_files(env)
    participant = env["dyad"].participant("client")
    studies.erase_participant_data(
        db, env["storage"], participant, env["study"].memberships[0].user
    )
    assert take_files(env) == []


def test_chunks_do_not_use_up_the_researchers_write_allowance(app, db, env, webm) -> None:
    """A long interview sends a chunk every 2 s: like tus uploads, appends are not counted
    against IPR_WRITE_RATE_PER_MINUTE (the other writes are)."""
    web = env["web"]
    base = f"/recall-sessions/{env['rs']}/interview/takes"
    take = cookie(web, "POST", base).json["take"]
    app.extensions["ipr_rate"] = RateLimiter(3)  # a fresh minute, three writes
    for off, data in chunks(webm, 6):
        assert put(env, take, off, data, web=web).status_code == 200
    evs = {"events": [{"type": "play", "video_ms": 0, "audio_ms": 0}]}
    statuses = [cookie(web, "PUT", f"{base}/{take}/events", json=evs).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
