"""The plain data every exporter reads: the app maps its database rows onto these dataclasses.

Keeping exports a pure function of this model makes them reproducible and testable without a
database. Every time value is integer milliseconds of presentation time.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from ipr.version import software

LANES: tuple[str, ...] = ("therapist", "client")
# blind: marked before the reveal; response: written after it (answers and second looks)
PHASES: tuple[str, ...] = ("blind", "response")

# Formats that must carry a date (EAF, XLSX properties) use this unless the caller gives one,
# so the same data always gives the same bytes.
DEFAULT_EXPORTED_AT = datetime(2000, 1, 1, tzinfo=UTC)

_PATH_SEPARATORS = re.compile(r"[/\\]")


class ExportError(Exception):
    """Base class of every failure raised by `ipr.exports`."""


class ExportDataError(ExportError):
    """The data handed to an exporter is inconsistent; the message names the object and field."""


def _as(kind: type, value: object) -> object:
    """Accept a plain tuple where a small record is expected (the brief's `(index, start, end)`)."""
    return value if isinstance(value, kind) else kind(*value)  # type: ignore[misc]


_EMPTY_MAP: Mapping = MappingProxyType({})


def _frozen_map(value: Mapping) -> Mapping:
    if isinstance(value, MappingProxyType):  # already read-only (shared by many moments)
        return value
    if not value:  # most moments answered no prompt: one shared empty mapping
        return _EMPTY_MAP
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class Code:
    """One entry of a study's codebook."""

    key: str
    name: str
    colour: str = "#4c78a8"
    shortcut: str = ""
    description: str = ""


@dataclass(frozen=True)
class Scale:
    """A rating scale such as Elliott's Helpful Aspects of Therapy (1 … 9)."""

    key: str
    name: str
    min: int
    max: int
    labels: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ExportDataError(f"scale {self.key!r}: min {self.min} is above max {self.max}")
        object.__setattr__(self, "labels", _frozen_map(self.labels))


@dataclass(frozen=True)
class Prompt:
    """One question of the interviewer's prompt sheet (kind: text, scale or choice)."""

    key: str
    question: str
    kind: str = "text"


@dataclass(frozen=True)
class Clip:
    """A segment of the recording that participants replay one at a time."""

    index: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Coding:
    """One researcher's codes and note on a moment: their own layer, kept apart from others'."""

    coder: str
    codes: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", tuple(self.codes))


@dataclass(frozen=True)
class FollowUpRating:
    """A follow-up pass's ratings and comment on one moment (phase "followup"), kept beside
    the moment's first ratings and never counted in a figure."""

    ratings: Mapping[str, int] = field(default_factory=dict)
    comment: str = ""
    at: str = ""  # ISO 8601 UTC of the last change


@dataclass(frozen=True)
class ExportMoment:
    """One participant's recalled moment: a point (`end_ms` None) or a span with optional peaks."""

    id: int
    lane: str
    participant_code: str
    t_ms: int
    end_ms: int | None = None
    peaks_ms: tuple[int, ...] = ()
    text: str = ""
    codes: tuple[str, ...] = ()
    ratings: Mapping[str, int] = field(default_factory=dict)
    researcher_codes: tuple[str, ...] = ()
    researcher_note: str = ""
    voice_note: bool = False
    matched_moment_id: int | None = None
    lag_ms: int | None = None
    codings: tuple[Coding, ...] = ()
    """Each researcher's own layer; researcher_codes/researcher_note hold their union."""
    coder: str = ""
    """Set on the per-coder rows of the table formats (`ipr.exports.table.iter_rows`)."""
    imported_from: str = ""
    """"<format>:<file name>" when the moment was imported from a file, else empty."""
    phase: str = "blind"
    responds_to_id: int | None = None
    corrected_at: str | None = None  # ISO 8601 UTC: a researcher's correction after the reveal
    interview_transcript: tuple[tuple[int, int | None, str], ...] = ()
    """(start_ms, end_ms, text) on the interview audio: what was said at this stop."""
    interview_audio_start_ms: int | None = None
    interview_audio_end_ms: int | None = None
    """This stop's segment of the recall interview audio (ms on the interview audio: from the
    pause or mark at the moment to the next play); None without an interview or a stop."""
    followup: FollowUpRating | None = None
    """The participant's follow-up rating of this (blind) moment, the third phase; None: none."""
    prompt_answers: Mapping[str, str] = field(default_factory=dict)
    """The participant's answer to each prompt asked at this stop (prompt key -> value: the
    text, the rating's number or the choice's value)."""

    def __post_init__(self) -> None:
        # Runs for every moment of an export (60,000 in a large study): checks first, the
        # message only when one fails, and conversions only for values not yet of their type.
        if self.lane not in LANES:
            raise ExportDataError(
                f"moment {self.id}: lane {self.lane!r} is not one of {', '.join(LANES)}"
            )
        if self.phase not in PHASES:
            raise ExportDataError(
                f"moment {self.id}: phase {self.phase!r} is not one of blind, response"
            )
        if not isinstance(self.t_ms, int) or self.t_ms < 0:
            raise ExportDataError(
                f"moment {self.id}: t_ms must be a non-negative integer, got {self.t_ms!r}"
            )
        if self.end_ms is not None and (
            not isinstance(self.end_ms, int) or self.end_ms < self.t_ms
        ):
            raise ExportDataError(
                f"moment {self.id}: end_ms {self.end_ms!r} is before t_ms {self.t_ms}"
            )
        if self.end_ms == self.t_ms:  # a zero-length span is a point, the same in every format
            object.__setattr__(self, "end_ms", None)
        for peak in self.peaks_ms:
            hi = self.t_ms if self.end_ms is None else self.end_ms
            if not isinstance(peak, int) or not self.t_ms <= peak <= hi:
                raise ExportDataError(
                    f"moment {self.id}: peak {peak!r} lies outside {self.t_ms}–{hi} ms"
                )
        for name in ("peaks_ms", "codes", "researcher_codes"):
            value = getattr(self, name)
            if type(value) is not tuple:
                object.__setattr__(self, name, tuple(value))
        if self.codings:
            object.__setattr__(self, "codings", tuple(_as(Coding, c) for c in self.codings))
        elif type(self.codings) is not tuple:
            object.__setattr__(self, "codings", ())
        object.__setattr__(self, "ratings", _frozen_map(self.ratings))
        object.__setattr__(self, "prompt_answers", _frozen_map(self.prompt_answers))

    @property
    def is_point(self) -> bool:
        return self.end_ms is None


@dataclass(frozen=True)
class InterviewMedia:
    """One lane's recall interview audio, linked from the exports (never its server path)."""

    media_filename: str
    duration_ms: int
    time_origin_ms: int | None = None
    """Interview-audio time at which the session video's time 0 would play when the two clocks
    run together as in the first stretch the interview played the video (audio_ms - video_ms
    of the first play); None when that stretch began further into the video than the audio
    (ELAN takes no negative offset) or the video was never played."""
    segments: int = 0
    utterances: int = 0

    def __post_init__(self) -> None:
        if _PATH_SEPARATORS.search(self.media_filename):
            raise ExportDataError(
                f"interview media {self.media_filename!r} must be a bare file name, not a path"
            )


@dataclass(frozen=True)
class Pair:
    """A therapist moment matched with a client moment; lag = client t_ms − therapist t_ms."""

    therapist_moment_id: int
    client_moment_id: int
    lag_ms: int


@dataclass(frozen=True)
class ExportRecording:
    """One session recording with every moment of both lanes and the timeline's figures."""

    id: int | str
    session_label: str
    media_filename: str
    duration_ms: int
    fps: float | None = None
    clips: tuple[Clip, ...] = ()
    moments: tuple[ExportMoment, ...] = ()
    pairs: tuple[Pair, ...] = ()
    figures: Mapping[str, float | None] = field(default_factory=dict)
    recall: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    """Per lane: participant_code, mode (self | researcher), status, imported moments."""
    coder_agreement: Mapping[str, object] = field(default_factory=dict)
    """`ipr.coders.coder_agreement` of this recording (empty when nobody coded it)."""
    interviews: Mapping[str, InterviewMedia] = field(default_factory=dict)
    """Per lane: the recall interview's audio (researcher-led sessions that attached one)."""

    def __post_init__(self) -> None:
        where = f"recording {self.id}"
        if _PATH_SEPARATORS.search(self.media_filename):
            raise ExportDataError(
                f"{where}: media_filename {self.media_filename!r} must be a bare file name, "
                "never a path (exports must not reveal the server's file system)"
            )
        if self.duration_ms < 0:
            raise ExportDataError(f"{where}: duration_ms is negative")
        ids = [m.id for m in self.moments]
        if len(set(ids)) != len(ids):
            raise ExportDataError(f"{where}: moment ids are not unique")
        object.__setattr__(self, "clips", tuple(_as(Clip, c) for c in self.clips))
        object.__setattr__(self, "moments", tuple(self.moments))
        object.__setattr__(self, "pairs", tuple(_as(Pair, p) for p in self.pairs))
        object.__setattr__(self, "figures", _frozen_map(self.figures))
        object.__setattr__(self, "recall", _frozen_map(self.recall))
        object.__setattr__(self, "coder_agreement", _frozen_map(self.coder_agreement))
        object.__setattr__(self, "interviews", _frozen_map(self.interviews))

    def sorted_moments(self) -> list[ExportMoment]:
        """Moments in the order every export lists them: time, then therapist first, then id."""
        return sorted(self.moments, key=lambda m: (m.t_ms, LANES.index(m.lane), m.id))

    def answered(self, moment: ExportMoment) -> ExportMoment | None:
        """The moment a response answers, if it is part of this recording."""
        if moment.responds_to_id is None:
            return None
        return next((m for m in self.moments if m.id == moment.responds_to_id), None)

    def clip_at(self, t_ms: int) -> int | None:
        """The index of the clip holding `t_ms` (a boundary belongs to the later clip)."""
        starts, clips = self._clip_lookup()
        i = bisect_right(starts, t_ms) - 1
        if i < 0:
            return None
        clip = clips[i]
        if t_ms < clip.end_ms or t_ms == clip.end_ms == self.duration_ms:
            return clip.index
        return None

    def _clip_lookup(self) -> tuple[list[int], list[Clip]]:
        """Clips sorted by start, computed once (every exported row asks for its clip)."""
        cached = self.__dict__.get("_clip_cache")
        if cached is None:
            clips = sorted(self.clips, key=lambda c: c.start_ms)
            cached = ([c.start_ms for c in clips], clips)
            object.__setattr__(self, "_clip_cache", cached)
        return cached


@dataclass(frozen=True)
class ExportDyad:
    """A therapist–client pair, known only by pseudonymous codes."""

    code: str
    therapist_code: str
    client_code: str
    recordings: tuple[ExportRecording, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "recordings", tuple(self.recordings))


@dataclass(frozen=True)
class Provenance:
    """How the export was made: software, every figure's parameters, the participants' brief.

    The app fills it (`ipr.dataset`); data built by hand gets the running software and no
    parameters, so every file still says which version wrote it.
    """

    software: Mapping[str, str] = field(default_factory=software)
    parameters: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    instructions: str = ""
    language: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "software", _frozen_map(self.software))
        object.__setattr__(self, "parameters", _frozen_map(self.parameters))


@dataclass(frozen=True)
class ExportStudy:
    """The root of an export; a single-recording export is a study with one dyad and recording."""

    name: str
    codebook: tuple[Code, ...] = ()
    scales: tuple[Scale, ...] = ()
    dyads: tuple[ExportDyad, ...] = ()
    exported_at: datetime = DEFAULT_EXPORTED_AT
    provenance: Provenance = field(default_factory=Provenance)
    followup_scales: tuple[str, ...] | None = None
    """The scale keys re-rated in the study's follow-up pass; None: the study has none (the
    exports then carry no follow-up columns or keys)."""
    prompts: tuple[Prompt, ...] = ()
    """The interviewer's prompts, when the study has prompt answers (a column each)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(_as(Prompt, p) for p in self.prompts))
        if self.exported_at.tzinfo is None:
            raise ExportDataError("exported_at must carry a time zone (use UTC)")
        object.__setattr__(self, "codebook", tuple(self.codebook))
        object.__setattr__(self, "scales", tuple(self.scales))
        object.__setattr__(self, "dyads", tuple(self.dyads))
        scale_keys = {s.key for s in self.scales}
        for ctx in self.recordings():
            for moment in ctx.recording.moments:
                if scale_keys.issuperset(moment.ratings):
                    continue
                unknown = sorted(set(moment.ratings) - scale_keys)
                if unknown:
                    raise ExportDataError(
                        f"moment {moment.id}: rating scale(s) {', '.join(unknown)} are not "
                        f"among the study's scales"
                    )

    def recordings(self) -> Iterator[RecordingContext]:
        """Every recording with its dyad, in the order given."""
        for dyad in self.dyads:
            for recording in dyad.recordings:
                yield RecordingContext(self, dyad, recording)

    def recording(self, recording_id: int | str) -> RecordingContext:
        for ctx in self.recordings():
            if ctx.recording.id == recording_id:
                return ctx
        raise ExportDataError(f"recording {recording_id!r} is not part of study {self.name!r}")

    def only_recording(self) -> RecordingContext:
        """The single recording of a one-recording export (what per-recording formats need)."""
        found = list(self.recordings())
        if len(found) != 1:
            raise ExportDataError(f"expected exactly one recording, the data holds {len(found)}")
        return found[0]


@dataclass(frozen=True)
class RecordingContext:
    """A recording together with the study and dyad it belongs to."""

    study: ExportStudy
    dyad: ExportDyad
    recording: ExportRecording

    def lane_code(self, lane: str) -> str:
        return self.dyad.therapist_code if lane == "therapist" else self.dyad.client_code


def format_timecode(ms: int) -> str:
    """HH:MM:SS.mmm, the one human-readable form of a time in every export."""
    if ms < 0:
        raise ExportDataError(f"cannot format a negative time ({ms} ms) as a timecode")
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


_TIMECODE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")


def parse_timecode(text: str) -> int:
    """Read HH:MM:SS.mmm (or MM:SS, with ',' or '.' before the milliseconds) into ms."""
    match = _TIMECODE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a timecode like 00:01:02.500")
    hours, minutes, seconds, frac = match.groups()
    if int(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
        raise ValueError(f"{text!r} has minutes or seconds of 60 or more")
    millis = int((frac or "0").ljust(3, "0"))
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + millis


def safe_name(text: str) -> str:
    """A file-name-safe form of a code or label for paths inside bundles."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "unnamed"
