"""Benchmark: moment clips per second of video cut, with and without stream copy.

    .venv/bin/python bench/moment_clips.py [--minutes 5] [--moments 40]

Makes (once, into bench/out/, git-ignored) a 720p25 H.264/AAC playable copy with a keyframe every
2 s, like ingest's, then writes the moment-clips ZIP three ways and prints the speed as seconds of
clip written per second of wall time ("× realtime"):

* keyframe-aligned — every clip starts on a keyframe (t − pre-roll is one): stream copy;
* keyframe slack — arbitrary moment times, `keyframe_slack_ms=2000` lets each clip start up to 2 s
  earlier on a keyframe: stream copy;
* exact — arbitrary times, exact pre-roll: most clips are re-encoded (for reference).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.exports.data import ExportDyad, ExportMoment, ExportRecording, ExportStudy  # noqa: E402
from ipr.exports.moment_clips import write_moment_clips  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PRE_MS, POST_MS = 5000, 5000
TARGET = 20.0


def make_playable(minutes: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"moment-clips-{minutes}min-720p25.mp4"
    if not path.exists():
        seconds = minutes * 60
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                f"testsrc2=size=1280x720:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "50",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart",
                str(path)]  # fmt: skip
        subprocess.run(args, check=True)
    return path


def study(duration_ms: int, times: list[int]) -> ExportStudy:
    moments = tuple(
        ExportMoment(
            id=i + 1,
            lane="therapist" if i % 2 == 0 else "client",
            participant_code="T01" if i % 2 == 0 else "C01",
            t_ms=t,
            end_ms=t + 4000 if i % 3 == 0 else None,
        )
        for i, t in enumerate(times)
    )
    rec = ExportRecording(1, "Session 3", "01_Session_3.mp4", duration_ms, 25.0, moments=moments)
    return ExportStudy("Bench", dyads=(ExportDyad("01", "T01", "C01", (rec,)),))


def run(label: str, playable: Path, data: ExportStudy, slack_ms: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "clips.zip"
        start = time.perf_counter()
        planned = write_moment_clips(
            [(data.only_recording(), playable)], dst, pre_roll_ms=PRE_MS, post_roll_ms=POST_MS,
            keyframe_slack_ms=slack_ms,
        )  # fmt: skip
        wall = time.perf_counter() - start
        size = dst.stat().st_size
    video_s = sum(p.duration_ms for p in planned) / 1000
    ratio = video_s / wall
    print(
        f"| {label} | {len(planned)} | {video_s:.0f} | {wall:.2f} | {ratio:.1f} × | "
        f"{size / 1e6:.0f} MB |",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--moments", type=int, default=40)
    args = parser.parse_args()
    playable = make_playable(args.minutes)
    duration = args.minutes * 60_000
    rng = random.Random(1)
    usable = duration - 20_000
    aligned = sorted(rng.randrange(3, usable // 2000) * 2000 + PRE_MS for _ in range(args.moments))
    arbitrary = sorted(rng.randrange(PRE_MS, usable) for _ in range(args.moments))
    print(f"source: {playable.name}, {args.minutes} min, {args.moments} moments, "
          f"pre/post-roll {PRE_MS}/{POST_MS} ms")  # fmt: skip
    print("| case | clips | video s | wall s | speed | ZIP |")
    print("|---|---|---|---|---|---|")
    copy = run("keyframe-aligned (stream copy)", playable, study(duration, aligned), 0)
    run("arbitrary times, 2 s keyframe slack (stream copy)", playable, study(duration, arbitrary),
        2000)  # fmt: skip
    run("arbitrary times, exact pre-roll (re-encode)", playable, study(duration, arbitrary), 0)
    print(f"stream-copy speed {copy:.1f} × realtime; target ≥ {TARGET:.0f} ×: "
          f"{'met' if copy >= TARGET else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
