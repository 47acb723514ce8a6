"""Motion regions on the recording page and the study's motion/synchrony settings (thin views:
validation, storage, audit and queueing live in ipr.motion and ipr.recordings)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, request, url_for

from ipr import motion, recordings
from ipr.access import get_or_404
from ipr.errors import ValidationError
from ipr.models import Recording
from ipr.web import studies as study_views
from ipr.web.context import client_ip, db, huey, login_required, storage, user

bp = Blueprint("motion", __name__)


@bp.post("/recordings/<int:recording_id>/regions")
@login_required
def save_regions(recording_id: int) -> Any:
    """Save drawn regions (JSON body, or a form field ``regions`` holding JSON) and queue the
    motion pass again."""
    import json

    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    if request.is_json:
        body = request.get_json(silent=True) or {}
        raw, default = body.get("regions"), bool(body.get("study_default"))
    else:
        try:
            raw = json.loads(request.form.get("regions") or "null")
        except ValueError:
            raise motion.RegionsInvalid("The regions could not be read.") from None
        default = request.form.get("study_default") == "on"
    job = recordings.save_regions(
        db(), huey(), rec, raw, user(), as_study_default=default, ip=client_ip()
    )
    if request.is_json:
        return jsonify({"job_id": job.id, "regions": rec.regions}), 202
    return redirect(url_for("recordings.show", recording_id=rec.id))


@bp.get("/recordings/<int:recording_id>/regions/suggest")
@login_required
def suggest(recording_id: int) -> Any:
    """Regions around the faces dlib's detector finds in the first clip's still."""
    import cv2

    rec = get_or_404(db(), Recording, recording_id, user(), "editor")
    still = storage().derived(rec.storage_key, "clips/001.jpg")
    image = cv2.imread(str(still)) if still.is_file() else None
    if image is None:
        raise ValidationError("There is no still picture of this recording yet.")
    return jsonify(motion.suggestion(image))


@bp.post("/studies/<int:study_id>/motion")
@login_required
def study_settings(study_id: int) -> Any:
    return study_views._edit(
        study_id,
        "settings",
        lambda study: motion.update_study_settings(
            db(), study, request.form, user(), ip=client_ip()
        ),
    )


@bp.app_template_global()
def motion_settings_of(study: Any) -> motion.MotionSettings:
    return motion.MotionSettings.of(study.motion_settings)
