"""Benchmark: optimal matching of two lanes of 10,000 moments each, and the agreement figures.

Run from the repository root: `.venv/bin/python bench/matching.py`. Prints the best of
`--repeat` runs per scenario and how it compares with the 1 s target for 10,000 × 10,000 points.
Moments are uniformly random (seeded) over the session, so the density per scenario is stated.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.timeline import Mark, agreement, count_pairs, match_lanes  # noqa: E402

TARGET_S = 1.0
HOUR_MS = 3_600_000


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def lane(
    rng: random.Random, size: int, duration_ms: int, first_id: int, span_ms: int = 0
) -> list[Mark]:
    marks = []
    for k in range(size):
        t = rng.randrange(duration_ms - span_ms)
        end = t + rng.randrange(1000, span_ms) if span_ms else None
        marks.append(Mark(id=first_id + k, t_ms=t, end_ms=end))
    return marks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--moments", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.moments
    rng = random.Random(0)
    print(f"{n} × {n} moments, best of {args.repeat} (target {TARGET_S:.1f} s for points)")
    for label, duration_ms, tolerance_ms in (
        ("points, 1 h session, τ 5 s", HOUR_MS, 5000),
        ("points, 1 h session, τ 1 s", HOUR_MS, 1000),
        ("points, 10 min session, τ 5 s (dense)", 600_000, 5000),
    ):
        therapist = lane(rng, n, duration_ms, 1)
        client = lane(rng, n, duration_ms, 10 * n)
        seconds = best(
            lambda t=therapist, c=client, tol=tolerance_ms: match_lanes(t, c, tol), args.repeat
        )
        pairs = len(match_lanes(therapist, client, tolerance_ms).pairs)
        ratio = seconds / TARGET_S
        print(f"  match_lanes  {label:<40} {seconds:7.3f} s  ({ratio:.2f} × target, {pairs} pairs)")
        seconds = best(
            lambda t=therapist, c=client, tol=tolerance_ms: count_pairs(t, c, tol), args.repeat
        )
        print(f"  count_pairs  {label:<40} {seconds:7.3f} s")
    for size in (1000, n):
        therapist = lane(rng, size, HOUR_MS, 1, span_ms=20_000)
        client = lane(rng, size, HOUR_MS, 10 * size, span_ms=20_000)
        label = f"spans 1–20 s, {size} × {size}, 1 h, τ 5 s"
        seconds = best(lambda t=therapist, c=client: match_lanes(t, c, 5000), 1)
        print(f"  match_lanes  {label:<40} {seconds:7.3f} s  (single run)")
    therapist = lane(rng, 50, HOUR_MS, 1)
    client = lane(rng, 50, HOUR_MS, 1000)
    seconds = best(
        lambda: agreement(therapist, client, 5000, duration_ms=HOUR_MS, n_shifts=1000),
        args.repeat,
    )
    print(f"  agreement    {'50 × 50 points, 1 h, 1000 shifts':<40} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
