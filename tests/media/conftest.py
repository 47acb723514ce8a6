"""Fixtures for the media tests: the shared corpus, small generated media, cached ingests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ipr.media import IngestResult, IngestSettings, ingest

# ../shared/corpus beside the checkout (or beside a folder of work trees holding it).
CORPUS = next(
    (d / "shared" / "corpus" for d in Path(__file__).resolve().parents[3:5]
     if (d / "shared" / "corpus").is_dir()),
    Path(__file__).resolve().parents[3] / "shared" / "corpus",
)  # fmt: skip
SHORT_CLIPS = IngestSettings(fixed_ms=3_000, min_clip_ms=1_000, max_clip_ms=6_000)


def ffprobe_json(path: Path, *extra: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *extra, str(path)],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)


def lavfi(dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(dst)], check=True)
    return dst


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus not present")
    return CORPUS


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def left_moves(media_dir: Path) -> Path:
    """320x120, 4 s: a moving test pattern on the left half, a flat grey right half."""
    return lavfi(
        media_dir / "left_moves.mp4",
        "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=4",
        "-f", "lavfi", "-i", "color=c=gray:s=160x120:r=25:d=4",
        "-filter_complex", "[0:v][1:v]hstack=inputs=2,format=yuv420p[v]",
        "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast",
    )  # fmt: skip


@pytest.fixture(scope="session")
def tone_with_pauses(media_dir: Path) -> Path:
    """6 s H.264/AAC at 25 fps with tagged metadata; the tone pauses at 2-3 s and 4.5-5 s."""
    return lavfi(
        media_dir / "tone.mp4",
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=6",
        "-f", "lavfi", "-i", "sine=f=440:d=6:sample_rate=48000",
        "-af", "volume=enable='between(t,2,3)+between(t,4.5,5)':volume=0",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25",
        "-c:a", "aac", "-shortest",
        "-metadata", "creation_time=2024-01-02T03:04:05Z",
        "-metadata", "location=+48.8577+002.2950/",
        "-metadata", "title=T05 session 3",
        "-metadata:s:v", "handler_name=iPhone camera",
    )  # fmt: skip


_INGESTS: dict[str, IngestResult] = {}


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory):
    """Ingest a file once per session; returns (result, out_dir)."""
    root = tmp_path_factory.mktemp("ingested")

    def get(src: Path, settings: IngestSettings = SHORT_CLIPS) -> tuple[IngestResult, Path]:
        out = root / f"{src.parent.name}-{src.stem}"
        key = str(out)
        if key not in _INGESTS:
            _INGESTS[key] = ingest(src, out, settings)
        return _INGESTS[key], out

    return get
