"""Benchmark: whole ingest vs plain decode, transcode and PySceneDetect, measured in one run.

    .venv/bin/python bench/ingest.py [--minutes 50] [--skip-long | --skip-short] [--skip-transcode]
                                     [--regions halves|drawn] [--repeat 3]

Generates 720p25 H.264/AAC MP4s once into bench/out/ (git-ignored): a 10-second and a 2-minute
file whose video starts at 66 ms (its first keyframe is not at 0), the long file (default 50
minutes) and a VFR copy of it that must be transcoded. Prints wall and CPU times and the ratios
the media issues set as targets, each line as soon as it is measured (the 50-minute part takes
the better part of an hour; ``--skip-long`` runs only the short files). The fixed per-ingest
overhead is split by process (ffprobe/ffmpeg runs, the decode child, this process).
``--regions drawn`` measures with a researcher's regions set (``DRAWN``: therapist, client and a
background region, subtracted), as a recording with drawn or study-default regions is ingested;
the default is the two halves. Each long-file target is measured as ``--repeat`` pairs of
baseline and ingest run alternately, with each pair's ratio and the median printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.media import (  # noqa: E402
    DEFAULT_REGIONS,
    IngestSettings,
    Region,
    compute_motion_energy,
    ingest,
)

OUT = Path(__file__).resolve().parent / "out"

DRAWN = (
    Region("therapist", 0.05, 0.1, 0.4, 0.85),
    Region("client", 0.55, 0.1, 0.4, 0.85),
    Region("background", 0.42, 0.0, 0.16, 0.3),
)
"""Regions as a researcher draws them: one per person and one on the background."""


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


def make_late_source(seconds: int) -> Path:
    """Like make_source, but the video starts at 66 ms (AAC priming puts the audio at 44 ms)."""
    OUT.mkdir(exist_ok=True)
    src = OUT / f"late-{seconds}s-720p25.mp4"
    if not src.exists():
        sh(["ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=25:d={seconds}",
            "-f", "lavfi", "-i", f"sine=f=300:d={seconds}:sample_rate=48000",
            "-af", "volume=enable='lt(mod(t,7),1.5)':volume=0",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "50",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
            "-output_ts_offset", "0.066", str(src)])  # fmt: skip
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


def plain_decode(src: Path) -> tuple[float, float]:
    return timed(lambda: sh(["ffmpeg", "-v", "error", "-i", str(src), "-an", "-f", "null", "-"]))


def first_video_packet(path: Path) -> tuple[str, str]:
    """(pts_time, size) of the first video packet: equal in a clip and its source = copied."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
         "-show_entries", "packet=pts_time,size", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    pts, size = out[0].split(",")
    return pts, size


class StepCosts:
    """CPU of every process one ingest starts, by command (children are reaped one at a time
    in ``_run.run`` and ``StreamingRun.finish``, so a getrusage difference around each is it)."""

    def __init__(self) -> None:
        from ipr.media import _run

        self.rows: list[tuple[str, float]] = []
        self._run, self._finish = _run.run, _run.StreamingRun.finish
        costs = self

        def run(args, limits):  # noqa: ANN001, ANN202
            before = children_cpu()
            done = costs._run(args, limits)
            costs.rows.append((describe(args), children_cpu() - before))
            return done

        def finish(self, cancelled=False):  # noqa: ANN001, ANN202
            before = children_cpu()
            rc = costs._finish(self, cancelled)
            costs.rows.append((describe(self.proc.args), children_cpu() - before))
            return rc

        _run.StreamingRun.finish = finish
        for name, module in list(sys.modules.items()):
            if name.startswith("ipr.media") and getattr(module, "run", None) is self._run:
                module.run = run


def children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def self_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def describe(args: list[str]) -> str:
    if "ipr.media.decode" in args:
        return "decode child (python -m ipr.media.decode)"
    name = Path(args[0]).name
    if name == "ffprobe":
        return "ffprobe (" + next((a for a in args if a.startswith(("format=", "packet="))),
                                  "-show_format -show_streams") + ")"  # fmt: skip
    if any(a == "segment" for a in args) or "copy" in args:
        return "ffmpeg stream copy (+ audio PCM, clips)"
    if "image2" in args:
        return "ffmpeg thumbnail"
    return "ffmpeg other"


def paired(
    what: str,
    baseline: Callable[[], tuple[float, float]],
    fn: Callable[[], object],
    repeat: int,
    label: str,
    target: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The baseline and the ingest run alternately ``repeat`` times; each pair's ratio and
    the median ratio. A single pair varies by +-5 % on a quiet 2-core machine (the plain
    transcode alone took 137-145 s in one sitting); alternating keeps slow drifts (page cache,
    other load) out of the ratio. Returns the median pair's (baseline, ingest) times."""
    pairs = []
    for i in range(repeat):
        base = baseline()
        report(f"{label} [{i + 1}/{repeat}]", base)
        run = timed(fn)
        report(f"ingest, {what} [{i + 1}/{repeat}]", run,
               f"ratio wall {run[0] / base[0]:.3f}, cpu {run[1] / base[1]:.3f}")  # fmt: skip
        pairs.append((run[0] / base[0], run[1] / base[1], base, run))
    walls = sorted(p[0] for p in pairs)
    cpus = sorted(p[1] for p in pairs)
    mid = sorted(pairs)[(repeat - 1) // 2]
    print(f"ingest, {what}: median ratio wall {statistics.median(walls):.3f} "
          f"(range {walls[0]:.3f}-{walls[-1]:.3f}), cpu {statistics.median(cpus):.3f} "
          f"(target <= {target:.2f} x, wall)", flush=True)  # fmt: skip
    return mid[2], mid[3]


def short_files(settings: IngestSettings) -> None:
    """The 2-minute file starting at 66 ms, and the fixed overhead of one ingest."""
    cold = subprocess.run(
        [sys.executable, "-c",
         "import resource, time; import ipr.media, scipy.signal; "
         "r = resource.getrusage(resource.RUSAGE_SELF); print(r.ru_utime + r.ru_stime)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    ).stdout  # fmt: skip
    print(f"once per worker process: python + import ipr.media + scipy.signal: cpu "
          f"{float(cold):.2f} s", flush=True)  # fmt: skip
    short, two = make_late_source(10), make_late_source(120)
    ingest(short, OUT / "warm-up", settings)  # imports and caches, as in a running worker
    costs = StepCosts()
    for src, label in ((two, "2 min, video from 66 ms"), (short, "10 s, video from 66 ms")):
        decode = plain_decode(src)
        report(f"plain decode ({label})", decode)
        out = OUT / f"ingest-{src.stem}"
        runs = []
        for _ in range(3):
            shutil.rmtree(out, ignore_errors=True)
            costs.rows.clear()
            s0 = self_cpu()
            wall_cpu = timed(lambda src=src, out=out: ingest(src, out, settings))
            runs.append((wall_cpu, list(costs.rows), self_cpu() - s0))
        runs.sort(key=lambda r: r[0][1])
        (wall, cpu), rows, own = runs[1]  # the median by CPU
        copied = first_video_packet(out / "clips" / "001.mp4") == first_video_packet(
            out / "playable.mp4"
        )
        report(f"ingest ({label}), median of 3", (wall, cpu),
               f"ratio wall {wall / decode[0]:.2f}, cpu {cpu / decode[1]:.2f} x decode; "
               f"first clip {'copied' if copied else 'RE-ENCODED'}")  # fmt: skip
        for what, c in rows:
            print(f"    {what:<58} cpu {c:6.2f} s", flush=True)
        print(f"    {'this process (NumPy analysis, JSON, sprite)':<58} cpu {own:6.2f} s")
        if src == short:
            print(f"fixed overhead of one ingest (10 s file, CPU beyond a plain decode): "
                  f"{cpu - decode[1]:.2f} s", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=50)
    parser.add_argument("--skip-transcode", action="store_true", help="remux path only")
    parser.add_argument("--skip-long", action="store_true", help="only the short files")
    parser.add_argument(
        "--repeat", type=int, default=3, help="baseline/ingest pairs per path (median ratio)"
    )
    parser.add_argument("--skip-short", action="store_true", help="only the long file")
    parser.add_argument(
        "--regions", choices=("halves", "drawn"), default="halves", help="halves, or DRAWN"
    )
    args = parser.parse_args()
    regions = DRAWN if args.regions == "drawn" else DEFAULT_REGIONS
    settings = IngestSettings(regions=regions)
    print(f"regions: {', '.join(r.name for r in regions)}", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    if not args.skip_short:
        short_files(settings)  # warms up as a running worker is
    else:
        # a running worker has imported and initialised everything (scipy.signal, OpenCV,
        # the JPEG writer): without this the first pair paid for it (0.3-0.5 s)
        ingest(make_late_source(10), OUT / "warm-up", settings)
    if args.skip_long:
        return
    src = make_source(args.minutes)
    print(f"file: {src.name} ({args.minutes} min, {src.stat().st_size / 1e6:.0f} MB), "
          f"load average: {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    out = OUT / "ingest-remux"
    results = {}

    def remux_ingest() -> None:
        shutil.rmtree(out, ignore_errors=True)
        results["remux"] = ingest(src, out, settings)

    decode, remux = paired("remux path", lambda: plain_decode(src), remux_ingest, args.repeat,
                           "plain decode (ffmpeg -an -f null)", 1.30)  # fmt: skip
    assert results["remux"].remuxed
    playable = out / "playable.mp4"
    analysis = timed(lambda: compute_motion_energy(playable, list(regions)))
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
    tout = OUT / "ingest-transcode"

    def plain_transcode() -> None:
        sh(["ffmpeg", "-v", "error", "-y", "-i", str(vfr),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-fps_mode", "cfr",
            "-r", "25", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
            str(OUT / "plain-transcode.mp4")])  # fmt: skip

    def transcode_ingest() -> None:
        shutil.rmtree(tout, ignore_errors=True)
        results["transcode"] = ingest(vfr, tout, settings)

    paired("transcode path", lambda: timed(plain_transcode), transcode_ingest, args.repeat,
           "plain transcode of the VFR file", 1.15)  # fmt: skip
    assert not results["transcode"].remuxed
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
