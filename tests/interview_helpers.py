"""The recall interview's test data: a tone made by ffmpeg, the constructed clocks of a
researcher-led session and a transcript whose every utterance's stop is known.

The ``interview_wav`` and ``interview_env`` fixtures (tests/conftest.py) build on these."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

# The audio runs 0–10 000 ms; with `events` the stops (interview segments) are a: 2000–4000,
# b: 6000–8000 and c: 9000–10 000 (the last runs to the end of the audio).
VTT = """WEBVTT

00:00:00.500 --> 00:00:01.500
Shall we start?

00:00:02.000 --> 00:00:03.000
What was happening for you there?

00:00:03.999 --> 00:00:04.000
I felt stuck.

00:00:04.000 --> 00:00:05.000
Let's go on.

00:00:06.200 --> 00:00:07.000
I noticed the pause.

00:00:09.500 --> 00:00:10.000
That was the moment.
"""


def tone(out: Path, seconds: int, *encode: str) -> bytes:
    """``seconds`` of a 440 Hz tone from ffmpeg's lavfi source, written to ``out`` with the
    ``encode`` arguments (codec, rate, container); its bytes."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi",
         "-i", f"sine=frequency=440:duration={seconds}", *encode, str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def events(a: int, b: int, c: int) -> list[dict]:
    """Stops at moments a, b, c; the audio runs 0–10 000 ms."""
    return [
        {"type": "play", "video_ms": 0, "audio_ms": 0},
        {"type": "mark", "video_ms": 5000, "audio_ms": 2000, "moment_id": a},
        {"type": "pause", "video_ms": 5000, "audio_ms": 2000, "moment_id": a},
        {"type": "play", "video_ms": 5000, "audio_ms": 4000},
        {"type": "pause", "video_ms": 9000, "audio_ms": 6000, "moment_id": b},
        {"type": "seek", "video_ms": 8000, "audio_ms": 6500},
        {"type": "play", "video_ms": 8000, "audio_ms": 8000},
        {"type": "mark", "video_ms": 12000, "audio_ms": 9000, "moment_id": c},
    ]


def upload(env, wav: bytes, evs, rs_id=None, name="interview.wav"):
    """Attach interview audio with its player events through the API."""
    data = {"file": (io.BytesIO(wav), name), "events": json.dumps(evs)}
    url = f"/api/v1/recall-sessions/{rs_id or env['rs']['id']}/interview-audio"
    return env["api"]("POST", url, data=data, content_type="multipart/form-data")
