"""Dyad and recording pages: sessions, processing progress, clips, re-segmentation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request, url_for
from sqlalchemy import select

from ipr import audit, recordings, studies
from ipr.access import get_or_404, role_in
from ipr.errors import ValidationError
from ipr.models import Clip, Dyad, Participant, Recording, Upload
from ipr.web import recall_admin
from ipr.web.context import (
    client_ip,
    db,
    huey,
    login_required,
    navigate,
    render,
    storage,
    user,
)
from ipr.web.followup import dyad_followups as followup_rows

bp = Blueprint("recordings", __name__)


def _role_ctx(study_id: int) -> dict[str, Any]:
    role = role_in(db(), user(), study_id)
    return {"role": role, "can_edit": studies.can(role, "editor")}


@bp.get("/dyads/<int:dyad_id>")
@login_required
def dyad(dyad_id: int) -> Any:
    d = get_or_404(db(), Dyad, dyad_id, user())
    jobs = {r.id: recordings.latest_job(db(), r) for r in d.recordings}
    duplicates = {r.id: recordings.duplicate_of(db(), r) for r in d.recordings}
    uploading = (
        db()
        .scalars(
            select(Upload)
            .where(Upload.dyad_id == d.id, Upload.recording_id.is_(None))
            .order_by(Upload.created_at)
        )
        .all()
    )
    return render(
        "recordings/dyad.html",
        "recordings/_sessions.html",
        dyad=d,
        study=d.study,
        jobs=jobs,
        duplicates=duplicates,
        uploading=uploading,
        followups=followup_rows(d),
        followup_error=request.args.get("followup_error"),
        smtp_enabled=recall_admin.email_enabled(),
        **_role_ctx(d.study_id),
    )


@bp.get("/recordings/<int:recording_id>")
@login_required
def show(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, user())
    # who watched a session recording is part of the trail
    audit.record(db(), "recording_viewed", user=user(), study_id=rec.study_id,
                 obj=("recording", rec.id), ip=client_ip())  # fmt: skip
    db().commit()
    return render(
        "recordings/recording.html",
        rec=rec,
        dyad=rec.dyad,
        study=rec.dyad.study,
        job=recordings.latest_job(db(), rec),
        duplicate=recordings.duplicate_of(db(), rec),
        **_role_ctx(rec.study_id),
        **recall_admin.recall_context(rec),
    )


@bp.get("/recordings/<int:recording_id>/status")
@login_required
def status(recording_id: int) -> Any:
    """The job-status fragment: it polls itself until the job has ended."""
    rec = get_or_404(db(), Recording, recording_id, user())
    job = recordings.latest_job(db(), rec)
    resp = render(
        "recordings/recording.html",
        "recordings/_status.html",
        rec=rec,
        dyad=rec.dyad,
        study=rec.dyad.study,
        job=job,
        duplicate=recordings.duplicate_of(db(), rec),
        **_role_ctx(rec.study_id),
    )
    finished_now = request.args.get("was") in ("queued", "processing") and rec.status == "ready"
    working = job and job.kind in ("motion", "resegment") and job.status in ("queued", "running")
    if request.args.get("was") == "job" and not working:
        finished_now = True  # a motion or clips job on a ready recording has ended
    if request.htmx and finished_now:
        return resp[0], resp[1], {"HX-Refresh": "true"}  # show the player and clips
    return resp


@bp.post("/recordings/<int:recording_id>/retry")
@login_required
def retry(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    if rec.status != "failed":
        raise ValidationError("Only a recording whose processing failed can be retried.")
    if storage().find_source(rec.storage_key) is None:
        raise ValidationError(
            "The uploaded file was not kept (it was refused); upload a usable file instead."
        )
    recordings.queue_ingest(db(), huey(), rec)
    return redirect(url_for("recordings.show", recording_id=rec.id))


@bp.post("/recordings/<int:recording_id>/delete")
@login_required
def delete(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    dyad_id = rec.dyad_id
    recordings.delete_recording(db(), storage(), rec, user(), ip=client_ip())
    return navigate(url_for("recordings.dyad", dyad_id=dyad_id))


@bp.post("/recordings/<int:recording_id>/segments")
@login_required
def resegment(recording_id: int) -> Any:
    """Cut the recording into clips again with another strategy or other lengths."""
    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    f = request.form
    params = recordings.segmentation_params(
        f.get("strategy", ""), f.get("fixed_s"), f.get("min_s"), f.get("max_s")
    )
    recordings.queue_resegment(db(), huey(), rec, params, user(), ip=client_ip())
    return redirect(url_for("recordings.show", recording_id=rec.id))


@bp.post("/clips/<int:clip_id>")
@login_required
def adjust_clip(clip_id: int) -> Any:
    """Move the boundary between this clip and the next (or the end of the last one)."""
    clip = get_or_404(db(), Clip, clip_id, user(), "editor")
    rec = clip.recording
    bounds = recordings.move_boundary(rec, clip.index, request.form.get("end_s", ""))
    recordings.queue_resegment(db(), huey(), rec, {"bounds": bounds}, user(), ip=client_ip())
    return redirect(url_for("recordings.show", recording_id=rec.id))


@bp.post("/dyads/<int:dyad_id>/delete")
@login_required
def delete_dyad(dyad_id: int) -> Any:
    d = get_or_404(db(), Dyad, dyad_id, user(), "editor")
    study_id = d.study_id
    studies.delete_dyad(db(), storage(), d, user(), ip=client_ip())
    return navigate(url_for("studies.show", study_id=study_id))


@bp.post("/participants/<int:participant_id>/erase")
@login_required
def erase_participant(participant_id: int) -> Any:
    p = get_or_404(db(), Participant, participant_id, user(), "editor")
    studies.erase_participant_data(db(), storage(), p, user(), ip=client_ip())
    return redirect(url_for("recordings.dyad", dyad_id=p.dyad_id))
