"""Benchmark: every export on a synthetic study of 24 recordings × 200 moments.

Run from the repository root: `.venv/bin/python bench/exports.py`. Prints the best of
`--repeat` runs per format and the bundle against its 2 s target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.exports import (  # noqa: E402
    to_bundle,
    to_csv,
    to_eaf,
    to_json,
    to_png,
    to_srt,
    to_svg,
    to_textgrid,
    to_vtt,
    to_xlsx,
)
from ipr.exports.sample import synthetic_study  # noqa: E402

TARGET_S = 2.0


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recordings", type=int, default=24)
    parser.add_argument("--moments", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    study = synthetic_study(args.recordings, args.moments)
    contexts = list(study.recordings())
    print(f"{args.recordings} recordings × {args.moments} moments, best of {args.repeat}")
    for name, fn in (("csv", to_csv), ("xlsx", to_xlsx), ("json", to_json)):
        print(f"  {name:<10} {best(lambda fn=fn: fn(study), args.repeat):7.3f} s")
    for name, fn in (
        ("eaf", to_eaf),
        ("textgrid", to_textgrid),
        ("vtt", to_vtt),
        ("srt", to_srt),
        ("svg", to_svg),
        ("png", to_png),
    ):
        seconds = best(lambda fn=fn: [fn(c) for c in contexts], args.repeat)
        print(f"  {name:<10} {seconds:7.3f} s (all recordings)")
    for label, figures in (("bundle", True), ("bundle, no figures", False)):
        cpu_start = time.process_time()
        seconds = best(lambda f=figures: to_bundle(study, figures=f), args.repeat)
        cpu = (time.process_time() - cpu_start) / args.repeat
        verdict = "meets" if seconds < TARGET_S else "MISSES"
        ratio = seconds / TARGET_S
        print(
            f"  {label:<20} {seconds:7.3f} s = {ratio:.2f} × the 2 s target ({verdict}); "
            f"CPU {cpu:.3f} s per run (both threads)"
        )


if __name__ == "__main__":
    main()
