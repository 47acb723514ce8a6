"""Synthetic studies of any size, for the export benchmark and for trying exports by hand.

Deterministic for a seed, so a benchmark run measures the same data every time.
"""

from __future__ import annotations

import random

from ipr.exports.data import (
    Clip,
    Code,
    ExportDyad,
    ExportMoment,
    ExportRecording,
    ExportStudy,
    Pair,
    Scale,
)

CODEBOOK = (
    Code("insight", "Insight", "#1b9e77", "i"),
    Code("stuck", "Feeling stuck", "#d95f02", "s"),
    Code("alliance", "Alliance rupture", "#7570b3", "a"),
    Code("relief", "Relief", "#66a61e", "r"),
)
SCALES = (
    Scale(
        "hat",
        "Helpful Aspects of Therapy",
        1,
        9,
        {1: "extremely hindering", 9: "extremely helpful"},
    ),
    Scale("intensity", "Intensity", 1, 5),
)


def synthetic_study(recordings: int, moments: int, *, seed: int = 1) -> ExportStudy:
    """`recordings` sessions (two per dyad) of 50 minutes with `moments` moments each."""
    rng = random.Random(seed)
    dyads = []
    next_id = 1
    for d in range((recordings + 1) // 2):
        dyad_code = f"D{d + 1:02d}"
        recs = []
        for s in range(min(2, recordings - 2 * d)):
            duration = 3_000_000
            items = []
            for i in range(moments):
                lane = "therapist" if i % 2 == 0 else "client"
                t = rng.randrange(0, duration - 20_000)
                span = rng.random() < 0.3
                end = t + rng.randrange(2_000, 20_000) if span else None
                items.append(
                    ExportMoment(
                        id=next_id,
                        lane=lane,
                        participant_code=("T" if lane == "therapist" else "C") + f"{d + 1:02d}",
                        t_ms=t,
                        end_ms=end,
                        peaks_ms=((t + end) // 2,) if end else (),
                        text=rng.choice(
                            ["I felt stuck here", "=she understood", "relief, finally"]
                        ),
                        codes=tuple(rng.sample([c.key for c in CODEBOOK], rng.randrange(0, 3))),
                        ratings={"hat": rng.randrange(1, 10)},
                        voice_note=rng.random() < 0.1,
                    )
                )
                next_id += 1
            ther = [m for m in items if m.lane == "therapist"]
            cli = [m for m in items if m.lane == "client"]
            pairs = [
                Pair(a.id, b.id, b.t_ms - a.t_ms) for a, b in zip(ther[::4], cli[::4], strict=False)
            ]
            recs.append(
                ExportRecording(
                    id=f"{dyad_code}-{s + 3}",
                    session_label=f"session {s + 3}",
                    media_filename=f"{dyad_code.lower()}-s{s + 3}.mp4",
                    duration_ms=duration,
                    fps=25.0,
                    clips=tuple(
                        Clip(i + 1, i * 60_000, min((i + 1) * 60_000, duration)) for i in range(50)
                    ),
                    moments=tuple(items),
                    pairs=tuple(pairs),
                    figures={"matched": len(pairs), "kappa": 0.41},
                )
            )
        dyads.append(ExportDyad(dyad_code, f"T{d + 1:02d}", f"C{d + 1:02d}", tuple(recs)))
    return ExportStudy("Synthetic IPR study", CODEBOOK, SCALES, tuple(dyads))
