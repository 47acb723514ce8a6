"""BORIS reader: projects (`.boris`, JSON) and tabular event exports (CSV/TSV).

BORIS records a state event as a START and a STOP of the same behaviour, subject and modifiers;
each pair becomes a span, a point event a point moment. One tier per observation and subject
(`observation #1 / subject1`; events without a subject are `No focal subject`). A moment's codes
are the behaviour and its modifiers (`ipr.exports.peers` keeps in the text those the study's
codebook lacks); the event comment is its text. Times are seconds in the file, kept to the ms.
A state never stopped makes its tier unimportable, with a message saying which.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal, InvalidOperation

from ipr.exports.imports import ImportedMoment, ImportValidationError
from ipr.exports.peer_rows import PeerTier, decode_text

PROJECT = "BORIS project"
TABULAR = "BORIS tabular events"
AGGREGATED = "BORIS aggregated events"
NO_SUBJECT = "No focal subject"


def _ms(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is not a number of seconds")
    try:
        seconds = Decimal(str(value).strip())
        if not seconds.is_finite() or abs(seconds) > 10**9:
            raise InvalidOperation
        return int((seconds * 1000).to_integral_value(rounding="ROUND_HALF_UP"))
    except InvalidOperation:
        raise ValueError(f"time {str(value)[:30]!r} is not a number of seconds") from None


def _modifiers(text: str) -> tuple[str, ...]:
    """BORIS joins modifier sets with '|'; an unset set is 'None'."""
    return tuple(m.strip() for m in text.split("|") if m.strip() and m.strip() != "None")


class _Pairs:
    """Pairs START/STOP events into spans per (subject, behaviour, modifiers)."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.open: dict[tuple, tuple[int, str, str]] = {}
        self.rows: dict[str, list[ImportedMoment]] = {}
        self.problems: dict[str, list[str]] = {}

    def event(self, tier: str, t_ms: int, behavior: str, mods: tuple[str, ...], kind: str,
              comment: str, where: str) -> None:  # fmt: skip
        rows = self.rows.setdefault(tier, [])
        codes = (behavior, *mods)
        if kind == "point":
            rows.append(ImportedMoment(t_ms=t_ms, codes=codes, text=comment, source=where))
            return
        key = (tier, behavior, mods)
        started = self.open.pop(key, None)
        if kind == "start" or (kind == "state" and started is None):
            if started is not None:
                self.problem(tier, f"{where}: state {behavior!r} starts again before it stopped")
            self.open[key] = (t_ms, comment, where)
            return
        if started is None:
            self.problem(tier, f"{where}: state {behavior!r} stops but never started")
            return
        start, first_comment, first_where = started
        text = " / ".join(c for c in (first_comment, comment) if c)
        rows.append(
            ImportedMoment(t_ms=start, end_ms=t_ms, codes=codes, text=text, source=first_where)
        )

    def problem(self, tier: str, message: str) -> None:
        self.problems.setdefault(tier, []).append(f"{self.fmt}: {message}")

    def tiers(self) -> list[PeerTier]:
        for (tier, behavior, _), (t_ms, _, where) in self.open.items():
            self.problem(tier, f"{where}: state {behavior!r} started at {t_ms} ms is never stopped")
        return [
            PeerTier(
                name=name,
                moments=tuple(sorted(rows, key=lambda m: (m.t_ms, m.end_ms or m.t_ms))),
                problems=tuple(self.problems.get(name, ())),
            )
            for name, rows in self.rows.items()
        ]


def looks_like_boris_project(data: bytes) -> bool:
    head = data[:4000].lstrip()
    return head.startswith(b"{") and b'"behaviors_conf"' in data and b'"observations"' in data


def read_boris_project(data: bytes) -> list[PeerTier]:
    """One tier per observation and subject with events."""
    try:
        project = json.loads(decode_text(data, PROJECT))
    except json.JSONDecodeError as exc:
        raise ImportValidationError([f"{PROJECT}: not valid JSON (line {exc.lineno})"]) from None
    observations = project.get("observations") if isinstance(project, dict) else None
    behaviors = project.get("behaviors_conf") if isinstance(project, dict) else None
    if not isinstance(observations, dict) or not isinstance(behaviors, dict):
        raise ImportValidationError([f"{PROJECT}: the file has no observations and ethogram"])
    kinds = {
        str(b.get("code", "")): ("point" if "point" in str(b.get("type", "")).lower() else "state")
        for b in behaviors.values()
        if isinstance(b, dict)
    }
    pairs = _Pairs(PROJECT)
    for obs_id, observation in observations.items():
        events = observation.get("events") if isinstance(observation, dict) else None
        if not isinstance(events, list):
            continue
        for n, event in enumerate(events, start=1):
            where = f"observation {obs_id!r} event {n}"
            try:
                if not isinstance(event, list) or len(event) < 3:
                    raise ValueError("an event needs a time, a subject and a behaviour")
                t_ms = _ms(event[0])
                if t_ms < 0:
                    raise ValueError(f"time {event[0]!r} is negative")
                subject, behavior = str(event[1]), str(event[2])
                mods = _modifiers(str(event[3]) if len(event) > 3 else "")
                comment = str(event[4]).strip() if len(event) > 4 else ""
            except ValueError as exc:
                pairs.problem(f"{obs_id} / ?", f"{where}: {exc}")
                continue
            tier = f"{obs_id} / {subject or NO_SUBJECT}"
            kind = kinds.get(behavior)
            if kind is None:
                pairs.problem(tier, f"{where}: behaviour {behavior!r} is not in the ethogram")
                continue
            # a state event toggles: the first of a pair starts it, the next stops it
            pairs.event(tier, t_ms, behavior, mods, kind, comment, where)
    return pairs.tiers()


def _rows(data: bytes, fmt: str) -> list[list[str]]:
    text = decode_text(data, fmt)
    dialect = "excel-tab" if text.count("\t") >= text.count(",") else "excel"
    return list(csv.reader(io.StringIO(text, newline=""), dialect=dialect))


def _header(rows: list[list[str]]) -> tuple[int, list[str]] | None:
    for i, row in enumerate(rows[:60]):
        cells = [c.strip() for c in row]
        if "Behavior" in cells and (
            ("Time" in cells and "Status" in cells)
            or ("Start (s)" in cells and "Stop (s)" in cells)
        ):
            return i, cells
    return None


def looks_like_boris_table(data: bytes) -> bool:
    try:
        return _header(_rows(data, TABULAR)) is not None
    except ImportValidationError:
        return False


def read_boris_table(data: bytes) -> list[PeerTier]:
    """A tabular (Time/Status) or aggregated (Start/Stop) events export."""
    rows = _rows(data, TABULAR)
    found = _header(rows)
    if found is None:
        raise ImportValidationError([f"{TABULAR}: no header row with Time, Behavior and Status"])
    at, header = found
    aggregated = "Start (s)" in header
    fmt = AGGREGATED if aggregated else TABULAR
    observation = ""
    for row in rows[:at]:
        if len(row) > 1 and row[0].strip() == "Observation id":
            observation = row[1].strip()
    pairs = _Pairs(fmt)
    for n, row in enumerate(rows[at + 1 :], start=at + 2):
        if not any(c.strip() for c in row):
            continue
        cells = dict(zip(header, (c for c in row), strict=False))
        where = f"line {n}"
        obs = cells.get("Observation id", observation).strip()
        subject = cells.get("Subject", "").strip() or NO_SUBJECT
        tier = f"{obs} / {subject}" if obs else subject
        behavior = cells.get("Behavior", "").strip()
        mods = _modifiers(cells.get("Modifiers", ""))
        try:
            if aggregated:
                start, stop = _ms(cells.get("Start (s)", "")), _ms(cells.get("Stop (s)", ""))
                kind = cells.get("Behavior type", "").strip().upper()
                comment = " / ".join(
                    c.strip()
                    for c in (cells.get("Comment start", ""), cells.get("Comment stop", ""))
                    if c.strip()
                )
                moment = ImportedMoment(
                    t_ms=start,
                    end_ms=None if kind == "POINT" else stop,
                    codes=(behavior, *mods),
                    text=comment,
                    source=where,
                )
                pairs.rows.setdefault(tier, []).append(moment)
                continue
            t_ms = _ms(cells.get("Time", ""))
        except ValueError as exc:
            pairs.problem(tier, f"{where}: {exc}")
            continue
        status = cells.get("Status", "").strip().upper()
        kind = {"START": "start", "STOP": "stop", "POINT": "point"}.get(status)
        if kind is None:
            pairs.problem(tier, f"{where}: status {status!r} is not START, STOP or POINT")
            continue
        comment = cells.get("Comment", "").strip()
        pairs.event(tier, t_ms, behavior, mods, kind, comment, where)
    return pairs.tiers()
