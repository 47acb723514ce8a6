"""Benchmark: the motion-energy part of the analysis decode with drawn regions.

Run from the repository root: `.venv/bin/python bench/motion.py`. Feeds 50 minutes' worth of
160×90 grey frames at 25 fps (75,000 frames, seeded noise with a moving block, in batches of 64
as the decoder does) through `FrameAnalyzer` with the default two halves and with three drawn
regions (therapist, client, background), and times `motion_energy` (background subtraction,
missing samples, rounding). CPU seconds of this process, best of 3 (the machine is shared).
The whole ingest of such a session costs ~74 s wall on the remux path (docs/benchmarks.md), so
the figure to compare is the extra CPU per session.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.media.analysis import DEFAULT_REGIONS, FrameAnalyzer, Region, motion_energy  # noqa: E402

FRAMES = 75_000
DRAWN = (
    Region("therapist", 0.05, 0.1, 0.35, 0.85),
    Region("client", 0.55, 0.1, 0.4, 0.85),
    Region("background", 0.42, 0.0, 0.1, 0.3),
)


def batches() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 90, 160), dtype=np.uint8)
    out = []
    for k in range(FRAMES // 64):
        b = base.copy()
        b[:, 20:50, (k % 100) : (k % 100) + 30] = 255
        out.append(b)
    return out


def run(regions: tuple[Region, ...], data: list[np.ndarray]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        fa = FrameAnalyzer(160, 90, regions)
        for b in data:
            fa.feed(b)
        motion_energy(25.0, fa.motion, [r.name for r in regions], fa.repeated)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    data = batches()
    halves = run(DEFAULT_REGIONS, data)
    drawn = run(DRAWN, data)
    print(f"frames={len(data) * 64}")
    print(f"default halves: {halves:.2f} CPU s")
    print(f"three drawn regions: {drawn:.2f} CPU s ({drawn - halves:+.2f} s)")


if __name__ == "__main__":
    main()
