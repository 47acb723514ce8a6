"""Benchmark: whole ingest vs plain decode, transcode and PySceneDetect, measured in one run.

    .venv/bin/python bench/ingest.py [--minutes 50]

Generates a 720p25 H.264/AAC MP4 once into bench/out/ (git-ignored), plus a VFR copy that must be
transcoded, then prints the times and the ratios the media issue sets as targets.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.media import IngestSettings, ingest  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def sh(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t


def make_source(minutes: int) -> tuple[Path, Path]:
    OUT.mkdir(exist_ok=True)
    src = OUT / f"session-{minutes}min-720p25.mp4"
    vfr = OUT / f"session-{minutes}min-720p-vfr.mp4"
    seconds = str(minutes * 60)
    if not src.exists():
        sh(["ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=25:d={seconds}",
            "-f", "lavfi", "-i", f"sine=f=300:d={seconds}:sample_rate=48000",
            "-af", "volume=enable='lt(mod(t,7),1.5)':volume=0",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "50",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", str(src)])  # fmt: skip
    if not vfr.exists():  # drop every third frame: a variable-frame-rate phone-like file
        sh(["ffmpeg", "-v", "error", "-y", "-i", str(src),
            "-vf", "select='mod(n\\,3)'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
            "-c:a", "copy", str(vfr)])  # fmt: skip
    return src, vfr


def scenedetect_time(path: Path) -> float | None:
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError:
        return None
    t = time.perf_counter()
    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=50)
    args = parser.parse_args()
    src, vfr = make_source(args.minutes)
    settings = IngestSettings()
    decode = sh(["ffmpeg", "-v", "error", "-i", str(src), "-an", "-f", "null", "-"])
    out = OUT / "ingest-remux"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    remux_result = ingest(src, out, settings)
    remux_ingest = time.perf_counter() - t
    assert remux_result.remuxed
    transcode = sh(["ffmpeg", "-v", "error", "-y", "-i", str(vfr),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-fps_mode", "cfr",
                    "-r", "25", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
                    str(OUT / "plain-transcode.mp4")])  # fmt: skip
    out = OUT / "ingest-transcode"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    tr_result = ingest(vfr, out, settings)
    transcode_ingest = time.perf_counter() - t
    assert not tr_result.remuxed
    t = time.perf_counter()
    from ipr.media import compute_motion_energy
    from ipr.media.analysis import DEFAULT_REGIONS

    compute_motion_energy(OUT / "ingest-remux" / "playable.mp4", list(DEFAULT_REGIONS))
    analysis_only = time.perf_counter() - t
    sd = scenedetect_time(src)
    print(f"file: {src.name} ({args.minutes} min, {src.stat().st_size / 1e6:.0f} MB)")
    print(f"plain decode (ffmpeg -an -f null):  {decode:8.1f} s")
    print(f"ingest, remux path:                 {remux_ingest:8.1f} s  "
          f"ratio {remux_ingest / decode:.2f} (target <= 1.30)")  # fmt: skip
    print(f"plain transcode of the VFR file:    {transcode:8.1f} s")
    print(f"ingest, transcode path:             {transcode_ingest:8.1f} s  "
          f"ratio {transcode_ingest / transcode:.2f} (target <= 1.15)")  # fmt: skip
    print(f"analysis decode alone (motion run): {analysis_only:8.1f} s")
    if sd is None:
        print("PySceneDetect not installed: pip install --no-deps scenedetect")
    else:
        print(f"PySceneDetect ContentDetector:      {sd:8.1f} s  "
              f"speed-up of our whole ingest {sd / remux_ingest:.2f}x (target >= 1.3)")  # fmt: skip


if __name__ == "__main__":
    main()
