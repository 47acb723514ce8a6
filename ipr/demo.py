"""The demo study: what a new user finds after `flask --app app ipr demo`.

Two dyads, a codebook, the HAT scale and an intensity scale; dyad 01 has a generated session
recording (two moving halves, a tone with pauses), processed like any upload, with a few
moments from each participant, and personal links for both.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import ffmpeg
from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr import jobs, recall, recordings, studies
from ipr.models import Recording, Study, User
from ipr.storage import Storage

STUDY_NAME = "Demo: brief structured recall"
DEMO_SECONDS = 180

CODES = (
    ("Feeling understood", "#2ca02c", "u"),
    ("Insight", "#1f77b4", "i"),
    ("Rupture", "#d62728", "r"),
    ("Repair", "#9467bd", "p"),
    ("Painful feelings", "#ff7f0e", "f"),
)

INSTRUCTIONS = (
    "You will watch the recording of your session. Take your time.\n\n"
    "Whenever you notice a moment that mattered to you — something helpful, something "
    "difficult, anything that stood out — press Mark moment (or the M key). The video pauses "
    "and you can say what was happening for you right then, and how helpful or hindering it "
    "felt.\n\nYou can take a break or stop at any time; everything you enter is saved at once."
)

# (role, t_ms, end_ms, text, hat rating, code names)
MOMENTS = (
    ("therapist", 14_000, None, "I noticed she went quiet and I wasn't sure whether to wait.", 5,
     ()),
    ("therapist", 47_500, 61_000, "I named the sadness; she looked up. That felt like contact.",
     8, ("Feeling understood",)),
    ("therapist", 102_000, None, "I pushed too fast here, I think.", 3, ("Rupture",)),
    ("therapist", 151_000, None, "We found our way back.", 7, ("Repair",)),
    ("client", 16_000, None, "I didn't know what to say and felt stupid.", 4,
     ("Painful feelings",)),
    ("client", 49_000, None, "When she said 'sad' something in me softened.", 9,
     ("Feeling understood", "Insight")),
    ("client", 104_500, 112_000, "I felt rushed, like I had to have an answer.", 2, ("Rupture",)),
    ("client", 128_000, None, "Remembering my father.", 6, ()),
)  # fmt: skip


def generate_recording(dst: Path, seconds: int = DEMO_SECONDS) -> Path:
    """A 640x360 H.264/AAC file: a moving test pattern on the left, a living pattern on the
    right (two people's movement), and a tone that pauses for 2 s every 10 s (turns of talk)."""
    left = ffmpeg.input(f"testsrc2=size=320x360:rate=25:duration={seconds}", f="lavfi")
    right = ffmpeg.input(
        "life=size=320x360:rate=25:mold=10:ratio=0.4:death_color=#1d3557:life_color=#a8dadc",
        f="lavfi",
    ).trim(duration=seconds)
    tone = ffmpeg.input(
        f"sine=frequency=220:sample_rate=48000:duration={seconds}", f="lavfi"
    ).filter("volume", volume=0, enable="lt(mod(t,10),2)")
    args = (
        ffmpeg.output(
            ffmpeg.filter([left, right], "hstack"),
            tone,
            str(dst),
            vcodec="libx264",
            preset="veryfast",
            pix_fmt="yuv420p",
            g=50,
            acodec="aac",
            audio_bitrate="96k",
            movflags="+faststart",
        )
        .overwrite_output()
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .compile()
    )
    subprocess.run(args, check=True, timeout=600)
    return dst


def seed_study(db: Session, user: User, name: str = STUDY_NAME) -> Study:
    """The demo study's settings, codebook, scales and two dyads (tests reuse it)."""
    study = studies.create_study(db, user, name)
    studies.update_study(
        db,
        study,
        user,
        {
            "description": "Sessions 3 and 5 of two therapist–client dyads (demo data).",
            "instructions": INSTRUCTIONS,
            "participants_can_code": True,
            "segment_fixed_ms": 60_000,
            "segment_min_ms": 20_000,
        },
    )
    for name, colour, key in CODES:
        studies.add_code(db, study, user, {"name": name, "colour": colour, "shortcut": key})
    studies.add_scale(
        db,
        study,
        user,
        {
            "key": "intensity",
            "name": "How strongly did you feel this?",
            "min_value": 1,
            "max_value": 5,
            "labels": {"1": "Barely", "5": "Very strongly"},
        },
    )
    studies.create_dyad(db, study, user, "01")
    studies.create_dyad(db, study, user, "02")
    db.commit()
    return study


def seed_recording(
    db: Session,
    study: Study,
    user: User,
    config: dict[str, Any],
    database: Any,
    huey: Any,
    seconds: int = DEMO_SECONDS,
) -> tuple[Recording, dict[str, str]]:
    """Generate, process and annotate dyad 01's Session 3; returns the participants' links."""
    dyad = next(d for d in study.dyads if d.code == "01")
    storage = Storage(config["RECORDINGS_DIR"])
    with tempfile.TemporaryDirectory() as tmp:
        src = generate_recording(Path(tmp) / "session3.mp4", seconds)
        rec = recordings.add_recording(
            db, storage, huey, dyad, user, "Session 3", src, "session3.mp4", move=True
        )
    jobs.run_job(database, config, recordings.latest_job(db, rec).id)
    db.expire_all()
    rec = db.get(Recording, rec.id)
    links: dict[str, str] = {}
    codes = {c.name: c.id for c in study.codes}
    for role in ("therapist", "client"):
        rs, token = recall.create_session(
            db, rec, dyad.participant(role), "self", user, days=config["INVITATION_DAYS"]
        )
        db.commit()
        links[dyad.participant(role).code] = f"/r/{token}"
        for who, t_ms, end_ms, text, hat, names in MOMENTS:
            if who != role or rec.status != "ready" or t_ms > (rec.duration_ms or 0):
                continue
            recall.create_moment(
                db,
                rs,
                {
                    "t_ms": t_ms,
                    "end_ms": min(end_ms, rec.duration_ms) if end_ms else None,
                    "text": text,
                    "ratings": {"hat": hat},
                    "codes": [codes[n] for n in names],
                },
                idempotency_key=None,
            )
    return rec, links


def ensure_demo(
    db: Session,
    user: User,
    config: dict[str, Any],
    database: Any,
    huey: Any,
    *,
    seconds: int = DEMO_SECONDS,
) -> dict:
    """Create what is missing of the demo; safe to run again (it then makes nothing new)."""
    study = db.scalar(select(Study).where(Study.name == STUDY_NAME))
    if study is None:
        study = seed_study(db, user)
    links: dict[str, str] = {}
    rec = db.scalar(select(Recording).where(Recording.study_id == study.id))
    if rec is None:
        rec, links = seed_recording(db, study, user, config, database, huey, seconds)
    return {"study": study, "recording": rec, "links": links}
