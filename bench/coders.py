"""Benchmark: agreement between coders on a dense recording, as the timeline page computes it.

Run from the repository root: `.venv/bin/python bench/coders.py`. Two lanes of `--moments`
moments in a 50-minute session, each coded by the participant and two researchers with two of
`--codes` codes per moment: six comparisons, each per code. Prints the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr.coders import Layer, coder_agreement  # noqa: E402
from ipr.timeline import Mark  # noqa: E402

DURATION_MS = 3_000_000


def layers(n_moments: int, n_codes: int, seed: int = 0) -> list[Layer]:
    rng = random.Random(seed)
    codes = [f"code{i}" for i in range(n_codes)]
    out = []
    for lane in ("therapist", "client"):
        times = sorted(rng.sample(range(DURATION_MS), n_moments))
        for coder in ("participant", "a@lab.org", "b@lab.org"):
            marks = tuple(
                Mark(i, t, codes=tuple(rng.sample(codes, 2))) for i, t in enumerate(times)
            )
            out.append(Layer(lane, coder, marks))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--moments", type=int, default=500)
    parser.add_argument("--codes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = layers(args.moments, args.codes)
    codes = [f"code{i}" for i in range(args.codes)]
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = coder_agreement(data, tolerance_ms=5000, duration_ms=DURATION_MS, codes=codes)
        times.append(time.perf_counter() - start)
    print(
        f"{args.moments} moments per lane, 3 layers per lane, {args.codes} codes: "
        f"{len(out['comparisons'])} comparisons in {min(times):.3f} s (best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
