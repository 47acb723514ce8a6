"""Imports: moments recalled on paper or in another tool, from CSV or from an ELAN tier.

Nothing is half-imported: every problem in a file is collected and raised together in one
`ImportValidationError`, each naming the CSV line or the EAF annotation so it can be fixed.
Files are read as streams: a CSV is parsed row by row from its file object, and reading stops
as soon as it holds more than `max_rows` moments (`ImportTooLarge`), so memory stays bounded
by the row limit whatever the file's length. A file that cannot be parsed at all (not UTF-8,
a cell over the csv module's field limit, broken quoting) is `ImportUnreadable`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import IO

from lxml import etree

from ipr.exports.csv_ import unescape_cell
from ipr.exports.data import LANES, Code, ExportError, Scale, parse_timecode
from ipr.exports.eaf import (
    CODER_SEPARATOR,
    CODES_SUFFIX,
    FOLLOWUP_TIER,
    PEAK_VALUE,
    PEAKS_SUFFIX,
    POINT_MS,
    RATINGS_SUFFIX,
    RESEARCHER_CODES_SUFFIX,
    RESEARCHER_NOTE_SUFFIX,
)
from ipr.exports.import_elan import annotation_times, time_origin
from ipr.exports.table import LIST_SEPARATOR, RATING_PREFIX

_PEAK_ID = re.compile(r"^(m\d+)p\d+$")


class ImportValidationError(ExportError):
    """The file cannot be imported; `problems` lists each one with its line or annotation."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} problem(s) in the imported file: {shown}{more}")


class ImportUnreadable(ImportValidationError):
    """The file cannot be parsed at all (encoding, quoting, a cell over the field limit)."""


class ImportTooLarge(ImportValidationError):
    """The file holds more moments than one import may add (`max_rows`)."""


def _stream(source: bytes | IO[bytes]) -> IO[bytes]:
    """A binary file object at its start: uploads are parsed from their spooled file."""
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source)
    source.seek(0)
    return source


def _too_many(max_rows: int) -> ImportTooLarge:
    return ImportTooLarge(
        [f"the file holds more than {max_rows} moments, the most one import may add "
         "(setting IPR_IMPORT_MAX_ROWS); split it into smaller files"]
    )  # fmt: skip


@dataclass(frozen=True)
class ImportedMoment:
    """A moment read from a file, not yet stored; `source` says where it came from."""

    t_ms: int
    end_ms: int | None = None
    peaks_ms: tuple[int, ...] = ()
    text: str = ""
    codes: tuple[str, ...] = ()
    ratings: Mapping[str, int] = field(default_factory=dict)
    researcher_codes: tuple[str, ...] = ()
    researcher_note: str = ""
    lane: str | None = None
    participant_code: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.end_ms is not None and self.end_ms == self.t_ms:
            object.__setattr__(self, "end_ms", None)  # a zero-length span is a point, as on export
        object.__setattr__(self, "ratings", MappingProxyType(dict(self.ratings)))


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(LIST_SEPARATOR) if part.strip())


class _Checker:
    """Collects problems against an optional codebook and scales."""

    def __init__(self, codebook: Iterable[Code] | None, scales: Iterable[Scale] | None):
        self.codes = None if codebook is None else {c.key for c in codebook}
        self.scales = None if scales is None else {s.key: s for s in scales}
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def check_codes(self, where: str, codes: tuple[str, ...]) -> None:
        if self.codes is None:
            return
        for code in codes:
            if code not in self.codes:
                self.problem(where, f"code {code!r} is not in the study's codebook")

    def check_rating(self, where: str, key: str, value: int) -> None:
        if self.scales is None:
            return
        scale = self.scales.get(key)
        if scale is None:
            self.problem(where, f"rating scale {key!r} is not one of the study's scales")
        elif not scale.min <= value <= scale.max:
            self.problem(where, f"rating {key}={value} is outside {scale.min}–{scale.max}")

    def check_span(self, where: str, t_ms: int, end_ms: int | None, peaks: tuple[int, ...]):
        if end_ms is not None and end_ms < t_ms:
            self.problem(where, f"end {end_ms} ms is before start {t_ms} ms")
        hi = t_ms if end_ms is None else end_ms
        for peak in peaks:
            if not t_ms <= peak <= hi:
                self.problem(where, f"peak {peak} ms lies outside the moment ({t_ms}–{hi} ms)")


def _ms(checker: _Checker, where: str, column: str, text: str) -> int | None:
    """A time cell: whole milliseconds, or a timecode in a *_tc column."""
    text = text.strip()
    if not text:
        return None
    try:
        if column.endswith("_tc"):
            return parse_timecode(text)
        value = int(text)
    except ValueError:
        checker.problem(where, f"{column} {text!r} is not a whole number of milliseconds")
        return None
    if value < 0:
        checker.problem(where, f"{column} {value} is negative")
        return None
    return value


def import_csv(
    data: bytes | IO[bytes],
    *,
    codebook: Iterable[Code] | None = None,
    scales: Iterable[Scale] | None = None,
    max_rows: int | None = None,
) -> list[ImportedMoment]:
    """Moments from CSV: our own export, or a sheet with at least `start_ms` or `start_tc`.

    Optional columns: end_ms/end_tc, peaks_ms, text, codes, rating_<scale>, researcher_codes,
    researcher_note, lane, participant. Passing the codebook and scales checks codes and ratings.
    Leading lines starting with '#' (our provenance header) are skipped; rows repeating a
    moment_id (one per researcher coder) make one moment with the coders' codes merged.
    `data` may be a binary file object; it is read row by row, never whole.
    """
    raw = _stream(data)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        return _read_csv(text, _Checker(codebook, scales), max_rows)
    except UnicodeDecodeError:
        raise ImportUnreadable(
            [f"line {_first_bad_line(raw)}: the file is not UTF-8 text (save it as 'CSV UTF-8')"]
        ) from None
    finally:
        text.detach()  # the caller owns the file object


def _first_bad_line(raw: IO[bytes]) -> int:
    """The physical line holding the first byte that is not UTF-8 (read line by line again)."""
    raw.seek(0)
    for number, line in enumerate(raw, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


def _read_csv(text: IO[str], checker: _Checker, max_rows: int | None) -> list[ImportedMoment]:
    # Our export starts with '#' provenance lines; skip them and count them in line numbers.
    skipped = 0
    first_line = text.readline()
    while first_line.startswith("#"):
        skipped += 1
        first_line = text.readline()
    reader = csv.reader(itertools.chain([first_line], text))
    moments: list[ImportedMoment] = []
    seen: dict[str, int] = {}
    line = skipped + 1
    try:
        header = next(reader, None)
        if not header:
            raise ImportValidationError([f"line {line}: the file is empty; a header row is needed"])
        header = [h.strip() for h in header]
        if "start_ms" not in header and "start_tc" not in header:
            raise ImportValidationError(
                [f"line {line}: the header needs a start_ms or start_tc column"]
            )
        line = skipped + reader.line_num + 1
        for row in reader:
            where = f"line {line}"
            line = skipped + reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                checker.problem(where, f"{len(row)} cells where the header has {len(header)}")
                continue
            cells = {name: unescape_cell(cell) for name, cell in zip(header, row, strict=True)}
            moment = _csv_moment(checker, where, cells)
            if moment is None:
                continue
            # Our export repeats a moment once per researcher coder: one moment, codes merged.
            key = cells.get("moment_id", "").strip()
            if key and key in seen:
                first = moments[seen[key]]
                notes = [n for n in (first.researcher_note, moment.researcher_note) if n]
                moments[seen[key]] = replace(
                    first,
                    researcher_codes=tuple(
                        dict.fromkeys(first.researcher_codes + moment.researcher_codes)
                    ),
                    researcher_note="\n\n".join(notes),
                )
                continue
            if key:
                seen[key] = len(moments)
            moments.append(moment)
            if max_rows is not None and len(moments) > max_rows:
                raise _too_many(max_rows)
    except csv.Error as exc:
        limit = csv.field_size_limit()
        reason = (
            f"a cell is longer than {limit} characters"
            if "field limit" in str(exc)
            else f"the CSV cannot be read ({exc})"
        )
        raise ImportUnreadable([f"line {line}: {reason}"]) from None
    if checker.problems:
        raise ImportValidationError(checker.problems)
    return moments


def _csv_moment(checker: _Checker, where: str, cells: dict[str, str]) -> ImportedMoment | None:
    before = len(checker.problems)
    start_col = "start_ms" if cells.get("start_ms", "").strip() else "start_tc"
    t_ms = _ms(checker, where, start_col, cells.get(start_col, ""))
    if t_ms is None and len(checker.problems) == before:
        checker.problem(where, "the moment has no start time")
    end_col = "end_ms" if cells.get("end_ms", "").strip() else "end_tc"
    end_ms = _ms(checker, where, end_col, cells.get(end_col, ""))
    peaks: list[int] = []
    for part in _split(cells.get("peaks_ms", "")):
        value = _ms(checker, where, "peaks_ms", part)
        if value is not None:
            peaks.append(value)
    ratings: dict[str, int] = {}
    for name, value in cells.items():
        if name.startswith(RATING_PREFIX) and value.strip():
            key = name[len(RATING_PREFIX) :]
            try:
                ratings[key] = int(value)
            except ValueError:
                checker.problem(where, f"{name} {value!r} is not a whole number")
                continue
            checker.check_rating(where, key, ratings[key])
    lane = cells.get("lane", "").strip() or None
    if lane is not None and lane not in LANES:
        checker.problem(where, f"lane {lane!r} is not one of {', '.join(LANES)}")
    codes = _split(cells.get("codes", ""))
    researcher_codes = _split(cells.get("researcher_codes", ""))
    checker.check_codes(where, codes)
    checker.check_codes(where, researcher_codes)
    if t_ms is not None:
        checker.check_span(where, t_ms, end_ms, tuple(peaks))
    if len(checker.problems) != before or t_ms is None:
        return None
    return ImportedMoment(
        t_ms=t_ms,
        end_ms=end_ms,
        peaks_ms=tuple(peaks),
        text=cells.get("text", ""),
        codes=codes,
        ratings=ratings,
        researcher_codes=researcher_codes,
        researcher_note=cells.get("researcher_note", ""),
        lane=lane,
        participant_code=cells.get("participant", "").strip() or None,
        source=where,
    )


def _eaf_tree(data: bytes | IO[bytes]) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.parse(_stream(data), parser).getroot()
    except etree.XMLSyntaxError as exc:
        raise ImportValidationError(
            [f"line {exc.lineno}: not well-formed XML ({exc.msg})"]
        ) from None
    if root.tag != "ANNOTATION_DOCUMENT":
        raise ImportValidationError([f"the root element is <{root.tag}>, not an ELAN document"])
    return root


def eaf_tier_names(data: bytes | IO[bytes]) -> list[str]:
    """The tier ids of an EAF file, for the researcher to pick the one to import."""
    return [t.get("TIER_ID", "") for t in _eaf_tree(data).iter("TIER")]


def eaf_followup_tier_names(data: bytes | IO[bytes]) -> set[str]:
    """The follow-up tiers of our own export in an EAF file (`is_followup_tier`)."""
    return {t.get("TIER_ID", "") for t in _eaf_tree(data).iter("TIER") if is_followup_tier(t)}


def import_eaf(
    data: bytes | IO[bytes],
    tier_name: str,
    *,
    codebook: Iterable[Code] | None = None,
    scales: Iterable[Scale] | None = None,
    max_rows: int | None = None,
) -> list[ImportedMoment]:
    """Moments from one ELAN tier (annotation value = moment text), at the times ELAN shows:
    time subdivisions and symbolic tiers interpolated, TIME_ORIGIN added (`import_elan`).

    A 1 ms annotation (`POINT_MS`) is a point moment. When the file came from our own export the
    tier's child tiers (codes, ratings, peaks, researcher codes and note) are read back as well.
    """
    root = _eaf_tree(data)
    checker = _Checker(codebook, scales)
    # ELAN's times: unaligned slots interpolated, reference tiers from parents, TIME_ORIGIN added
    times = annotation_times(root)
    origin = time_origin(root)
    slots: dict[str, int | None] = {}
    for slot in root.iter("TIME_SLOT"):
        value = (slot.get("TIME_VALUE") or "").strip()
        ok = value.isascii() and value.isdigit() and len(value) <= 12
        if value and not ok:
            raise ImportUnreadable(
                [f"time slot {slot.get('TIME_SLOT_ID', '?')}: {value[:20]!r} is not a time in ms"]
            )
        slots[slot.get("TIME_SLOT_ID", "")] = int(value) + origin if value else None
    tiers = {t.get("TIER_ID"): t for t in root.iter("TIER")}
    tier = tiers.get(tier_name)
    if tier is None:
        names = ", ".join(repr(n) for n in tiers) or "none"
        raise ImportValidationError([f"there is no tier {tier_name!r}; the file has {names}"])
    if is_followup_tier(tier):
        parent = tier.get("PARENT_REF")
        raise ImportValidationError(
            [f"tier {tier_name!r} holds follow-up ratings of the moments on {parent!r}, not "
             f"moments; import {parent!r}"]
        )  # fmt: skip
    if max_rows is not None and len(tier.findall("ANNOTATION")) > max_rows:
        raise _too_many(max_rows)
    children = _child_values(tiers, tier_name)
    peak_tiers = re.compile(re.escape(tier_name + PEAKS_SUFFIX) + r"( [2-9]| [1-9]\d+)?")
    peaks = _peaks([t for n, t in tiers.items() if n and peak_tiers.fullmatch(n)], slots)
    moments: list[ImportedMoment] = []
    for node in tier.iterfind("ANNOTATION/*"):
        ann_id = node.get("ANNOTATION_ID", "?")
        where = f"annotation {ann_id}"
        before = len(checker.problems)
        start, end = times.get(ann_id, (None, None))
        if start is None or end is None:
            checker.problem(where, "its time slots are missing or unaligned")
            continue
        end_ms: int | None = None if end - start == POINT_MS else end
        ratings: dict[str, int] = {}
        for value in children[RATINGS_SUFFIX].get(ann_id, []):
            key, _, number = value.partition("=")
            try:
                ratings[key.strip()] = int(number)
            except ValueError:
                checker.problem(where, f"rating {value!r} is not 'scale=number'")
                continue
            checker.check_rating(where, key.strip(), ratings[key.strip()])
        codes = tuple(children[CODES_SUFFIX].get(ann_id, []))
        researcher_codes = tuple(children[RESEARCHER_CODES_SUFFIX].get(ann_id, []))
        checker.check_codes(where, codes)
        checker.check_codes(where, researcher_codes)
        hi = start if end_ms is None else end
        moment_peaks = tuple(
            t for owner, t in peaks if owner == ann_id or (not owner and start <= t <= hi)
        )
        checker.check_span(where, start, end_ms, moment_peaks)
        if len(checker.problems) != before:
            continue
        note = ["\n\n".join(children[RESEARCHER_NOTE_SUFFIX].get(ann_id, []))]
        moments.append(
            ImportedMoment(
                t_ms=start,
                end_ms=end_ms,
                peaks_ms=moment_peaks,
                text=node.findtext("ANNOTATION_VALUE") or "",
                codes=codes,
                ratings=ratings,
                researcher_codes=researcher_codes,
                researcher_note=note[0],
                lane=tier_name if tier_name in LANES else None,
                participant_code=tier.get("PARTICIPANT") or None,
                source=where,
            )
        )
    if checker.problems:
        raise ImportValidationError(checker.problems)
    return sorted(moments, key=lambda m: (m.t_ms, m.end_ms or m.t_ms))


def is_followup_tier(tier: etree._Element) -> bool:
    """Our export's follow-up tier (`client follow-up` under `client`): re-ratings of the
    parent's moments, never moments themselves."""
    name, parent = tier.get("TIER_ID") or "", tier.get("PARENT_REF") or ""
    return bool(FOLLOWUP_TIER.fullmatch(name)) and name == parent + " follow-up"


def _child_values(tiers: dict, parent: str) -> dict[str, dict[str, list[str]]]:
    """Values of our export's reference child tiers, keyed by the parent annotation id."""
    found: dict[str, dict[str, list[str]]] = {}
    for suffix in (CODES_SUFFIX, RATINGS_SUFFIX, RESEARCHER_CODES_SUFFIX, RESEARCHER_NOTE_SUFFIX):
        by_parent: dict[str, list[str]] = {}
        names = [parent + suffix]
        if suffix in (RESEARCHER_CODES_SUFFIX, RESEARCHER_NOTE_SUFFIX):
            # one tier per coder (`<lane> researcher codes: <coder>`), read into one layer
            names += sorted(n for n in tiers if n.startswith(parent + suffix + CODER_SEPARATOR))
        for name in names:
            tier = tiers.get(name)
            if tier is None or tier.get("PARENT_REF") != parent:
                continue
            for ref in tier.iterfind("ANNOTATION/REF_ANNOTATION"):
                value = ref.findtext("ANNOTATION_VALUE") or ""
                values = by_parent.setdefault(ref.get("ANNOTATION_REF", ""), [])
                if suffix != RESEARCHER_CODES_SUFFIX or value not in values:
                    values.append(value)
        found[suffix] = by_parent
    return found


def _peaks(tiers: list[etree._Element], slots: dict[str, int | None]) -> list[tuple[str, int]]:
    """(owner annotation id or "", time) of each peak on a lane's peaks tiers (`<lane> peaks`,
    `<lane> peaks 2`, …); our own ids name the owning moment."""
    peaks = []
    for node in (n for t in tiers for n in t.iterfind("ANNOTATION/ALIGNABLE_ANNOTATION")):
        start = slots.get(node.get("TIME_SLOT_REF1", ""))
        value = (node.findtext("ANNOTATION_VALUE") or "").strip()
        if value.startswith(PEAK_VALUE + " "):
            with contextlib.suppress(ValueError):  # a foreign value: keep the slot time
                start = parse_timecode(value[len(PEAK_VALUE) + 1 :])
        match = _PEAK_ID.match(node.get("ANNOTATION_ID", ""))
        if start is not None:
            peaks.append((match.group(1) if match else "", start))
    return sorted(peaks, key=lambda p: p[1])
