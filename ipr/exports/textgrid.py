"""Praat TextGrid (long text format): a point tier and an interval tier per lane.

Point moments go to the TextTier `<lane> points`, spans to the IntervalTier `<lane> spans`.
Responses written after the reveal go to `<lane> responses points` / `<lane> responses spans`,
their labels starting with `re m<id>` (the moment answered).
Praat forbids two points at one time and overlapping intervals in a tier, so a clash moves the
later moment to an extra tier (`<lane> spans 2`, …) rather than losing it.
A blind moment rated again in the study's follow-up pass (docs/followup.md) is repeated, at its
own time, on `<lane> follow-up points` / `<lane> follow-up spans` (only when there is one),
labelled with the CSV's names: `followup_rating_<scale>=<value>; …; followup_comment=<text>`
(the comment left out without free text). The imports skip these tiers (`FOLLOWUP_TIER`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ipr.exports.data import LANES, ExportMoment, RecordingContext
from ipr.exports.table import followup_values

RESPONSES = " responses"
FOLLOWUP = " follow-up"
FOLLOWUP_TIER = re.compile(r"(therapist|client) follow-up (points|spans)( [2-9]| [1-9]\d+)?")
"""Our export's follow-up tiers: re-ratings of a lane's moments, never moments."""


Labels = Callable[[int], "str | None"]
"""A tier's own label per moment id (the follow-up tiers), instead of `label`."""


def seconds(ms: int) -> str:
    """Exact decimal seconds for integer ms (no float rounding): 1500 → "1.5"."""
    whole, frac = divmod(ms, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".")


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def label(moment: ExportMoment, include_text: bool) -> str:
    """`[code;code] text` on one line; just the codes without free text. A response starts
    with `re m<id>`, the moment it answers."""
    parts = [f"re m{moment.responds_to_id}"] if moment.responds_to_id is not None else []
    if moment.codes:
        parts.append("[" + ";".join(moment.codes) + "]")
    if include_text and moment.text.strip():
        parts.append(" ".join(moment.text.split()))
    return " ".join(parts)


def followup_label(ctx: RecordingContext, moment: ExportMoment, include_text: bool) -> str:
    """`followup_rating_hat=5; followup_comment=Less now.` on one line; "" without one."""
    items = followup_values(ctx.study, moment, include_text=include_text)
    return "; ".join(f"{k}={' '.join(v.split())}" for k, v in items)


def _layers(moments: list[ExportMoment], spans: bool) -> list[list[ExportMoment]]:
    """Greedy layering: a moment joins the first layer where it clashes with nothing."""
    layers: list[list[ExportMoment]] = []
    for moment in moments:
        for layer in layers:
            last = layer[-1]
            free = moment.t_ms >= last.end_ms if spans else moment.t_ms > last.t_ms  # type: ignore[operator]
            if free:
                layer.append(moment)
                break
        else:
            layers.append([moment])
    return layers


def _tier_name(lane: str, kind: str, n: int) -> str:
    return f"{lane} {kind}" + (f" {n}" if n > 1 else "")


def to_textgrid(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """The recording's moments as a TextGrid that Praat and pympi read."""
    moments = ctx.recording.sorted_moments()
    xmax = max([1, ctx.recording.duration_ms] + [m.end_ms or m.t_ms for m in moments])
    tiers: list[list[str]] = []
    # Blind-phase moments on `<lane> …` tiers; responses (after the reveal) on their own
    # `<lane> responses …` tiers, only when there are any.
    groups = [
        (lane, [m for m in moments if m.lane == lane and m.phase == "blind"]) for lane in LANES
    ]
    for lane in LANES:
        answers = [m for m in moments if m.lane == lane and m.phase == "response"]
        if answers:
            groups.append((lane + RESPONSES, answers))
    for lane, in_lane in groups:
        points, spans = _split(in_lane)
        for n, layer in enumerate(_layers(points, spans=False) or [[]], start=1):
            tiers.append(_point_tier(_tier_name(lane, "points", n), layer, xmax, include_text))
        for n, layer in enumerate(_layers(spans, spans=True) or [[]], start=1):
            tiers.append(_interval_tier(_tier_name(lane, "spans", n), layer, xmax, include_text))
    # the follow-up pass's re-ratings, at their moments' times; tiers only where there are any
    for lane in LANES:
        again = {
            m.id: text
            for m in moments
            if m.lane == lane and m.phase == "blind"
            and (text := followup_label(ctx, m, include_text))
        }  # fmt: skip
        points, spans = _split([m for m in moments if m.id in again])
        labels = again.get
        for n, layer in enumerate(_layers(points, spans=False), start=1):
            name = _tier_name(lane + FOLLOWUP, "points", n)
            tiers.append(_point_tier(name, layer, xmax, include_text, labels))
        for n, layer in enumerate(_layers(spans, spans=True), start=1):
            name = _tier_name(lane + FOLLOWUP, "spans", n)
            tiers.append(_interval_tier(name, layer, xmax, include_text, labels))
    out = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {seconds(xmax)}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for number, tier in enumerate(tiers, start=1):
        out.append(f"    item [{number}]:")
        out.extend(tier)
    return ("\n".join(out) + "\n").encode("utf-8")


def _split(moments: list[ExportMoment]) -> tuple[list[ExportMoment], list[ExportMoment]]:
    """Points, and spans in (start, end, id) order."""
    points = [m for m in moments if m.end_ms is None or m.end_ms == m.t_ms]
    spans = sorted(
        (m for m in moments if m.end_ms is not None and m.end_ms > m.t_ms),
        key=lambda m: (m.t_ms, m.end_ms, m.id),
    )
    return points, spans


def _point_tier(
    name: str, moments: list[ExportMoment], xmax: int, text: bool, labels: Labels | None = None
) -> list[str]:
    out = [
        '        class = "TextTier"',
        f"        name = {_quote(name)}",
        "        xmin = 0",
        f"        xmax = {seconds(xmax)}",
        f"        points: size = {len(moments)}",
    ]
    for number, moment in enumerate(moments, start=1):
        out.append(f"        points [{number}]:")
        out.append(f"            number = {seconds(moment.t_ms)}")
        mark = labels(moment.id) if labels else label(moment, text)
        out.append(f"            mark = {_quote(mark or '')}")
    return out


def _interval_tier(
    name: str, moments: list[ExportMoment], xmax: int, text: bool, labels: Labels | None = None
) -> list[str]:
    # An interval tier covers the whole time axis: empty intervals fill the gaps.
    intervals: list[tuple[int, int, str]] = []
    cursor = 0
    for moment in moments:
        end = moment.end_ms
        assert end is not None
        if moment.t_ms > cursor:
            intervals.append((cursor, moment.t_ms, ""))
        # an empty interval is a gap to Praat: a span with no label is written "[]" (no codes)
        mark = labels(moment.id) if labels else label(moment, text)
        intervals.append((moment.t_ms, end, mark or "[]"))
        cursor = end
    if cursor < xmax or not intervals:
        intervals.append((cursor, max(xmax, cursor + 1), ""))
    out = [
        '        class = "IntervalTier"',
        f"        name = {_quote(name)}",
        "        xmin = 0",
        f"        xmax = {seconds(xmax)}",
        f"        intervals: size = {len(intervals)}",
    ]
    for number, (lo, hi, mark) in enumerate(intervals, start=1):
        out.append(f"        intervals [{number}]:")
        out.append(f"            xmin = {seconds(lo)}")
        out.append(f"            xmax = {seconds(hi)}")
        out.append(f"            text = {_quote(mark)}")
    return out
