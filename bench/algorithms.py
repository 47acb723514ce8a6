"""Benchmark: the algorithms of issue 12 part 2, before (reference code) and after, in one run.

Run from the repository root: `.venv/bin/python bench/algorithms.py`. Each row times the
previous implementation (tests/reference_algorithms.py) and the current one on the same seeded
input, as CPU seconds of this process (best of `repeat`; the machine is shared, so CPU time is
steadier than wall time), and checks that both give the same result. `rows()` is what
bench/study_scale.py imports: dicts with name, before_s, after_s and goal (seconds, or None
where the issue names no figure).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipr import timeline  # noqa: E402
from ipr.synchrony import surrogate_baseline  # noqa: E402
from ipr.timeline import Mark, chance_baseline, match_lanes  # noqa: E402
from tests import reference_algorithms as ref  # noqa: E402

HOUR_MS = 3_600_000
TOLERANCE_MS = 5000


def cpu_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU time of `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def lane(
    rng: np.random.Generator, size: int, first_id: int, spans: bool, span_every: int = 2
) -> list[Mark]:
    """Moments over an hour; with spans, every `span_every`-th one lasts 1–20 s."""
    marks = []
    for k in range(size):
        t = int(rng.integers(0, HOUR_MS - 20_000))
        end = t + int(rng.integers(1000, 20_000)) if spans and k % span_every == 0 else None
        marks.append(Mark(first_id + k, t, end))
    return marks


def _chance_row(name: str, spans: bool, goal: float, repeat: int) -> dict:
    rng = np.random.default_rng(1)
    therapist, client = lane(rng, 500, 1, spans), lane(rng, 500, 1001, spans)
    kwargs = dict(duration_ms=HOUR_MS, n_shifts=1000, seed=0)
    before = ref.chance_baseline(therapist, client, TOLERANCE_MS, **kwargs)
    after = chance_baseline(therapist, client, TOLERANCE_MS, **kwargs)  # compiles the kernel
    assert after == before, "the fast chance baseline differs from the reference"
    return {
        "name": name,
        "before_s": cpu_seconds(
            lambda: ref.chance_baseline(therapist, client, TOLERANCE_MS, **kwargs), 1
        ),
        "after_s": cpu_seconds(
            lambda: chance_baseline(therapist, client, TOLERANCE_MS, **kwargs), repeat
        ),
        "goal": goal,
    }


def _compile_row() -> dict:
    """The kernels are made ready once per process, on its first chance baseline."""
    from ipr import shift_counts

    shift_counts._compiled.clear()
    start = time.process_time()
    shift_counts.shifted_point_counts([0], [0], np.array([0]), 10, 0)
    shift_counts.shifted_span_counts([(0, 1)], [(0, 1)], np.array([0]), 10, 0)
    return {
        "name": "Chance kernels ready: numba import + compile or cache load",
        "before_s": 0.0,
        "after_s": time.process_time() - start,
        "goal": None,
    }


def _matching_row(repeat: int) -> dict:
    rng = np.random.default_rng(2)
    therapist = lane(rng, 10_000, 1, spans=True, span_every=1)
    client = lane(rng, 10_000, 100_001, spans=True, span_every=1)
    after = match_lanes(therapist, client, TOLERANCE_MS)
    with patch.object(timeline, "_match_general", ref.match_general):
        before = match_lanes(therapist, client, TOLERANCE_MS)
        before_s = cpu_seconds(lambda: match_lanes(therapist, client, TOLERANCE_MS), 1)
    assert after == before, "the span matching differs from the reference"
    return {
        "name": "Exact matching, 10k × 10k spans (1–20 s, 1 h, τ 5 s)",
        "before_s": before_s,
        "after_s": cpu_seconds(lambda: match_lanes(therapist, client, TOLERANCE_MS), repeat),
        "goal": 1.0,
    }


def _surrogate_row(repeat: int) -> dict:
    """100 segment-shuffle surrogates of a 10-minute session at 25 Hz (MEA-like series)."""
    rng = np.random.default_rng(3)
    left = rng.gamma(0.6, 40.0, size=15_000)
    right = 0.5 * np.roll(left, 20) + rng.gamma(0.6, 40.0, size=left.size)
    after = surrogate_baseline(left, right, 25.0, n=100, seed=0)
    assert after == ref.surrogate_baseline(left, right, 25.0, n=100, seed=0)
    return {
        "name": "Synchrony surrogates, 100 × 10 min at 25 Hz",
        "before_s": cpu_seconds(
            lambda: ref.surrogate_baseline(left, right, 25.0, n=100, seed=0), repeat
        ),
        "after_s": cpu_seconds(
            lambda: surrogate_baseline(left, right, 25.0, n=100, seed=0), repeat
        ),
        "goal": None,
    }


def rows(repeat: int = 5) -> list[dict]:
    """Every row: name, before_s, after_s (CPU seconds) and goal (seconds or None)."""
    return [
        _compile_row(),
        _chance_row(
            "Chance baseline, 1,000 shifts, 500 × 500, half of them spans",
            spans=True,
            goal=0.050,
            repeat=repeat,
        ),
        _chance_row("Chance baseline, 1,000 shifts, 500 × 500 points", False, 0.030, repeat),
        _matching_row(min(repeat, 3)),
        _surrogate_row(min(repeat, 2)),
    ]


def main() -> None:
    print(f"{'measurement':<62} {'before s':>9} {'after s':>9} {'goal s':>7}")
    for row in rows():
        goal = "" if row["goal"] is None else f"{row['goal']:.3f}"
        verdict = ""
        if row["goal"] is not None:
            verdict = "met" if row["after_s"] <= row["goal"] else "NOT met"
        print(f"{row['name']:<62} {row['before_s']:9.3f} {row['after_s']:9.4f} {goal:>7} {verdict}")


if __name__ == "__main__":
    main()
