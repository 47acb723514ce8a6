"""Agreement between coders of one recording: researcher with researcher or with participant.

Pure functions of plain dataclasses (no Flask, no database), so the timeline page, the exports and
the worker's figure store all compute the same numbers. A *layer* is what one coder said about
one lane's moments: the moments they gave codes to, each with that coder's codes. Two layers of
the same lane are compared code by code with the same two figures as the dyad timeline
(docs/timeline.md): co-marking within the tolerance on an optimal one-to-one matching, and the
time-unit kappa (Cohen's kappa on marked/unmarked bins, Bakeman & Quera).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from ipr.timeline import (
    DEFAULT_BIN_MS,
    InvalidSetting,
    Mark,
    _check_tolerance,
    _is_int,
    binned_kappa,
    match_lanes,
)

PARTICIPANT = "participant"
"""The coder name of a participant's own codes on their own moments."""

ANY_CODE = "(any code)"
"""The row that compares which moments each coder gave any code at all."""


@dataclass(frozen=True)
class Layer:
    """One coder's codes on one lane's moments (`marks` carry that coder's codes only)."""

    lane: str
    coder: str
    marks: tuple[Mark, ...]


def compare_layers(
    a: Sequence[Mark],
    b: Sequence[Mark],
    *,
    tolerance_ms: int,
    duration_ms: int,
    bin_ms: int = DEFAULT_BIN_MS,
    codes: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Per code (and first for any code): both coders' counts, pairs, co-marking and kappa.

    For code c, each coder's lane is their moments carrying c; the two lanes are matched as the
    dyad timeline matches therapist and client (one-to-one, most pairs, then least Σ|lag|,
    eligible when the gap is ≤ tolerance). co_marking_rate = 2·pairs / (n_a + n_b), None when
    neither coder used c. The kappa compares which bins each lane marks; kappa is None when it
    is undefined (expected agreement 1, e.g. neither coder used c).
    """
    _check_tolerance(tolerance_ms)
    if not _is_int(duration_ms) or duration_ms <= 0:
        raise InvalidSetting(f"duration_ms must be a whole number > 0, got {duration_ms!r}.")
    used = sorted({c for m in (*a, *b) for c in m.codes})
    wanted = list(codes) if codes is not None else used
    rows = [_row(ANY_CODE, [m for m in a if m.codes], [m for m in b if m.codes], tolerance_ms,
                 duration_ms, bin_ms)]  # fmt: skip
    for code in wanted:
        rows.append(
            _row(
                code,
                [m for m in a if code in m.codes],
                [m for m in b if code in m.codes],
                tolerance_ms,
                duration_ms,
                bin_ms,
            )
        )
    return rows


def _row(
    code: str, a: list[Mark], b: list[Mark], tolerance_ms: int, duration_ms: int, bin_ms: int
) -> dict[str, Any]:
    n_pairs = len(match_lanes(a, b, tolerance_ms).pairs)
    kappa = binned_kappa(a, b, duration_ms=duration_ms, bin_ms=bin_ms)
    return {
        "code": code,
        "n_a": len(a),
        "n_b": len(b),
        "n_pairs": n_pairs,
        "co_marking_rate": 2 * n_pairs / (len(a) + len(b)) if a or b else None,
        "time_unit_kappa": {
            "kappa": kappa.kappa,
            "observed": kappa.observed,
            "expected": kappa.expected,
            "bin_ms": kappa.bin_ms,
            "n_bins": kappa.n_bins,
        },
    }


def coder_agreement(
    layers: Sequence[Layer],
    *,
    tolerance_ms: int,
    duration_ms: int,
    bin_ms: int = DEFAULT_BIN_MS,
    codes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every comparison of two layers of the same lane: coder with coder, coder with participant.

    Layers are compared in the order given (a participant's own layer first, then coders by
    name, is what the app passes). Layers without any coded moment are still compared, so a
    coder who coded nothing shows as n_a = 0 rather than vanishing. JSON-ready dict.
    """
    comparisons = []
    for lane in dict.fromkeys(layer.lane for layer in layers):
        on_lane = [layer for layer in layers if layer.lane == lane]
        for first, second in combinations(on_lane, 2):
            kind = PARTICIPANT if PARTICIPANT in (first.coder, second.coder) else "coders"
            comparisons.append(
                {
                    "lane": lane,
                    "a": first.coder,
                    "b": second.coder,
                    "kind": kind,
                    "per_code": compare_layers(
                        first.marks,
                        second.marks,
                        tolerance_ms=tolerance_ms,
                        duration_ms=duration_ms,
                        bin_ms=bin_ms,
                        codes=codes,
                    ),
                }
            )
    return {
        "tolerance_ms": tolerance_ms,
        "bin_ms": bin_ms,
        "duration_ms": duration_ms,
        "comparisons": comparisons,
    }
