"""`flask --app app ipr demo`: a new user lands in a populated app."""

from __future__ import annotations

import re

from sqlalchemy import select

from ipr.models import Dyad, Moment, RecallSession, Recording, Study
from tests.conftest import Web
from tests.test_recordings import flask_cli


def test_demo_seeds_a_processed_recording_with_moments_and_links(app, db) -> None:
    out = flask_cli(app, "demo", "--length", "60", timeout=600)
    assert out.returncode == 0, out.stderr
    assert "Researcher login: demo@example.org / demo-password-ipr" in out.stdout
    links = re.findall(
        r"Participant link for (T01|C01): http://127\.0\.0\.1:5000(/r/\S+)", out.stdout
    )
    assert [code for code, _ in links] == ["T01", "C01"]
    study = db.scalar(select(Study))
    assert [d.code for d in db.scalars(select(Dyad).order_by(Dyad.code))] == ["01", "02"]
    assert [c.shortcut for c in study.codes] == ["u", "i", "r", "p", "f"]
    assert [s.key for s in study.scales] == ["hat", "intensity"]
    rec = db.scalar(select(Recording))
    assert rec.status == "ready" and abs(rec.duration_ms - 60_000) <= 40
    assert (rec.width, rec.height, rec.has_audio) == (640, 360, True)
    assert [(c.start_ms, c.end_ms) for c in rec.clips][0][0] == 0 and len(rec.clips) == 1
    # the generated tone pauses for 2 s every 10 s, and both halves move
    silences = rec.media_info["silences_ms"]
    assert len(silences) == 6 and abs(silences[1][0] - 10_000) <= 100
    moments = db.scalars(select(Moment).join(RecallSession)).all()
    assert len(moments) == 4  # the sample moments that fall inside 60 s: 2 each
    # the printed link works for its participant
    web = Web(app)
    resp = web.get(links[1][1])
    assert resp.status_code == 303
    listed = web.client.get(resp.headers["Location"] + "/moments").json
    assert len(listed["moments"]) == 2 and listed["revealed"] is None
    # running it again makes nothing new
    again = flask_cli(app, "demo", "--length", "60", timeout=600)
    assert again.returncode == 0 and "Participant link for" not in again.stdout
    assert len(db.scalars(select(Recording)).all()) == 1
