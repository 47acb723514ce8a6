"""Which format a file is, what it would import as (a preview), and the moments of one choice.

`detect` names the format by content (and extension): our CSV, ELAN EAF, Praat TextGrid, a BORIS
project or a BORIS tabular/aggregated events export. A file it recognises but cannot import
(subtitles, a BORIS time budget, a binary TextGrid…) is refused with a message naming the
format and why. `preview` lists every choice (a tier, a lane's tiers, a BORIS
observation/subject) with the lane it goes to, its counts and time range, before anything is
written; `moments` gives the rows of one choice for `ipr.dataset.import_moments`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import IO

from ipr.exports.data import LANES, Code, ExportError, Scale
from ipr.exports.import_boris import (
    PROJECT,
    TABULAR,
    looks_like_boris_project,
    looks_like_boris_table,
    read_boris_project,
    read_boris_table,
)
from ipr.exports.import_textgrid import FORMAT as TEXTGRID
from ipr.exports.import_textgrid import looks_like_textgrid, read_textgrid
from ipr.exports.imports import (
    ImportedMoment,
    ImportTooLarge,
    ImportValidationError,
    eaf_followup_tier_names,
    eaf_tier_names,
    import_csv,
    import_eaf,
)
from ipr.exports.peer_rows import PeerTier, lane_of
from ipr.exports.textgrid import FOLLOWUP_TIER as TEXTGRID_FOLLOWUP

KINDS = ("csv", "eaf", "textgrid", "boris", "boris-table")
NAMES = {
    "csv": "CSV",
    "eaf": "ELAN EAF",
    "textgrid": TEXTGRID,
    "boris": PROJECT,
    "boris-table": TABULAR,
}


def _refuse(fmt: str, why: str) -> ImportValidationError:
    return ImportValidationError([f"{fmt}: {why}"])


MAX_MS = 2**31 - 1
"""The latest time a moment can have (the database holds 32-bit ms)."""
HEAD_BYTES = 65536
"""How much of a file `detect` looks at."""


def detect(data: bytes, filename: str = "") -> str:
    """The kind of an import file (one of KINDS) from its first `HEAD_BYTES` and its name, or a
    refusal naming what it is and why."""
    name = filename.lower()
    data = data[:HEAD_BYTES]
    head = data[:4000]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if looks_like_textgrid(data) or data.startswith(b"ooBinaryFile"):
        if data.startswith(b"ooBinaryFile"):
            raise _refuse(f"{TEXTGRID} (binary)", "save it from Praat as a text file")
        return "textgrid"
    if stripped.startswith(b"WEBVTT") or name.endswith(".vtt") or b"\nWEBVTT" in head:
        raise _refuse("WebVTT subtitles", "captions are not moments; import a CSV or EAF instead")
    if name.endswith((".srt", ".sub", ".ctm", ".stm")):
        fmt = {".srt": "SubRip subtitles", ".sub": "SubViewer subtitles",
               ".ctm": "NIST CTM", ".stm": "NIST STM"}[name[-4:]]  # fmt: skip
        raise _refuse(fmt, "this format is not imported; export moments as CSV, EAF or TextGrid")
    if name.endswith(".xsd") or b"<xsd:schema" in head or b"<xs:schema" in head:
        raise _refuse("XML schema", "a schema describes files and holds no annotations")
    if b"<ANNOTATION_DOCUMENT" in head or name.endswith(".eaf"):
        return "eaf"
    if stripped.startswith((b"{", b"[")):
        if looks_like_boris_project(data) or (
            stripped.startswith(b"{") and (name.endswith(".boris") or b'"observations"' in data)
        ):
            return "boris"
        try:
            parsed = json.loads(data)
        except ValueError:
            raise _refuse("JSON", "not a BORIS project (no observations and ethogram)") from None
        first = parsed[0] if isinstance(parsed, list) and parsed else None
        if isinstance(first, dict) and {"behavior", "duration"} <= set(first):
            raise _refuse(
                "BORIS time budget",
                "it holds totals per behaviour, not events; export the events instead",
            )
        raise _refuse("JSON", "not a BORIS project (no observations and ethogram)")
    if looks_like_boris_table(data):
        return "boris-table"
    if b"\tSTATE\t" in head or b"\tPOINT\t" in head:
        raise _refuse(
            "BORIS aggregated events without a header row",
            "the column names are missing, so start and stop cannot be told apart; "
            "export the events again with the header",
        )
    if name.endswith((".tsv", ".txt")) or (b"\t" in head and b"," not in head):
        raise _refuse(
            "Tab-separated table",
            "no BORIS events header (Time, Behavior, Status) and no start_ms column",
        )
    return "csv"


def eaf_layers(names: list[str], lane: str) -> list[str]:
    """A lane's tier and its overflow layers (`therapist`, `therapist 2`, …) in layer order."""
    pattern = re.compile(re.escape(lane) + r" ([2-9]|[1-9]\d+)")
    extra = [(int(m.group(1)), n) for n in names if (m := pattern.fullmatch(n))]
    return ([lane] if lane in names else []) + [n for _, n in sorted(extra)]


def import_eaf_lane(
    data: bytes | IO[bytes],
    tier: str,
    *,
    codebook: Iterable[Code] | None = None,
    scales: Iterable[Scale] | None = None,
    max_rows: int | None = None,
) -> list[ImportedMoment]:
    """One EAF tier; a lane's tier (`therapist`) with its overflow layers read back together."""
    names = eaf_tier_names(data)
    if tier not in LANES or tier not in names:
        return import_eaf(data, tier, codebook=codebook, scales=scales, max_rows=max_rows)
    found: list[ImportedMoment] = []
    for name in eaf_layers(names, tier):
        rows = import_eaf(data, name, codebook=codebook, scales=scales, max_rows=max_rows)
        found += [replace(m, lane=tier) for m in rows]
        if max_rows is not None and len(found) > max_rows:
            raise ImportTooLarge(
                [f"the file holds more than {max_rows} moments, the most one import may add "
                 "(setting IPR_IMPORT_MAX_ROWS); split it into smaller files"]
            )  # fmt: skip
    return list(_sorted(found))


def read_tiers(data: bytes, kind: str) -> list[PeerTier]:
    """The tiers of a TextGrid or BORIS file."""
    if kind == "textgrid":
        return read_textgrid(data)
    if kind == "boris":
        return read_boris_project(data)
    if kind == "boris-table":
        return read_boris_table(data)
    raise ImportValidationError([f"unknown file kind {kind!r}"])


@dataclass(frozen=True)
class Choice:
    """What the researcher can pick to import: a tier, or a lane's tiers together."""

    name: str
    lane: str | None
    tiers: tuple[str, ...]
    moments: tuple[ImportedMoment, ...]
    problems: tuple[str, ...] = ()

    @property
    def points(self) -> int:
        return sum(1 for m in self.moments if m.end_ms is None)

    @property
    def spans(self) -> int:
        return len(self.moments) - self.points

    @property
    def first_ms(self) -> int | None:
        return min((m.t_ms for m in self.moments), default=None)

    @property
    def last_ms(self) -> int | None:
        return max((m.end_ms or m.t_ms for m in self.moments), default=None)


def _sorted(moments: Iterable[ImportedMoment]) -> tuple[ImportedMoment, ...]:
    return tuple(sorted(moments, key=lambda m: (m.t_ms, m.end_ms or m.t_ms)))


def _group(name: str) -> str:
    """A lane's tiers go together (`therapist points`, `therapist spans 2` → `therapist`); our
    export's answers after the reveal (`therapist responses points`) stay apart from them."""
    lane = lane_of(name)
    if lane is None:
        return name
    if name.lower().startswith(lane + " responses"):
        return lane + " responses"
    return lane


def choices(data: bytes, kind: str) -> list[Choice]:
    """Every choice in the file, lanes' tiers grouped (`therapist points` + `therapist spans 2`
    → `therapist`), in file order."""
    if kind == "csv":
        try:
            rows = import_csv(data)
        except ImportValidationError as exc:
            raise ImportValidationError([f"CSV {p}" for p in exc.problems]) from None
        lanes = sorted({m.lane for m in rows if m.lane}) or [None]
        return [
            Choice(
                name=lane or "all rows",
                lane=lane,
                tiers=(),
                moments=_sorted(m for m in rows if m.lane in (lane, None)),
            )
            for lane in lanes
        ]
    if kind == "eaf":
        out = []
        names = eaf_tier_names(data)
        layered = {n for lane in LANES for n in eaf_layers(names, lane)[1:] if lane in names}
        followups = eaf_followup_tier_names(data)
        for name in names:
            if name in layered:
                continue  # read with its lane
            if name in followups:
                continue  # re-ratings of the lane's moments, not moments
            try:
                rows, problems = import_eaf_lane(data, name), ()
            except ImportValidationError as exc:
                rows, problems = [], tuple(exc.problems)
            tiers = tuple(eaf_layers(names, name)) if name in LANES else (name,)
            lane = name if name in LANES else None
            out.append(Choice(name, lane, tiers, _sorted(rows), problems))
        return out
    grouped: dict[str, list[PeerTier]] = {}
    for tier in read_tiers(data, kind):
        if kind == "textgrid" and TEXTGRID_FOLLOWUP.fullmatch(tier.name):
            continue  # our export's follow-up re-ratings of a lane's moments, not moments
        grouped.setdefault(_group(tier.name), []).append(tier)
    return [
        Choice(
            name=key,
            lane=key if key in LANES else None,
            tiers=tuple(t.name for t in tiers),
            moments=_sorted(m for t in tiers for m in t.moments),
            problems=tuple(p for t in tiers for p in t.problems),
        )
        for key, tiers in grouped.items()
    ]


def moments(
    data: bytes,
    kind: str,
    choice: str,
    *,
    codebook: Iterable[Code] | None = None,
    scales: Iterable[Scale] | None = None,
) -> list[ImportedMoment]:
    """The moments of one choice of a TextGrid or BORIS file, lane set from the tier name.

    Codes the study's codebook lacks go back into the text as `[code;code] text`, so a label
    such as `[laugh] yes` from another tool is kept as written.
    """
    found = choices(data, kind)
    if not choice:
        usable = [c for c in found if c.moments]
        if not usable:
            raise ImportValidationError([f"{NAMES[kind]}: the file holds no annotations"])
        if len(usable) != 1:
            names = ", ".join(repr(c.name) for c in usable) or "none"
            raise ImportValidationError([f"choose the tier to import; this file has: {names}"])
        picked = usable[0]
    else:
        match = [c for c in found if c.name == choice]
        if not match:
            names = ", ".join(repr(c.name) for c in found) or "none"
            raise ImportValidationError([f"there is no tier {choice!r}; the file has {names}"])
        picked = match[0]
    if picked.problems:
        raise ImportValidationError(list(picked.problems))
    bad = [
        f"{m.source}: times {m.t_ms}–{m.end_ms} ms are not within 0 ms–{MAX_MS} ms in order"
        for m in picked.moments
        if not 0 <= m.t_ms <= MAX_MS or (m.end_ms is not None and not m.t_ms <= m.end_ms <= MAX_MS)
    ]
    if bad:
        raise ImportValidationError(bad)
    known = None if codebook is None else {c.key for c in codebook}
    del scales  # TextGrid and BORIS carry no ratings
    out = []
    for m in picked.moments:
        codes = m.codes if known is None else tuple(c for c in m.codes if c in known)
        rest = () if known is None else tuple(c for c in m.codes if c not in known)
        text = m.text
        if rest:
            text = "[" + ";".join(rest) + "]" + (" " + text if text else "")
        out.append(replace(m, codes=codes, text=text, lane=picked.lane))
    return out


__all__ = ["KINDS", "NAMES", "Choice", "ExportError", "choices", "detect", "moments"]
