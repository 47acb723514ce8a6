"""Movement out of the app: the motion-energy series per region, the windowed synchrony series
and the synchrony figures with every parameter they were computed with (docs/exports.md).

Pure functions of a recording's stored analysis (``analysis.json``'s ``motion_energy``) and its
stored synchrony figures (``ipr.figures``, computed by the worker); all return bytes.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ipr import motion

MOTION_FORMATS = {
    "motion_csv": ("motion.csv", "text/csv; charset=utf-8"),
    "motion_txt": ("motion.txt", "text/plain; charset=utf-8"),
    "synchrony_csv": ("synchrony.csv", "text/csv; charset=utf-8"),
}
"""Format name (``--format``, ``export.<fmt>``) → (file name suffix, media type)."""


def _csv(header: list[str], rows: list[list[Any]], comments: list[str]) -> bytes:
    buffer = io.StringIO()
    for line in comments:
        buffer.write(f"# {line}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _notes(me: dict[str, Any]) -> list[str]:
    summary = motion.missing_summary(me)
    notes = [
        f"rate_hz={me.get('rate_hz')}",
        f"threshold={me.get('threshold', motion.MotionSettings.threshold)}",
        f"missing_samples={summary['missing']} of {summary['samples']}",
    ]
    if summary["warn"]:
        notes.append(f"WARNING: {summary['message']}")
    return notes


def motion_csv(motion_energy: dict[str, Any]) -> bytes:
    """One row per sample at the analysis rate: t_ms and each region's share of changed pixels
    (an empty cell is a missing sample); ``#`` lines before the header give rate, threshold and
    the missing share."""
    header, rows = motion.series_csv_rows(motion_energy)
    return _csv(header, rows, _notes(motion_energy))


def motion_txt(motion_energy: dict[str, Any]) -> bytes:
    """The two people's series in MEA's text layout for rMEA's readMEA (header line, two
    space-separated columns, NA for missing)."""
    return motion.rmea_text(motion_energy).encode("utf-8")


def synchrony_csv(figures: dict[str, Any] | None, motion_energy: dict[str, Any]) -> bytes:
    """The windowed synchrony series (window centre, mean |z| over lags), preceded by ``#``
    lines with the summary figures, the surrogate baseline and every parameter."""
    figures = figures or {}
    notes = _notes(motion_energy)
    notes.append("settings=" + json.dumps(figures.get("settings") or {}, sort_keys=True))
    if figures.get("error"):
        notes.append(f"no synchrony: {figures['error']}")
    for key in ("window_ms", "step_ms", "max_lag_ms", "fisher_z", "absolute", "n_windows",
                "grand_mean", "peak_mean", "lag_zero_mean", "left_leads_mean",
                "right_leads_mean", "best_lag_median_ms"):  # fmt: skip
        if figures.get(key) is not None:  # a figure not given is left out, not "None"
            notes.append(f"{key}={figures[key]}")
    surrogate = figures.get("surrogate") or {}
    for key in ("n", "seed", "segment_ms", "statistic", "surrogate_mean", "surrogate_sd",
                "effect_size", "p_value"):  # fmt: skip
        if surrogate.get(key) is not None:
            notes.append(f"surrogate_{key}={surrogate[key]}")
    rows = [
        [p["t_ms"], "" if p["value"] is None else p["value"]] for p in figures.get("series") or []
    ]
    return _csv(["window_centre_ms", "synchrony"], rows, notes)


def make(fmt: str, motion_energy: dict[str, Any], figures: dict[str, Any] | None) -> bytes:
    if fmt == "motion_csv":
        return motion_csv(motion_energy)
    if fmt == "motion_txt":
        return motion_txt(motion_energy)
    return synchrony_csv(figures, motion_energy)
