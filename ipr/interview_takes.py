"""The in-browser interview recorder's server side: a *take* is one interview being recorded.

Plain Python (no Flask). The browser's MediaRecorder hands over a chunk every few seconds; each
chunk is appended at a byte offset, like tus: a chunk at the current offset is appended, a chunk
already received (a retry) is answered with the current offset and stored nothing twice, and a
chunk past the current offset is refused with :class:`OffsetMismatch`, which names the offset
to resume from. The player events (both clocks) are sent beside the chunks and replace the
previous list each time. Finishing a take queues the ``interview_finalise`` job: the worker
remuxes the recorded WebM (MediaRecorder writes no duration), probes it and attaches it as the
session's interview audio with ``ipr.interview.attach_audio``.

A take's files live beside the recording, in ``<storage_key>/interview/`` (never public):
``take-<rs_id>-<take>.part`` (the bytes) and ``take-<rs_id>-<take>.json`` (its state). They are
removed when the take is attached, and with the participant's data (``remove_session_files``).
One host appends at a time per take (an exclusive ``flock`` on the state file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ipr import interview, jobs
from ipr.errors import Conflict, IPRError, NotFound, ValidationError
from ipr.media._run import FFMPEG, RunLimits, run
from ipr.models import RecallSession, User, utcnow
from ipr.storage import Storage

CHUNK_MAX_BYTES = 4 * 1024**2  # a MediaRecorder timeslice of a few seconds is ~50 KB
TAKE_RE = re.compile(r"[0-9a-f]{32}")
REMUX_LIMITS = RunLimits(timeout_s=300.0, cpu_s=300, address_space_bytes=2 * 1024**3)
STATES = ("recording", "finishing", "done", "failed")


class OffsetMismatch(IPRError):
    """The chunk does not start where the take ends: resume from ``offset``."""

    status = 409
    code = "offset_mismatch"

    def __init__(self, offset: int, sent: int) -> None:
        super().__init__(
            f"This chunk starts at byte {sent}, but the interview audio received so far ends "
            f"at byte {offset}: send from byte {offset}."
        )
        self.offset = offset


class ChunkTooLarge(IPRError):
    """The chunk, or the take with it, is larger than this server accepts."""

    status = 413
    code = "too_large"


# --- files -------------------------------------------------------------------------------------


def _dir(storage: Storage, rs: RecallSession) -> Path:
    return storage.recording_dir(rs.recording.storage_key) / "interview"


def _paths(storage: Storage, rs: RecallSession, take: str) -> tuple[Path, Path]:
    if not TAKE_RE.fullmatch(take):
        raise NotFound("No such interview recording.")
    base = _dir(storage, rs) / f"take-{rs.id}-{take}"
    return base.with_suffix(".part"), base.with_suffix(".json")


@contextlib.contextmanager
def _locked(state_path: Path) -> Iterator[dict[str, Any]]:
    """The take's state, held under an exclusive lock; changes are written back on exit."""
    try:
        fd = os.open(state_path, os.O_RDWR)
    except FileNotFoundError:
        raise NotFound("No such interview recording.") from None
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        state = json.loads(fh.read() or "{}")
        before = json.dumps(state, sort_keys=True)
        yield state
        if json.dumps(state, sort_keys=True) != before:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(state))
            fh.flush()
            os.fsync(fh.fileno())


def _read(state_path: Path) -> dict[str, Any]:
    try:
        return json.loads(state_path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        raise NotFound("No such interview recording.") from None


def take_dict(storage: Storage, rs: RecallSession, take: str) -> dict[str, Any]:
    part, state_path = _paths(storage, rs, take)
    state = _read(state_path)
    return {
        "take": take,
        "offset": part.stat().st_size if part.exists() else 0,
        "status": state.get("status"),
        "events": len(state.get("events") or []),
        "error": state.get("error"),
        "job_id": state.get("job_id"),
    }


def open_takes(storage: Storage, rs: RecallSession) -> list[dict[str, Any]]:
    """The session's takes not yet attached (recording, finishing or failed), newest first."""
    folder = _dir(storage, rs)
    if not folder.is_dir():
        return []
    found = []
    for state_path in folder.glob(f"take-{rs.id}-*.json"):
        take = state_path.stem.rsplit("-", 1)[1]
        if TAKE_RE.fullmatch(take):
            info = take_dict(storage, rs, take)
            if info["status"] != "done":
                found.append((state_path.stat().st_mtime, info))
    return [t for _, t in sorted(found, key=lambda p: p[0], reverse=True)]


# --- the take's life ---------------------------------------------------------------------------


def start(storage: Storage, rs: RecallSession, user: User) -> dict[str, Any]:
    """A new, empty take of a researcher-led session."""
    if rs.mode != "researcher":
        raise Conflict("Only a researcher-led recall session has an interview.")
    take = uuid.uuid4().hex
    part, state_path = _paths(storage, rs, take)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.touch()
    state = {"status": "recording", "user_id": user.id, "events": [],
             "started_at": utcnow().isoformat(timespec="seconds") + "Z"}  # fmt: skip
    state_path.write_text(json.dumps(state), encoding="utf-8")
    return take_dict(storage, rs, take)


def append(
    storage: Storage, rs: RecallSession, take: str, offset: int, data: bytes, max_total: int
) -> int:
    """Append ``data`` sent for byte ``offset``; returns the take's new length.

    Idempotent: bytes already received are not stored again (a retried chunk, or one that
    overlaps the end, adds only what is new). A gap is refused with :class:`OffsetMismatch`.
    """
    if len(data) > CHUNK_MAX_BYTES:
        raise ChunkTooLarge(f"A chunk can be at most {CHUNK_MAX_BYTES // 1024**2} MiB.")
    part, state_path = _paths(storage, rs, take)
    with _locked(state_path) as state:
        if state.get("status") != "recording":
            raise Conflict("This interview recording is finished; start a new one.")
        size = part.stat().st_size
        if offset > size:
            raise OffsetMismatch(size, offset)
        new = data[size - offset :]
        if not new:
            return size
        if size + len(new) > max_total:
            raise ChunkTooLarge(f"The interview audio can be at most {max_total // 1024**2} MiB.")
        with part.open("ab") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        return size + len(new)


def check_events(raw: Any) -> list[dict[str, Any]]:
    """The browser's event list, shaped like the upload route's (checked fully at the end,
    once the audio's duration is known)."""
    if not isinstance(raw, list) or len(raw) > interview.MAX_EVENTS:
        raise ValidationError(
            f"'events' must be a JSON list of at most {interview.MAX_EVENTS} events.",
            field="events",
        )
    for ev in raw:
        if not isinstance(ev, dict) or ev.get("type") not in interview.EVENT_TYPES:
            raise ValidationError("Each event is an object with a known type.", field="events")
    return raw


def save_events(storage: Storage, rs: RecallSession, take: str, events: Any) -> int:
    """Replace the take's events (the browser sends its whole list each time)."""
    events = check_events(events)
    _, state_path = _paths(storage, rs, take)
    with _locked(state_path) as state:
        if state.get("status") != "recording":
            raise Conflict("This interview recording is finished; start a new one.")
        state["events"] = events
    return len(events)


def finish(
    db: Session, huey: Any, storage: Storage, rs: RecallSession, take: str, events: Any
) -> dict[str, Any]:
    """Close the take (with its final events, if sent) and queue the worker that attaches it.
    Finishing again, or a failed take, queues it again."""
    part, state_path = _paths(storage, rs, take)
    with _locked(state_path) as state:
        if events is not None:
            state["events"] = check_events(events)
        if state.get("status") == "done":
            return take_dict(storage, rs, take)
        if part.stat().st_size == 0:
            raise Conflict("Nothing was recorded in this interview recording.")
        if state.get("status") == "finishing" and state.get("job_id"):
            return take_dict(storage, rs, take)
        state["status"] = "finishing"
        state.pop("error", None)
    job = jobs.enqueue(
        db, huey, "interview_finalise", study_id=rs.study_id, recording_id=rs.recording_id,
        params={"recall_session_id": rs.id, "take": take},
    )  # fmt: skip
    with _locked(state_path) as state:
        state["job_id"] = job.id
    return take_dict(storage, rs, take)


def discard(storage: Storage, rs: RecallSession, take: str) -> None:
    part, state_path = _paths(storage, rs, take)
    with _locked(state_path):
        part.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)


def remove_session_files(db: Session, storage: Storage, rs: RecallSession) -> int:
    """Every interview file of one recall session (its takes and its attached audio): for the
    participant's erasure. Returns how many files were removed."""
    removed = 0
    folder = _dir(storage, rs)
    if folder.is_dir():
        for path in folder.glob(f"take-{rs.id}-*"):
            path.unlink(missing_ok=True)
            removed += 1
    audio = interview.get_audio(db, rs)
    if audio is not None:
        path = interview.audio_path(storage, rs, audio)
        if path.exists():
            path.unlink()
            removed += 1
    return removed


def _fit_events(events: list[dict[str, Any]], duration_ms: int, live: set[int]) -> list[dict]:
    """The browser's clock and the file's duration differ by a few ms: times past the end are
    the end; events naming a moment deleted since are kept without it (marks dropped)."""
    out = []
    for ev in events:
        ev = dict(ev)
        if isinstance(ev.get("audio_ms"), int) and ev["audio_ms"] > duration_ms:
            ev["audio_ms"] = duration_ms
        if ev.get("moment_id") is not None and ev["moment_id"] not in live:
            if ev["type"] == "mark":
                continue
            ev.pop("moment_id")
        out.append(ev)
    return out


@jobs.handler("interview_finalise")
def finalise_job(ctx: jobs.Context) -> None:
    """Worker: remux the take (MediaRecorder's WebM has no duration or cues), probe it, and
    attach it with its events as the session's interview audio."""
    params = ctx.job.params or {}
    rs = ctx.db.get(RecallSession, params.get("recall_session_id"))
    if rs is None:
        raise jobs.JobFailed("The recall session no longer exists.")
    storage = Storage(ctx.config["RECORDINGS_DIR"])
    take = str(params.get("take", ""))
    part, state_path = _paths(storage, rs, take)
    state = _read(state_path)
    user = ctx.db.get(User, state.get("user_id"))

    def fail(message: str) -> None:
        with _locked(state_path) as st:
            st["status"], st["error"] = "failed", message
        raise jobs.JobFailed(message)

    if user is None:
        fail("The researcher who recorded this interview no longer has an account.")
    ctx.report("remuxing the interview audio", 0.2)
    out = part.with_name(f"{uuid.uuid4().hex}.webm")
    args = [
        FFMPEG, "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-f", "webm",
        "-i", str(part), "-map", "0:a:0", "-c", "copy", "-f", "webm", "-y", str(out),
    ]  # fmt: skip
    done = run(args, REMUX_LIMITS)
    if done.returncode != 0 or not out.exists():
        out.unlink(missing_ok=True)
        fail("The recorded interview audio could not be read (not WebM audio).")
    try:
        _, _, duration_ms = interview.probe_audio(out)
    except ValidationError as exc:
        out.unlink(missing_ok=True)
        fail(exc.message)
    events = _fit_events(
        state.get("events") or [], duration_ms, interview._live_moment_ids(ctx.db, rs)
    )
    if not events:  # the browser logs the player's state at the start; a lost tab may not have
        events = [{"type": "pause", "video_ms": rs.last_position_ms or 0, "audio_ms": 0}]
    ctx.report("attaching the interview audio", 0.7)
    try:
        interview.attach_audio(ctx.db, storage, rs, out, json.dumps(events), user)
    except interview.InterviewProblems as exc:
        ctx.db.rollback()
        out.unlink(missing_ok=True)
        fail(f"{exc.message} {'; '.join(exc.problems[:5])}")
    with _locked(state_path) as st:  # the state stays (status only) for the browser's poll
        for key in list(st):
            if key not in ("status", "job_id"):
                st.pop(key)
        st["status"] = "done"
    part.unlink(missing_ok=True)
