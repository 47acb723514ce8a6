"""The recall interview: its audio aligned to the stops, transcripts, distress, consent, withdrawal.

Plain Python and SQLAlchemy (no Flask). A researcher-led recall session may carry one interview
recording made on another device, with the player events logged during the interview (both
clocks: ``video_ms`` on the session video, ``audio_ms`` on the interview audio). A moment's
*segment* of the interview runs from the pause (or mark) at that moment to the next play, or to
the end of the audio: that is where the researcher asked about it. Transcript utterances are
attached to the moment whose segment contains their start.

The prompt sheet and its answers are ``ipr.prompts``; the follow-up pass is ``ipr.followup``.
Automatic transcription runs a locally installed model configured as
``IPR_TRANSCRIBE_COMMAND`` (``transcribe``, job ``interview_transcribe``); none is bundled.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import webvtt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ipr import audit, jobs, mail, studies, study_texts
from ipr.errors import Conflict, ValidationError
from ipr.exports.data import format_timecode
from ipr.media._run import FFPROBE, RunLimits, run
from ipr.media.errors import ProcessingError
from ipr.models import (
    AuditEvent,
    ConsentRecord,
    InterviewAudio,
    InterviewUtterance,
    Job,
    Membership,
    Moment,
    Participant,
    PromptAnswer,
    RecallSession,
    User,
    VoiceNote,
    utcnow,
)

EVENT_TYPES = ("play", "pause", "seek", "mark", "stop")  # stop: the interview recording ended
STOP_TYPES = ("pause", "mark")
MAX_EVENTS = 20_000
MAX_MS = 24 * 3600 * 1000  # a day: no interview is longer
MAX_TRANSCRIPT_LINES = 50_000
# ffprobe's format name -> the extension the file is stored under (audio containers only)
AUDIO_FORMATS = {
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "matroska,webm": "webm",
}
RENOTIFY_AFTER = dt.timedelta(minutes=10)  # one e-mail per distress, not one per click
PROBE_LIMITS = RunLimits(timeout_s=30.0, cpu_s=30, address_space_bytes=2 * 1024**3)

DEFAULT_SUPPORT = {
    "en": "Thank you for telling us. We have paused here, and the researcher has been told. "
    "You do not need to go on. If you feel unsafe or overwhelmed, please contact your "
    "therapist or your doctor, or call the emergency number 113 (Norway) / 112 (EU).",
    "nb": "Takk for at du sa ifra. Vi har tatt en pause her, og forskeren har fått beskjed. "
    "Du trenger ikke å fortsette. Hvis du føler deg utrygg eller overveldet, ta kontakt med "
    "terapeuten din eller legen din, eller ring nødnummeret 113.",
}


class InterviewProblems(ValidationError):
    """The interview upload or transcript has problems; ``problems`` lists each one."""

    code = "invalid_interview"

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Segment:
    moment_id: int
    audio_start_ms: int
    audio_end_ms: int

    def to_dict(self) -> dict[str, int]:
        return {
            "moment_id": self.moment_id,
            "audio_start_ms": self.audio_start_ms,
            "audio_end_ms": self.audio_end_ms,
        }


@dataclass(frozen=True)
class Utterance:
    start_ms: int
    end_ms: int | None
    text: str


# --- the audio ---------------------------------------------------------------------------------


def probe_audio(path: Path) -> tuple[str, str, int]:
    """(extension, ffprobe format name, duration in ms) of an audio-only file, or a 422."""
    args = [
        FFPROBE, "-v", "error", "-hide_banner", "-protocol_whitelist", "file",
        "-format_whitelist", "wav,mp3,flac,ogg,mov,matroska",
        "-show_entries", "format=format_name,duration:stream=codec_type",
        "-of", "json", str(path),
    ]  # fmt: skip
    done = run(args, PROBE_LIMITS)
    bad = ValidationError(
        "The file is not an audio recording this server reads "
        "(WAV, MP3, FLAC, Ogg, M4A or WebM audio).",
        field="file",
    )
    if done.returncode != 0:
        raise bad
    try:
        info = json.loads(done.stdout or b"{}")
    except ValueError:
        raise bad from None
    fmt = str(info.get("format", {}).get("format_name", ""))
    kinds = [s.get("codec_type") for s in info.get("streams", [])]
    if fmt not in AUDIO_FORMATS or "audio" not in kinds or "video" in kinds:
        raise bad
    try:
        duration_ms = round(float(info["format"]["duration"]) * 1000)
    except (KeyError, TypeError, ValueError):
        raise bad from None
    if not 0 < duration_ms <= MAX_MS:
        raise bad
    return AUDIO_FORMATS[fmt], fmt, duration_ms


def _int_ms(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MS


def parse_events(raw: str | None, moment_ids: set[int], duration_ms: int) -> list[dict[str, int]]:
    """The player events, strictly: a JSON list of objects in interview-audio order."""
    if raw is None or not raw.strip():
        raise InterviewProblems("Send the player events as the field 'events'.", ["events"])
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InterviewProblems("'events' is not JSON.", [f"events: {exc}"]) from None
    if not isinstance(data, list) or not data:
        raise InterviewProblems("'events' must be a non-empty JSON list.", ["events"])
    if len(data) > MAX_EVENTS:
        raise InterviewProblems(f"At most {MAX_EVENTS} events.", ["events"])
    problems: list[str] = []
    out: list[dict[str, int]] = []
    last = 0
    for i, ev in enumerate(data):
        where = f"events[{i}]"
        if not isinstance(ev, dict):
            problems.append(f"{where}: not an object")
            continue
        extra = set(ev) - {"type", "video_ms", "audio_ms", "moment_id"}
        if extra:
            problems.append(f"{where}: unknown fields {', '.join(sorted(map(str, extra)))}")
        kind = ev.get("type")
        if kind not in EVENT_TYPES:
            problems.append(f"{where}: type must be one of {', '.join(EVENT_TYPES)}")
        for name in ("video_ms", "audio_ms"):
            if not _int_ms(ev.get(name)):
                problems.append(f"{where}: {name} must be a whole number of ms ≥ 0")
        audio = ev.get("audio_ms")
        if _int_ms(audio):
            if audio < last:
                problems.append(f"{where}: audio_ms goes back in time ({audio} < {last})")
            if audio > duration_ms:
                problems.append(
                    f"{where}: audio_ms {audio} is past the end of the audio ({duration_ms})"
                )
            last = max(last, audio)
        moment_id = ev.get("moment_id")
        if moment_id is not None and moment_id not in moment_ids:
            problems.append(f"{where}: moment_id {moment_id!r} is no moment of this session")
        if kind == "mark" and moment_id is None:
            problems.append(f"{where}: a mark names its moment_id")
        item = {"type": kind, "video_ms": ev.get("video_ms"), "audio_ms": audio}
        if moment_id is not None:
            item["moment_id"] = moment_id
        out.append(item)  # type: ignore[arg-type]
    if problems:
        raise InterviewProblems("The events have problems.", problems)
    return out


def segments(events: Iterable[dict[str, Any]], duration_ms: int) -> list[Segment]:
    """Each stop's stretch of interview: from the pause or mark at a moment to the next play
    or stop (or the end of the audio). A mark and a pause at the same stop make one segment."""
    out: list[Segment] = []
    open_: dict[int, int] = {}
    for ev in events:
        if ev["type"] in STOP_TYPES and ev.get("moment_id") is not None:
            open_.setdefault(ev["moment_id"], ev["audio_ms"])
        elif ev["type"] in ("play", "stop"):
            out += [Segment(m, start, ev["audio_ms"]) for m, start in open_.items()]
            open_.clear()
    out += [Segment(m, start, duration_ms) for m, start in open_.items()]
    return sorted(out, key=lambda s: (s.audio_start_ms, s.moment_id))


def time_origin(events: Iterable[dict[str, Any]]) -> int | None:
    """The interview-audio time at which video time 0 lies while the two clocks run together
    as in the first stretch the interview played the video (``audio_ms - video_ms`` of the
    first play): the constant offset a second medium gets in ELAN (``TIME_ORIGIN``). None when
    the video never played, or that stretch began further into the video than into the audio
    (an offset below 0, which ELAN does not take)."""
    for ev in events:
        if ev["type"] == "play":
            offset = ev["audio_ms"] - ev["video_ms"]
            return offset if offset >= 0 else None
    return None


def _live_moment_ids(db: Session, rs: RecallSession) -> set[int]:
    return set(
        db.scalars(
            select(Moment.id).where(Moment.recall_session_id == rs.id, Moment.deleted_at.is_(None))
        )
    )


def get_audio(db: Session, rs: RecallSession) -> InterviewAudio | None:
    return db.scalar(select(InterviewAudio).where(InterviewAudio.recall_session_id == rs.id))


def audio_path(storage: Any, rs: RecallSession, audio: InterviewAudio) -> Path:
    return storage.interview_path(rs.recording.storage_key, audio.storage_name)


def attach_audio(
    db: Session,
    storage: Any,
    rs: RecallSession,
    upload: Path,
    events_raw: str | None,
    user: User,
    *,
    ip: str | None = None,
) -> InterviewAudio:
    """Keep ``upload`` (moved) as the interview of a researcher-led session, aligned by its
    events; a second upload replaces the first (and re-attaches the transcript)."""
    if rs.mode != "researcher":
        raise Conflict("Only a researcher-led recall session has an interview.")
    ext, fmt, duration_ms = probe_audio(upload)
    events = parse_events(events_raw, _live_moment_ids(db, rs), duration_ms)
    name = f"{uuid.uuid4().hex}.{ext}"
    target = storage.interview_path(rs.recording.storage_key, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    size = upload.stat().st_size
    shutil.move(str(upload), target)
    old = get_audio(db, rs)
    old_path = audio_path(storage, rs, old) if old else None
    if old is not None:
        db.delete(old)
        db.flush()
    audio = InterviewAudio(
        study_id=rs.study_id, recall_session_id=rs.id, storage_name=name, size_bytes=size,
        duration_ms=duration_ms, format_name=fmt, events=events, created_by_id=user.id,
    )  # fmt: skip
    db.add(audio)
    _reattach(db, rs, segments(events, duration_ms))
    audit.record(
        db, "interview_audio_attached", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip,
        details={"duration_ms": duration_ms, "events": len(events), "format": fmt,
                 "replaced": old is not None},
    )  # fmt: skip
    try:
        db.commit()
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if old_path is not None:
        old_path.unlink(missing_ok=True)
    return audio


def interview_dict(
    db: Session, rs: RecallSession, url_for_audio: Callable[[], str]
) -> dict[str, Any] | None:
    audio = get_audio(db, rs)
    if audio is None:
        return None
    return {
        "audio_url": url_for_audio(),
        "duration_ms": audio.duration_ms,
        "format": audio.format_name,
        "segments": [s.to_dict() for s in segments(audio.events, audio.duration_ms)],
    }


# --- transcripts -------------------------------------------------------------------------------

_STAMP = re.compile(r"^\[(\d{1,2}):([0-5]\d):([0-5]\d)(?:[.,](\d{1,3}))?\]\s*(.*)$")


def _ts_ms(text: str) -> int:
    h, m, rest = text.replace(",", ".").split(":")
    s, _, frac = rest.partition(".")
    return (int(h) * 3600 + int(m) * 60 + int(s)) * 1000 + int((frac + "000")[:3])


def is_eaf(data: bytes, filename: str) -> bool:
    head = data[:400].lstrip(b"\xef\xbb\xbf \t\r\n")
    return filename.lower().endswith(".eaf") or (
        head.startswith(b"<?xml") and b"ANNOTATION_DOCUMENT" in data[:2000]
    )


def parse_eaf_transcript(data: bytes, tier: str | None = None) -> tuple[str, list[Utterance]]:
    """(tier id, utterances) from an ELAN transcript of the interview audio: the named tier,
    else the tier with the most non-empty annotations (the first of equals in the file).
    Times are ELAN's (``ipr.exports.import_elan.annotation_times``: unaligned slots placed as
    ELAN places them, the master medium's TIME_ORIGIN added), so on the interview audio when
    the transcript's master medium is the interview audio."""
    from ipr.exports.import_elan import annotation_times
    from ipr.exports.imports import ImportValidationError, _eaf_tree

    try:
        root = _eaf_tree(data)
    except ImportValidationError as exc:
        raise InterviewProblems("The ELAN transcript could not be read.", exc.problems) from None
    found: dict[str, list[tuple[str, str]]] = {}
    for node in root.iter("TIER"):
        said = []
        for ann in node.iterfind("ANNOTATION/*"):
            value = " ".join((ann.findtext("ANNOTATION_VALUE") or "").split())
            if value:
                said.append((ann.get("ANNOTATION_ID", ""), value))
        found.setdefault(node.get("TIER_ID", ""), said)
    if tier is not None and tier not in found:
        names = ", ".join(repr(n) for n in found) or "none"
        raise InterviewProblems(
            f"The ELAN file has no tier {tier!r}.", [f"tier: not one of {names}"]
        )
    if tier is None:
        if not any(found.values()):
            raise InterviewProblems("The ELAN transcript has no utterances.", ["file"])
        tier = max(found, key=lambda name: len(found[name]))  # max keeps the first of equals
    times = annotation_times(root)
    out: list[Utterance] = []
    problems = []
    for ann_id, value in found[tier]:
        if ann_id not in times:
            problems.append(f"annotation {ann_id}: its time cannot be resolved")
            continue
        start, end = times[ann_id]
        if not (_int_ms(start) and _int_ms(end)):
            problems.append(f"annotation {ann_id}: time {start}–{end} ms is out of range")
            continue
        out.append(Utterance(start, end, value))
    if len(out) > MAX_TRANSCRIPT_LINES:
        problems.append(f"more than {MAX_TRANSCRIPT_LINES} annotations")
    if problems or not out:
        raise InterviewProblems(
            f"The tier {tier!r} has problems.", problems or [f"tier {tier!r}: no utterances"]
        )
    return tier, sorted(out, key=lambda u: (u.start_ms, u.end_ms or 0))


def parse_transcript(data: bytes, filename: str) -> tuple[str, list[Utterance]]:
    """(format, utterances) from WebVTT, SRT or ``[hh:mm:ss] text`` lines."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InterviewProblems("The transcript must be UTF-8 text.", ["file"]) from None
    lower = filename.lower()
    if text.lstrip().startswith("WEBVTT") or lower.endswith(".vtt"):
        fmt, reader = "vtt", webvtt.from_buffer
    elif lower.endswith(".srt"):
        fmt, reader = "srt", lambda buf: webvtt.from_buffer(buf, format="srt")
    else:
        return "text", _parse_stamped(text)
    try:
        captions = reader(io.StringIO(text))
    except Exception as exc:  # webvtt-py raises its own and plain errors on malformed files
        raise InterviewProblems(
            f"The {fmt.upper()} transcript could not be read.", [str(exc)]
        ) from None
    out = [
        Utterance(_ts_ms(c.start), _ts_ms(c.end), " ".join(c.text.split()))
        for c in captions
        if c.text.strip()
    ]
    if not out:
        raise InterviewProblems("The transcript has no utterances.", ["file"])
    return fmt, sorted(out, key=lambda u: u.start_ms)


def _parse_stamped(text: str) -> list[Utterance]:
    starts: list[tuple[int, str]] = []
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _STAMP.match(line.strip())
        if m is None:
            problems.append(f"line {n}: does not start with [hh:mm:ss]")
            continue
        h, mi, s, frac, said = m.groups()
        ms = (int(h) * 3600 + int(mi) * 60 + int(s)) * 1000 + int(((frac or "") + "000")[:3])
        if said.strip():
            starts.append((ms, " ".join(said.split())))
    if len(starts) > MAX_TRANSCRIPT_LINES:
        problems.append(f"more than {MAX_TRANSCRIPT_LINES} lines")
    if problems or not starts:
        raise InterviewProblems(
            "The timestamped transcript has problems.", problems or ["no utterances"]
        )
    starts.sort(key=lambda p: p[0])
    return [
        Utterance(ms, starts[i + 1][0] if i + 1 < len(starts) else None, said)
        for i, (ms, said) in enumerate(starts)
    ]


def moment_for(start_ms: int, segs: list[Segment]) -> int | None:
    """The moment whose segment contains ``start_ms`` (start inclusive, end exclusive)."""
    for s in segs:
        if s.audio_start_ms <= start_ms < s.audio_end_ms:
            return s.moment_id
    return None


def _reattach(db: Session, rs: RecallSession, segs: list[Segment]) -> None:
    for u in db.scalars(
        select(InterviewUtterance).where(InterviewUtterance.recall_session_id == rs.id)
    ):
        u.moment_id = moment_for(u.start_ms, segs)


def import_transcript(
    db: Session,
    rs: RecallSession,
    data: bytes,
    filename: str,
    user: User,
    *,
    ip: str | None = None,
    tier: str | None = None,
) -> dict[str, Any]:
    """Replace the session's transcript; each utterance goes to the stop it was said at.
    An ELAN file gives the utterances of ``tier``, else of its tier with most annotations."""
    audio = get_audio(db, rs)
    if audio is None:
        raise Conflict("Attach the interview audio first: the transcript is aligned by it.")
    chosen = None
    if is_eaf(data, filename):
        fmt = "eaf"
        chosen, utterances = parse_eaf_transcript(data, tier or None)
    else:
        fmt, utterances = parse_transcript(data, filename)
    out = store_transcript(db, rs, audio, fmt, utterances, user=user, ip=ip)
    return {"format": fmt, **({"tier": chosen} if chosen is not None else {}), **out}


def store_transcript(
    db: Session,
    rs: RecallSession,
    audio: InterviewAudio,
    fmt: str,
    utterances: list[Utterance],
    *,
    user: User | None = None,
    actor: str | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    """Replace the session's utterances with ``utterances``, each attached to its stop;
    audited and committed. Returns what went where."""
    segs = segments(audio.events, audio.duration_ms)
    db.query(InterviewUtterance).filter(InterviewUtterance.recall_session_id == rs.id).delete()
    attached: dict[int, int] = {}
    for u in utterances:
        mid = moment_for(u.start_ms, segs)
        if mid is not None:
            attached[mid] = attached.get(mid, 0) + 1
        db.add(
            InterviewUtterance(
                study_id=rs.study_id, recall_session_id=rs.id, moment_id=mid,
                start_ms=u.start_ms, end_ms=u.end_ms, text=u.text,
            )
        )  # fmt: skip
    audit.record(
        db, "interview_transcript_imported", user=user, actor=actor, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip,
        details={"format": fmt, "utterances": len(utterances),
                 "attached": sum(attached.values())},
    )  # fmt: skip
    db.commit()
    return {
        "utterances": len(utterances),
        "attached": {str(k): v for k, v in sorted(attached.items())},
        "unattached": len(utterances) - sum(attached.values()),
    }


def summaries(db: Session, rs_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per recall session with interview audio: its length and how many utterances its
    transcript holds (0: none imported yet). What the recording page shows per session."""
    said = dict(
        db.execute(
            select(InterviewUtterance.recall_session_id, func.count())
            .where(InterviewUtterance.recall_session_id.in_(rs_ids))
            .group_by(InterviewUtterance.recall_session_id)
        ).all()
    )
    audios = db.scalars(select(InterviewAudio).where(InterviewAudio.recall_session_id.in_(rs_ids)))
    return {
        a.recall_session_id: {
            "duration_ms": a.duration_ms,
            "utterances": said.get(a.recall_session_id, 0),
        }
        for a in audios
    }


def transcripts(db: Session, moment_ids: Any) -> dict[int, list[dict[str, Any]]]:
    """Each moment's utterances in order; ``moment_ids`` is a list or a select of ids."""
    out: dict[int, list[dict[str, Any]]] = {}
    for u in db.scalars(
        select(InterviewUtterance)
        .where(InterviewUtterance.moment_id.in_(moment_ids))
        .order_by(InterviewUtterance.start_ms, InterviewUtterance.id)
    ):
        out.setdefault(u.moment_id, []).append(  # type: ignore[arg-type]
            {"start_ms": u.start_ms, "end_ms": u.end_ms, "text": u.text}
        )
    return out


TRANSCRIBE_LIMITS = RunLimits(
    timeout_s=6 * 3600.0, cpu_s=24 * 3600, address_space_bytes=64 * 1024**3,
    file_size_bytes=1024**3,
)  # fmt: skip
"""A local speech model is slow and large: hours of CPU and tens of GiB of address space."""


class NoTranscriber(Conflict):
    """No transcription command is configured (``IPR_TRANSCRIBE_COMMAND``)."""

    code = "no_transcriber"


class TranscriptionFailed(ValidationError):
    """The configured transcription command failed or printed no readable transcript."""

    code = "transcription_failed"


def transcribe_args(command: str, path: Path) -> list[str]:
    """The argument list for ``command`` (a shell-like line, split with shlex, never run by a
    shell): ``{audio}`` is replaced by the audio's path, else the path is added at the end."""
    import shlex

    words = shlex.split(command)
    if not words:
        raise NoTranscriber("IPR_TRANSCRIBE_COMMAND is empty.")
    if any("{audio}" in w for w in words):
        return [w.replace("{audio}", str(path)) for w in words]
    return [*words, str(path)]


def transcribe(path: Path, command: str | None) -> tuple[str, list[Utterance]]:
    """The hook for automatic transcription by a locally installed model (none is bundled:
    the project fetches no model weights). ``command`` (``IPR_TRANSCRIBE_COMMAND``) is run
    with the interview audio's path and must print the transcript on standard output as
    WebVTT (or SRT, or ``[hh:mm:ss] text`` lines), times on that audio: typically a small
    script around faster-whisper or whisper.cpp with local weights (docs/interview.md).
    Returns (format, utterances)."""
    if not command or not command.strip():
        raise NoTranscriber(
            "No transcription model is configured (IPR_TRANSCRIBE_COMMAND); "
            "import a transcript instead."
        )
    args = transcribe_args(command, path)
    try:
        done = run(args, TRANSCRIBE_LIMITS)
    except OSError as exc:  # not installed, not executable
        raise TranscriptionFailed(
            f"The transcription command {args[0]!r} cannot run: {exc}"
        ) from None
    except ProcessingError:
        raise TranscriptionFailed(
            f"The transcription command ran longer than {TRANSCRIBE_LIMITS.timeout_s / 3600:.0f}"
            " hours and was stopped."
        ) from None
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise TranscriptionFailed(
            f"The transcription command failed (exit {done.returncode}): {' '.join(tail)}"
        )
    out = done.stdout or b""
    text = out.decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    name = "transcript.vtt" if text.startswith("WEBVTT") else (
        "transcript.srt" if "-->" in text else "transcript.txt"
    )  # fmt: skip
    try:
        return parse_transcript(out, name)
    except InterviewProblems as exc:
        raise TranscriptionFailed(
            f"The transcription command printed no readable transcript: {exc.message} "
            + "; ".join(exc.problems[:3])
        ) from None


def queue_transcription(
    db: Session, huey: Any, rs: RecallSession, user: User, *, command: str | None,
    ip: str | None = None,
) -> Any:  # fmt: skip
    """Queue the ``interview_transcribe`` job for a session's interview audio (editor)."""
    if not command or not command.strip():
        raise NoTranscriber(
            "No transcription model is configured (IPR_TRANSCRIBE_COMMAND); "
            "import a transcript instead."
        )
    if get_audio(db, rs) is None:
        raise Conflict("Attach the interview audio first: it is what gets transcribed.")
    audit.record(
        db, "interview_transcription_requested", user=user, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip,
    )  # fmt: skip
    return jobs.enqueue(
        db, huey, "interview_transcribe", study_id=rs.study_id,
        recording_id=rs.recording_id, params={"recall_session_id": rs.id},
    )  # fmt: skip


def transcription_jobs(db: Session, recording_id: int) -> dict[int, Job]:
    """The latest ``interview_transcribe`` job of each recall session of a recording: what the
    recording page shows beside *Transcribe* (and polls while it is queued or running)."""
    out: dict[int, Job] = {}
    for job in db.scalars(
        select(Job)
        .where(Job.recording_id == recording_id, Job.kind == "interview_transcribe")
        .order_by(Job.id)
    ):
        rs_id = (job.params or {}).get("recall_session_id")
        if isinstance(rs_id, int):
            out[rs_id] = job
    return out


@jobs.handler("interview_transcribe")
def transcribe_job(ctx: jobs.Context) -> None:
    """Run the configured local model on the session's interview audio and attach what it
    heard to the stops, as an imported transcript would be (replacing the previous one)."""
    from ipr.storage import Storage

    rs = ctx.db.get(RecallSession, (ctx.job.params or {}).get("recall_session_id"))
    if rs is None:
        raise jobs.JobFailed("The recall session no longer exists.")
    audio = get_audio(ctx.db, rs)
    if audio is None:
        raise jobs.JobFailed("The recall session has no interview audio any more.")
    path = audio_path(Storage(ctx.config["RECORDINGS_DIR"]), rs, audio)
    ctx.report("Transcribing the interview", 0.1)
    try:
        fmt, utterances = transcribe(path, ctx.config.get("TRANSCRIBE_COMMAND"))
    except (NoTranscriber, TranscriptionFailed) as exc:
        raise jobs.JobFailed(exc.message) from None
    ctx.report("Attaching the utterances to the stops", 0.9)
    store_transcript(ctx.db, rs, audio, f"model:{fmt}", utterances, actor="worker")


# --- distress ----------------------------------------------------------------------------------


def support_text(study: Any, lang: str) -> str:
    """The study's own support text in ``lang`` (``Study.texts['support']``), else ours."""
    own = ((study.texts or {}).get("support") or {}).get(lang)
    return own or DEFAULT_SUPPORT.get(lang) or DEFAULT_SUPPORT["en"]


def set_support_text(study: Any, lang: str, text: str) -> None:
    if lang not in study_texts.LANGUAGES:
        raise ValidationError(f"Unknown language {lang!r}.", field="language")
    text = text.strip()
    if len(text) > 4000:
        raise ValidationError("At most 4000 characters.", field="text")
    texts = {k: dict(v) for k, v in (study.texts or {}).items()}
    support = texts.setdefault("support", {})
    if text:
        support[lang] = text
    else:
        support.pop(lang, None)
    study.texts = texts


DISTRESS_PAGES = ("recall", "followup")
"""Where the participant pressed *I need to stop*: the recall page or the follow-up page."""


def flag_distress(
    db: Session,
    huey: Any,
    rs: RecallSession,
    *,
    smtp: bool,
    by_researcher: User | None = None,
    ip: str | None = None,
    where: str = "recall",
    moment_id: Any = None,
) -> dict[str, Any]:
    """Pause the session calmly, tell the owners (audit; e-mail when configured), and give
    back the study's support text in the participant's language. A repeat within
    ``RENOTIFY_AFTER`` is audited again but sends no second e-mail.

    ``where`` names the page (``DISTRESS_PAGES``); on the follow-up page ``moment_id`` is the
    moment being looked at again, recorded when it is one of the session's own live moments.
    A flag is never refused over these: an unknown page counts as the recall page and an
    unknown moment as none."""
    now = utcnow()
    recent = rs.paused_at is not None and now - rs.paused_at < RENOTIFY_AFTER
    rs.paused_at = rs.last_seen_at = now
    study = rs.recording.dyad.study
    actor = by_researcher.email if by_researcher else f"participant {rs.participant.code}"
    where = where if where in DISTRESS_PAGES else "recall"
    details: dict[str, Any] = {"participant": rs.participant.code, "where": where}
    if where == "followup":
        moment = _own_moment(db, rs, moment_id)
        details["moment_id"] = moment.id if moment is not None else None
        details["position_ms"] = moment.t_ms if moment is not None else None
    else:
        details["position_ms"] = rs.last_position_ms
    audit.record(
        db, "distress_flagged", actor=actor, user=by_researcher, study_id=rs.study_id,
        obj=("recall_session", rs.id), ip=ip, details=details,
    )  # fmt: skip
    db.commit()
    job_id = None
    if smtp and not recent:
        job_id = jobs.enqueue(
            db, huey, "distress_email", study_id=rs.study_id,
            params={"recall_session_id": rs.id, "where": where,
                    "position_ms": details["position_ms"]},
        ).id  # fmt: skip
    lang = study_texts.participant_language(study, rs.participant)
    return {
        "paused": True,
        "support_text": support_text(study, lang),
        "language": lang,
        "owner_notified": True,
        "email_job_id": job_id,
    }


def _own_moment(db: Session, rs: RecallSession, moment_id: Any) -> Moment | None:
    """The session's own live moment with this id, else None."""
    if not isinstance(moment_id, int) or isinstance(moment_id, bool):
        return None
    m = db.get(Moment, moment_id)
    if m is None or m.recall_session_id != rs.id or m.deleted_at is not None:
        return None
    return m


@dataclass(frozen=True)
class DistressFlag:
    """The latest *I need to stop* of one recall session, and how often it was pressed."""

    at: dt.datetime
    position_ms: int
    count: int


def distress_flags(db: Session, rs_ids: Iterable[int]) -> dict[int, DistressFlag]:
    """Each session's latest distress flag, read from the audit trail (``flag_distress``), so
    the researcher's page shows it whether or not an e-mail could be sent."""
    keys = [str(i) for i in rs_ids]
    if not keys:
        return {}
    events = db.execute(
        select(AuditEvent.object_id, AuditEvent.created_at, AuditEvent.details)
        .where(
            AuditEvent.action == "distress_flagged",
            AuditEvent.object_type == "recall_session",
            AuditEvent.object_id.in_(keys),
        )
        .order_by(AuditEvent.id)
    ).all()
    out: dict[int, DistressFlag] = {}
    for object_id, at, details in events:
        rs_id = int(object_id)
        before = out.get(rs_id)
        position = int((details or {}).get("position_ms") or 0)
        out[rs_id] = DistressFlag(at, position, (before.count if before else 0) + 1)
    return out


@jobs.handler("distress_email")
def send_distress_email(ctx: jobs.Context) -> None:
    """E-mail every owner of the study that a participant flagged distress (codes only)."""
    rs = ctx.db.get(RecallSession, (ctx.job.params or {}).get("recall_session_id"))
    if rs is None:
        raise jobs.JobFailed("The recall session no longer exists.")
    if not ctx.config.get("SMTP_URL") or not ctx.config.get("SMTP_FROM"):
        raise jobs.JobFailed("No e-mail server is configured (IPR_SMTP_URL, IPR_SMTP_FROM).")
    server = mail.parse_url(ctx.config["SMTP_URL"])
    study = rs.recording.dyad.study
    owners = ctx.db.scalars(
        select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.study_id == rs.study_id, Membership.role == "owner")
    ).all()
    params = ctx.job.params or {}
    followup = params.get("where") == "followup"
    where = "during the follow-up of" if followup else "in"
    at = params.get("position_ms")
    body = (
        f"Participant {rs.participant.code} flagged 'I need to stop / this is distressing' "
        f"{where} recall session {rs.id} of the study {study.name!r} "
        f"(recording {rs.recording.session_label!r})"
        + (
            f", while looking again at their moment at {format_timecode(at)}"
            if followup and isinstance(at, int)
            else ""
        )
        + (". Their follow-up page is paused." if followup else ". The session is paused.")
        + "\n\nPlease follow the study's safety procedure.\n"
    )
    ctx.report("Sending the e-mail", 0.5)
    for to in owners:
        subject = f"Distress flagged by participant {rs.participant.code}" + (
            " during the follow-up" if followup else ""
        )
        mail.send(server, mail.build(ctx.config["SMTP_FROM"], to, subject, body))
    audit.record(
        ctx.db, "distress_email_sent", actor="worker", study_id=rs.study_id,
        obj=("recall_session", rs.id), details={"owners": len(owners)},
    )  # fmt: skip
    ctx.db.commit()


# --- consent and withdrawal --------------------------------------------------------------------


def consent_dict(c: ConsentRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "participant_id": c.participant_id,
        "sheet_version": c.sheet_version,
        "consented_on": c.consented_on.isoformat(),
        "recorded_by_id": c.recorded_by_id,
        "recorded_at": c.created_at.isoformat(timespec="seconds") + "Z",
    }


def record_consent(
    db: Session, participant: Participant, data: dict[str, Any], user: User, *, ip: str | None
) -> ConsentRecord:
    version = data.get("sheet_version")
    if not isinstance(version, str) or not 0 < len(version.strip()) <= 40:
        raise ValidationError(
            "sheet_version: the information sheet's version (1–40 characters).",
            field="sheet_version",
        )
    raw = data.get("consented_on")
    try:
        day = dt.date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        day = None
    if day is None or not dt.date(2000, 1, 1) <= day <= utcnow().date():
        raise ValidationError(
            "consented_on: the date of consent as YYYY-MM-DD, not in the future.",
            field="consented_on",
        )
    record = ConsentRecord(
        study_id=participant.study_id, participant_id=participant.id,
        sheet_version=version.strip(), consented_on=day, recorded_by_id=user.id,
    )  # fmt: skip
    db.add(record)
    db.flush()
    audit.record(
        db, "consent_recorded", user=user, study_id=participant.study_id,
        obj=("participant", participant.id), ip=ip,
        details={"sheet_version": record.sheet_version, "consented_on": day.isoformat()},
    )  # fmt: skip
    db.commit()
    return record


def consents(db: Session, participant: Participant) -> list[ConsentRecord]:
    return list(
        db.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.participant_id == participant.id)
            .order_by(ConsentRecord.id)
        )
    )


def withdraw(
    db: Session, storage: Any, participant: Participant, user: User, *, ip: str | None = None
) -> dict[str, int]:
    """Erase the participant's recall data everywhere: sessions, moments, voice notes,
    prompt answers, interview audio (rows and files) and transcripts. Returns the receipt
    (counts only), which is also audited. The consent records stay: they show what was
    consented and withdrawn."""
    rs_ids = select(RecallSession.id).where(RecallSession.participant_id == participant.id)
    moment_ids = select(Moment.id).where(Moment.recall_session_id.in_(rs_ids))

    def count(stmt: Any) -> int:
        return int(db.scalar(stmt) or 0)

    audios = db.scalars(
        select(InterviewAudio).where(InterviewAudio.recall_session_id.in_(rs_ids))
    ).all()
    receipt = {
        "recall_sessions": count(select(func.count()).select_from(rs_ids.subquery())),
        "moments": count(select(func.count()).select_from(moment_ids.subquery())),
        "voice_notes": count(
            select(func.count(VoiceNote.id)).where(VoiceNote.moment_id.in_(moment_ids))
        ),
        "interview_audio_files": len(audios),
        "transcript_utterances": count(
            select(func.count(InterviewUtterance.id)).where(
                InterviewUtterance.recall_session_id.in_(rs_ids)
            )
        ),
        "prompt_answers": count(
            select(func.count(PromptAnswer.id)).where(PromptAnswer.moment_id.in_(moment_ids))
        ),
    }
    paths = [audio_path(storage, db.get(RecallSession, a.recall_session_id), a) for a in audios]
    # rows that the database would cascade are removed explicitly too (SQLite without FKs)
    db.query(InterviewUtterance).filter(InterviewUtterance.recall_session_id.in_(rs_ids)).delete(
        synchronize_session=False
    )
    db.query(PromptAnswer).filter(PromptAnswer.moment_id.in_(moment_ids)).delete(
        synchronize_session=False
    )
    for a in audios:
        db.delete(a)
    audit.record(
        db, "participant_withdrawn", user=user, study_id=participant.study_id,
        obj=("participant", participant.id), ip=ip, details=dict(receipt),
    )  # fmt: skip
    studies.erase_participant_data(db, storage, participant, user, ip=ip)  # commits
    for path in paths:
        path.unlink(missing_ok=True)
    # Prepared moment-clip ZIPs are named by a hash of what they hold, not by participant, and
    # hold the moments' words (clips.csv): every one goes; each is made again when asked for.
    storage.prune_exports(-1.0)
    return receipt
