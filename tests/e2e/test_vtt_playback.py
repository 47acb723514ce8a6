"""The exported WebVTT plays as subtitles over the video in Chromium.

The file comes from the app's own export route; a small page served from a temporary folder puts
it as a <track> on the recording, which plays through while the TextTrack API reports which cues
are active when.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipr import studies
from ipr.models import Recording
from ipr.storage import Storage
from tests.conftest import api_token, make_video

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vtt</title><link rel="icon" href="data:,"></head><body>
<video id="v" src="playable.mp4" preload="auto" muted playsinline>
  <track id="t" kind="subtitles" srclang="en" label="Moments" src="moments.vtt" default>
</video>
</body></html>
"""

CUES_JS = """() => {
  const track = document.getElementById('v').textTracks[0];
  return Array.from(track.cues).map(c => [c.id, Math.round(c.startTime * 1000),
                                          Math.round(c.endTime * 1000), c.text, c.line]);
}"""

PLAY_JS = """async () => {
  const video = document.getElementById('v');
  const track = video.textTracks[0];
  const changes = [];
  track.addEventListener('cuechange', () => changes.push(
    [Math.round(video.currentTime * 1000), Array.from(track.activeCues).map(c => c.id).sort()]));
  await new Promise((resolve, reject) => {
    video.addEventListener('ended', resolve, {once: true});
    video.addEventListener('error', () => reject(new Error('video error')), {once: true});
    video.play().catch(reject);
  });
  return changes;
}"""
# Cues are updated when the media clock is sampled (every ~15-250 ms); a busy CI machine adds more.
SLACK_MS = 400


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A throwaway static server for the page, the video and the exported captions."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".vtt": "text/vtt",
        ".mp4": "video/mp4",
    }

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 — stdlib name
        pass


def _exported_vtt(app, db, owner, study, video: Path) -> tuple[bytes, dict[str, int]]:
    """A ready recording with a therapist point and a client span, exported through the API."""
    dyad = studies.create_dyad(db, study, owner, "07")
    key = Storage.new_key()
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Session 3", storage_key=key,
        status="ready", duration_ms=6000, width=320, height=180, fps_num=25, fps_den=1,
        has_audio=True,
    )  # fmt: skip
    db.add(rec)
    db.commit()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(key)
    derived.mkdir(parents=True)
    shutil.copy(video, derived / "playable.mp4")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(db, owner)}"}
    ids = {}
    for role, body in (
        ("therapist", {"t_ms": 1000, "text": "She got it"}),
        ("client", {"t_ms": 4500, "end_ms": 5500, "text": "I felt <seen> & heard"}),
    ):
        rs = client.post(
            f"/api/v1/recordings/{rec.id}/recall-sessions",
            json={"participant_id": dyad.participant(role).id, "mode": "researcher"},
            headers=headers,
        ).json
        moment = client.post(f"/api/v1/recall-sessions/{rs['id']}/moments", json=body,
                             headers=headers).json  # fmt: skip
        ids[role] = moment["id"]
    resp = client.get(f"/api/v1/recordings/{rec.id}/export.vtt", headers=headers)
    assert resp.status_code == 200 and resp.mimetype == "text/vtt"
    return resp.data, ids


def test_exported_vtt_cues_are_active_at_the_moments(
    app, db, owner, study, browser, served, tmp_path
) -> None:
    video = make_video(tmp_path / "playable.mp4", 6.0)
    vtt, ids = _exported_vtt(app, db, owner, study, video)
    url, root = served
    shutil.copy(video, root / "playable.mp4")
    (root / "moments.vtt").write_bytes(vtt)
    (root / "index.html").write_text(PAGE)

    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/index.html")
        page.wait_for_function(
            "() => { const v = document.getElementById('v');"
            " return v.readyState >= 1 && v.textTracks[0].cues && v.textTracks[0].cues.length"
            " === 2; }",
            timeout=20_000,
        )
        therapist, client = f"therapist-{ids['therapist']}", f"client-{ids['client']}"
        assert page.evaluate(CUES_JS) == [
            [therapist, 1000, 4000, "<v T07>T07</v>\n<v T07>She got it</v>", 5],
            [client, 4500, 5500, "<v C07>C07</v>\n<v C07>I felt &lt;seen&gt; &amp; heard</v>",
             "auto"],
        ]  # fmt: skip
        changes = page.evaluate(PLAY_JS)  # plays the 6 s recording in real time
        assert [active for _, active in changes] == [[therapist], [], [client], []], changes
        for (at_ms, _), expected_ms in zip(changes, (1000, 4000, 4500, 5500), strict=True):
            assert expected_ms <= at_ms <= expected_ms + SLACK_MS, changes
        assert page.evaluate("() => document.getElementById('v').textTracks[0].mode") == "showing"
        assert errors == []
    finally:
        context.close()
