"""Benchmark: whole ingest vs plain decode, transcode and PySceneDetect, measured in one run.

    .venv/bin/python bench/ingest.py [--minutes 50]

Generates a 720p25 H.264/AAC MP4 once into bench/out/ (git-ignored), plus a VFR copy that must be
transcoded, then prints wall and CPU times and the ratios the media issue sets as targets. Each
line is printed as soon as it is measured (the 50-minute run takes the better part of an hour).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.media import DEFAULT_REGIONS, IngestSettings, compute_motion_energy, ingest  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def cpu_s() -> float:
    """CPU seconds used so far by this process and its finished children (ffmpeg runs)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    c, t = cpu_s(), time.perf_counter()
    fn()
    return time.perf_counter() - t, cpu_s() - c


def sh(args: list[str]) -> None:
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL)


def make_source(minutes: int) -> Path:
    OUT.mkdir(exist_ok=True)
    src = OUT / f"session-{minutes}min-720p25.mp4"
    if not src.exists():
        seconds = str(minutes * 60)
        sh(["ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=25:d={seconds}",
            "-f", "lavfi", "-i", f"sine=f=300:d={seconds}:sample_rate=48000",
            "-af", "volume=enable='lt(mod(t,7),1.5)':volume=0",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "50",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", str(src)])  # fmt: skip
    return src


def make_vfr(src: Path, minutes: int) -> Path:
    """Drop every third frame: a variable-frame-rate phone-like file that must be transcoded."""
    vfr = OUT / f"session-{minutes}min-720p-vfr.mp4"
    if not vfr.exists():
        sh(["ffmpeg", "-v", "error", "-y", "-i", str(src),
            "-vf", "select='mod(n\\,3)'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
            "-c:a", "copy", str(vfr)])  # fmt: skip
    return vfr


def scenedetect(path: Path) -> None:
    from scenedetect import ContentDetector, SceneManager, open_video

    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)


def report(label: str, wall_cpu: tuple[float, float], extra: str = "") -> None:
    wall, cpu = wall_cpu
    print(f"{label:<40} wall {wall:8.1f} s  cpu {cpu:8.1f} s  {extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=50)
    parser.add_argument("--skip-transcode", action="store_true", help="remux path only")
    args = parser.parse_args()
    src = make_source(args.minutes)
    print(f"file: {src.name} ({args.minutes} min, {src.stat().st_size / 1e6:.0f} MB), "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    settings = IngestSettings()
    decode = timed(lambda: sh(["ffmpeg", "-v", "error", "-i", str(src), "-an", "-f", "null", "-"]))
    report("plain decode (ffmpeg -an -f null)", decode)
    out = OUT / "ingest-remux"
    shutil.rmtree(out, ignore_errors=True)
    results = {}
    remux = timed(lambda: results.setdefault("remux", ingest(src, out, settings)))
    assert results["remux"].remuxed
    report("ingest, remux path", remux, f"ratio {remux[0] / decode[0]:.2f} (target <= 1.30)")
    playable = out / "playable.mp4"
    analysis = timed(lambda: compute_motion_energy(playable, list(DEFAULT_REGIONS)))
    report("analysis decode alone (motion re-run)", analysis)
    try:
        sd = timed(lambda: scenedetect(src))
    except ImportError:
        print("PySceneDetect not installed: pip install --no-deps scenedetect", flush=True)
    else:
        wall = f"whole ingest {sd[0] / remux[0]:.2f}x, analysis {sd[0] / analysis[0]:.2f}x"
        cpu = f"cpu {sd[1] / remux[1]:.2f}x / {sd[1] / analysis[1]:.2f}x"
        report("PySceneDetect ContentDetector", sd, f"speed-up: {wall} ({cpu}) (target >= 1.3)")
    if args.skip_transcode:
        return
    vfr = make_vfr(src, args.minutes)
    transcode = timed(lambda: sh(["ffmpeg", "-v", "error", "-y", "-i", str(vfr),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-fps_mode", "cfr",
                    "-r", "25", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
                    str(OUT / "plain-transcode.mp4")]))  # fmt: skip
    report("plain transcode of the VFR file", transcode)
    out = OUT / "ingest-transcode"
    shutil.rmtree(out, ignore_errors=True)
    tr = timed(lambda: results.setdefault("transcode", ingest(vfr, out, settings)))
    assert not results["transcode"].remuxed
    report("ingest, transcode path", tr, f"ratio {tr[0] / transcode[0]:.2f} (target <= 1.15)")
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
