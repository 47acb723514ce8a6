"""Recordings: taking in a file, queueing its processing, the worker's ingest, clips, deletion."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr import audit, figures, jobs
from ipr.errors import ValidationError
from ipr.models import Clip, Dyad, Job, Recording, Study, User, utcnow
from ipr.storage import Storage

log = logging.getLogger("ipr.recordings")
CHUNK = 1024 * 1024
SESSION_LABEL_MAX = 60


class DuplicateRecording(ValidationError):
    """This file has already been uploaded."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def clean_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise ValidationError("Give the session a label, e.g. 'Session 3'.", field="session_label")
    if len(label) > SESSION_LABEL_MAX:
        raise ValidationError(
            f"A session label has at most {SESSION_LABEL_MAX} characters.", field="session_label"
        )
    return label


def display_name(name: str) -> str:
    """An upload's name is display text only: keep the last path part, printable, short."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:255] or "recording"


def check_duplicate(db: Session, study_id: int, sha256: str, exclude_id: int | None = None) -> None:
    existing = db.scalar(
        select(Recording).where(
            Recording.study_id == study_id,
            Recording.sha256 == sha256,
            Recording.status != "failed",
            Recording.id != (exclude_id or 0),
        )
    )
    if existing is not None:
        raise DuplicateRecording(
            f"This file was already uploaded as dyad {existing.dyad.code}, "
            f"{existing.session_label} (recording {existing.id}).",
            field="file",
        )


def duplicate_of(db: Session, rec: Recording) -> Recording | None:
    """The recording that ``rec``, refused by the worker as a duplicate, is a copy of (None when
    ``rec`` was not refused as one, or that recording has been deleted since)."""
    if rec.status != "failed" or rec.error_code != "duplicate" or not rec.sha256:
        return None
    return db.scalar(
        select(Recording)
        .where(
            Recording.study_id == rec.study_id,
            Recording.sha256 == rec.sha256,
            Recording.status != "failed",
            Recording.id != rec.id,
        )
        .order_by(Recording.id)
        .limit(1)
    )


def add_recording(
    db: Session,
    storage: Storage,
    huey: Any,
    dyad: Dyad,
    user: User | None,
    session_label: str,
    file: Path,
    original_name: str,
    *,
    sha256: str | None = None,
    move: bool = False,
    ip: str | None = None,
) -> Recording:
    """Store a complete file as a new recording of ``dyad`` and queue its processing.

    Without ``sha256`` the worker computes it (a multi-GB read does not belong in a request)
    and refuses a duplicate there.
    """
    label = clean_label(session_label)
    sha = sha256
    if sha is not None:
        check_duplicate(db, dyad.study_id, sha)
    key = storage.new_key()
    name = display_name(original_name)
    target = storage.source_path(key, name)
    target.parent.mkdir(parents=True, exist_ok=False)
    try:
        if move:
            os.replace(file, target)
        else:
            shutil.copyfile(file, target)
        rec = Recording(
            study_id=dyad.study_id,
            dyad_id=dyad.id,
            session_label=label,
            storage_key=key,
            original_name=name,
            size_bytes=target.stat().st_size,
            sha256=sha,
            status="queued",
            created_by_id=user.id if user else None,
        )
        db.add(rec)
        db.flush()
        audit.record(
            db,
            "recording_added",
            user=user,
            study_id=dyad.study_id,
            obj=("recording", rec.id),
            ip=ip,
            details={"dyad": dyad.code, "session": label, "bytes": rec.size_bytes},
        )
        db.commit()
    except BaseException:
        db.rollback()
        storage.remove_recording(key)
        raise
    queue_ingest(db, huey, rec)
    return rec


def queue_ingest(db: Session, huey: Any, rec: Recording) -> Job:
    rec.status = "queued"
    rec.error = None
    rec.error_code = None
    db.commit()
    return jobs.enqueue(db, huey, "ingest", study_id=rec.study_id, recording_id=rec.id)


def latest_job(db: Session, rec: Recording) -> Job | None:
    return db.scalar(select(Job).where(Job.recording_id == rec.id).order_by(Job.id.desc()).limit(1))


def ingest_settings(study: Study, rec: Recording) -> Any:
    from ipr.media import DEFAULT_REGIONS, IngestSettings, Region
    from ipr.motion import MotionSettings

    stored = study.motion_settings or {}
    drawn = rec.regions or stored.get("regions")  # the recording's own, else the study default
    regions = tuple(Region(**r) for r in drawn) if drawn else DEFAULT_REGIONS
    return IngestSettings(
        strategy=study.segmentation_strategy,
        fixed_ms=study.segment_fixed_ms,
        min_clip_ms=study.segment_min_ms,
        max_clip_ms=study.segment_max_ms,
        regions=regions,
        motion_threshold=MotionSettings.of(stored).threshold,
    )


# Failures of the server rather than of the file: the upload is kept so "Try again" can work.
# Every other failed ingest (unreadable, unsupported, damaged, timed out) removes the source too.
KEEP_SOURCE_ON = frozenset({"cancelled", "storage", "internal"})


@jobs.handler("ingest")
def ingest_job(ctx: jobs.Context) -> None:
    """Worker: probe, playable copy, analysis and clips; record the outcome on the recording."""
    from ipr.media import IngestCancelled, MediaError, ProbeError, UnsupportedMedia, ingest

    db = ctx.db
    rec = db.get(Recording, ctx.job.recording_id)
    if rec is None:
        return  # deleted while queued: nothing to do
    storage = Storage(ctx.config["RECORDINGS_DIR"])
    source = storage.find_source(rec.storage_key)
    if source is None:
        rec.status = "failed"
        rec.error = "The uploaded file is no longer on the server; upload it again."
        rec.error_code = "missing_source"
        db.commit()
        raise jobs.JobFailed(rec.error)
    study = db.get(Study, rec.study_id)
    rec.status = "processing"
    db.commit()
    if rec.sha256 is None:
        ctx.report("checking the file", 0.0)
        rec.sha256 = sha256_file(source)
        try:
            check_duplicate(db, rec.study_id, rec.sha256, exclude_id=rec.id)
        except DuplicateRecording as exc:
            rec.status = "failed"
            rec.error = exc.message
            rec.error_code = "duplicate"
            storage.remove_recording(rec.storage_key)
            db.commit()
            raise jobs.JobFailed(exc.message, "duplicate") from exc
        db.commit()
    key = rec.storage_key
    out = storage.derived_dir(key)
    try:
        result = ingest(source, out, ingest_settings(study, rec), ctx.report, ctx.cancelled)
    except MediaError as exc:
        db.rollback()
        rec = db.get(Recording, ctx.job.recording_id)
        if rec is None:  # deleted while processing
            storage.remove_recording(key)
            return
        rec.status = "failed"
        rec.error = exc.message
        rec.error_code = exc.code
        if isinstance(exc, ProbeError | UnsupportedMedia) or exc.code not in KEEP_SOURCE_ON:
            # refused or damaged: not a usable recording, so nothing of it is kept on disk
            storage.remove_recording(rec.storage_key)
        elif not isinstance(exc, IngestCancelled):
            storage.remove_derived(rec.storage_key)
        audit.record(
            db,
            "recording_failed",
            actor="worker",
            study_id=rec.study_id,
            obj=("recording", rec.id),
            details={"code": exc.code},
        )
        db.commit()
        raise jobs.JobFailed(exc.message, exc.code) from exc
    db.expire_all()
    rec = db.get(Recording, ctx.job.recording_id)
    if rec is None:  # deleted while processing: drop what was just made
        storage.remove_recording(key)
        return
    apply_result(db, rec, result.to_dict())
    # a new analysis (synchrony) and duration: the figures job recomputes (ipr.figures)
    figures.mark_stale(db, rec.id, rec.study_id)
    db.commit()


def apply_result(db: Session, rec: Recording, result: dict[str, Any]) -> None:
    rec.status = "ready"
    rec.error = None
    rec.error_code = None
    rec.duration_ms = result["duration_ms"]
    rec.width = result["width"]
    rec.height = result["height"]
    rec.fps_num = result["fps_num"]
    rec.fps_den = result["fps_den"]
    rec.has_audio = result["has_audio"]
    rec.remuxed = result["remuxed"]
    rec.media_info = {
        "sprite": result["sprite"],
        "scene_cuts_ms": result["scene_cuts_ms"],
        "silences_ms": result["silences_ms"],
        "source": result.get("source", {}),
        "processed_at": utcnow().isoformat(timespec="seconds"),
        "motion": _motion_summary(result.get("motion_energy") or {}),
    }
    replace_clips(db, rec, [(c["index"], c["start_ms"], c["end_ms"]) for c in result["clips"]])


def replace_clips(db: Session, rec: Recording, clips: list[tuple[int, int, int]]) -> None:
    for old in list(rec.clips):
        rec.clips.remove(old)
    db.flush()
    for index, start, end in clips:
        rec.clips.append(Clip(study_id=rec.study_id, index=index, start_ms=start, end_ms=end))


def analysis(storage: Storage, rec: Recording) -> dict[str, Any]:
    """The stored analysis (scene cuts, silences, motion energy) of a ready recording."""
    path = storage.derived(rec.storage_key, "analysis.json")
    if rec.status != "ready" or not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def delete_recording(
    db: Session, storage: Storage, rec: Recording, user: User | None, *, ip: str | None = None
) -> None:
    """Remove the recording, every row that hangs from it, and every file derived from it."""
    audit.record(
        db,
        "recording_deleted",
        user=user,
        study_id=rec.study_id,
        obj=("recording", rec.id),
        ip=ip,
        details={"session": rec.session_label},
    )
    key = rec.storage_key
    for job in db.scalars(select(Job).where(Job.recording_id == rec.id)):
        if job.status in ("queued", "running"):
            job.status = "cancelled"
    db.delete(rec)
    db.commit()
    storage.remove_recording(key)


# --- re-segmentation --------------------------------------------------------------------------


def segmentation_params(
    strategy: str, fixed_s: str | None, min_s: str | None, max_s: str | None
) -> dict[str, Any]:
    """Validate a re-segmentation request given in seconds; returns milliseconds."""
    from ipr.models import SEGMENTATION_STRATEGIES

    if strategy not in SEGMENTATION_STRATEGIES:
        raise ValidationError("Choose fixed length, scene cuts or pauses.", field="strategy")

    def ms(value: str | None, name: str) -> int:
        try:
            seconds = float(value or "")
        except ValueError:
            raise ValidationError(f"The {name} must be a number of seconds.", field=name) from None
        if not 1 <= seconds <= 4 * 3600:
            raise ValidationError(f"The {name} must be between 1 s and 4 h.", field=name)
        return round(seconds * 1000)

    params = {
        "strategy": strategy,
        "fixed_ms": ms(fixed_s, "clip length"),
        "min_ms": ms(min_s, "shortest clip"),
        "max_ms": ms(max_s, "longest clip"),
    }
    if params["min_ms"] > params["max_ms"]:
        raise ValidationError("The shortest clip is longer than the longest.", field="min_s")
    return params


def move_boundary(rec: Recording, index: int, end_s: str) -> list[list[int]]:
    """Clip boundaries with clip ``index`` ending at ``end_s`` (the next one starts there)."""
    try:
        end_ms = round(float(end_s) * 1000)
    except ValueError:
        raise ValidationError(
            "Give the clip's end in seconds, e.g. 300.5.", field="end_s"
        ) from None
    clips = sorted(rec.clips, key=lambda c: c.index)
    pos = next((i for i, c in enumerate(clips) if c.index == index), None)
    if pos is None or rec.duration_ms is None:
        raise ValidationError("This clip no longer exists; reload the page.")
    if pos == len(clips) - 1:
        raise ValidationError("The last clip ends with the recording.", field="end_s")
    lo, hi = clips[pos].start_ms + 1000, clips[pos + 1].end_ms - 1000
    if not lo <= end_ms <= hi:
        raise ValidationError(
            f"The clip must end between {lo / 1000:.1f} s and {hi / 1000:.1f} s "
            "(each clip at least a second long).",
            field="end_s",
        )
    bounds = [[c.start_ms, c.end_ms] for c in clips]
    bounds[pos][1] = end_ms
    bounds[pos + 1][0] = end_ms
    return bounds


def queue_resegment(
    db: Session,
    huey: Any,
    rec: Recording,
    params: dict[str, Any],
    user: User,
    *,
    ip: str | None = None,
) -> Job:
    if rec.status != "ready":
        raise ValidationError("Clips can be changed once the recording is ready.")
    audit.record(
        db,
        "clips_changed",
        user=user,
        study_id=rec.study_id,
        obj=("recording", rec.id),
        ip=ip,
        details={k: v for k, v in params.items() if k != "bounds"},
    )
    db.commit()
    return jobs.enqueue(
        db, huey, "resegment", study_id=rec.study_id, recording_id=rec.id, params=params
    )


@jobs.handler("resegment")
def resegment_job(ctx: jobs.Context) -> None:
    """Worker: new clip boundaries, new clip files; the old clips stay until the new are ready."""
    from ipr.media import segment
    from ipr.media.clips import snap_to_keyframes, video_packets, write_clips

    db = ctx.db
    rec = db.get(Recording, ctx.job.recording_id)
    if rec is None or rec.status != "ready":
        return
    storage = Storage(ctx.config["RECORDINGS_DIR"])
    playable = storage.derived(rec.storage_key, "playable.mp4")
    params = ctx.job.params
    packets = video_packets(playable)
    if "bounds" in params:
        bounds = [(int(a), int(b)) for a, b in params["bounds"]]
    else:
        info = rec.media_info or {}
        bounds = segment(
            rec.duration_ms or 0,
            params["strategy"],
            fixed_ms=params["fixed_ms"],
            min_ms=params["min_ms"],
            max_ms=params["max_ms"],
            scene_cuts_ms=info.get("scene_cuts_ms", []),
            silences_ms=info.get("silences_ms", []),
        )
        bounds = snap_to_keyframes(bounds, [t for t, key in packets if key])
    work = storage.derived_dir(rec.storage_key) / f".clips-{ctx.job.id}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        write_clips(
            playable, work, bounds, packets=packets,
            progress=lambda done, total: ctx.report("cutting clips", done / total),
        )  # fmt: skip
        clips_dir = storage.derived(rec.storage_key, "clips")
        old = clips_dir.with_name(f".old-clips-{ctx.job.id}")
        os.replace(clips_dir, old)
        os.replace(work, clips_dir)
        shutil.rmtree(old, ignore_errors=True)
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise
    replace_clips(db, rec, [(i, a, b) for i, (a, b) in enumerate(bounds, start=1)])
    if "strategy" in params:
        rec.media_info = {**(rec.media_info or {}), "segmentation": params}
    db.commit()


# --- motion regions and the motion pass -------------------------------------------------------


def save_regions(
    db: Session,
    huey: Any,
    rec: Recording,
    raw: Any,
    user: User,
    *,
    as_study_default: bool = False,
    ip: str | None = None,
) -> Job:
    """Store the drawn regions on the recording (and as the study's default if asked), audit
    the change and queue the motion pass again; no new upload, nothing else re-run."""
    from ipr.motion import parse_regions

    if rec.status != "ready":
        raise ValidationError("Regions can be drawn once the recording is ready.")
    regions = parse_regions(raw)
    before = rec.regions
    rec.regions = regions
    study = db.get(Study, rec.study_id)
    if as_study_default and study is not None:
        study.motion_settings = {**(study.motion_settings or {}), "regions": regions}
    audit.record(
        db,
        "motion_regions_changed",
        user=user,
        study_id=rec.study_id,
        obj=("recording", rec.id),
        ip=ip,
        details={"before": before, "after": regions, "study_default": as_study_default},
    )
    db.commit()
    return jobs.enqueue(db, huey, "motion", study_id=rec.study_id, recording_id=rec.id)


@jobs.handler("motion")
def motion_job(ctx: jobs.Context) -> None:
    """Worker: motion energy again over the playable copy with the recording's regions and the
    study's threshold; the stored analysis gets the new series, then synchrony is recomputed."""
    from ipr.media import MediaError, compute_motion_energy

    db = ctx.db
    rec = db.get(Recording, ctx.job.recording_id)
    if rec is None or rec.status != "ready":
        return
    study = db.get(Study, rec.study_id)
    settings = ingest_settings(study, rec)
    storage = Storage(ctx.config["RECORDINGS_DIR"])
    playable = storage.derived(rec.storage_key, "playable.mp4")
    path = storage.derived(rec.storage_key, "analysis.json")
    ctx.report("motion energy", 0.0)
    try:
        me = compute_motion_energy(
            playable, settings.regions, threshold=settings.motion_threshold,
            progress=lambda _stage, fraction: ctx.report("motion energy", fraction),
            cancelled=ctx.cancelled,
        )  # fmt: skip
    except MediaError as exc:
        raise jobs.JobFailed(exc.message, exc.code) from exc
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["motion_energy"] = me.to_dict()
    data["regions"] = [dataclasses.asdict(r) for r in settings.regions]
    tmp = path.with_name(f".analysis-{ctx.job.id}.json")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    rec.media_info = {**(rec.media_info or {}), "motion": _motion_summary(data["motion_energy"])}
    figures.mark_stale(db, rec.id, rec.study_id)  # a new analysis: the figures are redone
    db.commit()
    ctx.report("synchrony", 0.0)
    figures.compute_recording(db, storage, rec.id)  # here, so the page shows them on reload
    audit.record(
        db,
        "motion_rerun",
        actor="worker",
        study_id=rec.study_id,
        obj=("recording", rec.id),
        details={"missing": me.missing, "threshold": me.threshold},
    )
    db.commit()


def _motion_summary(motion_energy: dict[str, Any]) -> dict[str, Any]:
    """What the recording page says about its motion samples (ipr.motion.missing_summary)."""
    from ipr.motion import missing_summary

    return missing_summary(motion_energy)
