"""Movement regions on the recording page, the motion pass in the worker, the study's
synchrony settings and honest (missing) samples, through the web app."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sqlalchemy import select

from ipr import figures as figures_layer
from ipr import jobs, studies
from ipr.models import AuditEvent, Job, Recording, Study
from ipr.storage import Storage
from tests.conftest import Web, jpost
from tests.test_timeline_view import add_recording, motion


def stored_sync(app, db, rec, *, redo: bool = True) -> dict:
    """The synchrony as the worker stores it (ipr.figures), computed here as the worker does."""
    storage = Storage(app.config["RECORDINGS_DIR"])
    db.expire_all()
    rec = db.get(Recording, rec.id)
    if redo:
        figures_layer.mark_stale(db, rec.id, rec.study_id)
        db.commit()
    figures_layer.compute_recording(db, storage, rec.id)
    tolerance = rec.dyad.study.alignment_tolerance_ms
    return figures_layer.read(db, rec, tolerance, tolerance).data["synchrony"]


REGIONS = [
    {"name": "therapist", "x": 0.05, "y": 0.1, "w": 0.4, "h": 0.85},
    {"name": "client", "x": 0.55, "y": 0.1, "w": 0.4, "h": 0.85},
]


@pytest.fixture
def ready(app, db, owner, study, sample_mp4):
    dyad = studies.create_dyad(db, study, owner, "01")
    db.commit()
    rec = add_recording(app, db, study, dyad, owner, sample_mp4, "Session 1")
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(rec.storage_key)
    (derived / "clips").mkdir()
    return rec


def test_drawn_regions_are_saved_audited_and_queue_only_the_motion_pass(app, db, owner_web, ready):
    page = owner_web.get(f"/recordings/{ready.id}").get_data(as_text=True)
    assert 'id="region-editor"' in page and "js/regions.js" in page
    resp = jpost(owner_web, f"/recordings/{ready.id}/regions",
                 {"regions": REGIONS, "study_default": True})  # fmt: skip
    assert resp.status_code == 202
    db.expire_all()
    rec = db.get(Recording, ready.id)
    assert rec.regions == REGIONS
    assert db.get(Study, rec.study_id).motion_settings == {"regions": REGIONS}
    job = db.get(Job, resp.json["job_id"])
    assert (job.kind, job.status, job.recording_id) == ("motion", "queued", rec.id)
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "motion_regions_changed"))
    assert event.details == {"before": None, "after": REGIONS, "study_default": True}
    # the page polls the job and names it
    status = owner_web.get(f"/recordings/{rec.id}/status").get_data(as_text=True)
    assert "Analysing movement again" in status and "was=job" in status


def test_bad_regions_are_refused_and_strangers_see_nothing(app, db, owner_web, ready, make_user):
    resp = jpost(owner_web, f"/recordings/{ready.id}/regions", {"regions": REGIONS[:1]})
    assert resp.status_code == 422
    assert db.scalar(select(Job).where(Job.kind == "motion")) is None
    stranger = make_user("stranger@example.org")
    web = Web(app)
    web.login(stranger.email)
    assert jpost(web, f"/recordings/{ready.id}/regions", {"regions": REGIONS}).status_code == 404
    assert web.get(f"/recordings/{ready.id}/regions/suggest").status_code == 404


def test_motion_job_rewrites_the_series_and_the_synchrony(app, db, owner_web, ready):
    resp = jpost(owner_web, f"/recordings/{ready.id}/regions", {"regions": REGIONS})
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), resp.json["job_id"]) == "done"
    storage = Storage(app.config["RECORDINGS_DIR"])
    data = json.loads(storage.derived(ready.storage_key, "analysis.json").read_text())
    me = data["motion_energy"]
    assert sorted(k for k, v in me.items() if isinstance(v, list)) == ["client", "therapist"]
    assert len(me["therapist"]) == 150  # 6 s at 25 Hz
    assert me["missing"] == 0 and me["threshold"] == 10
    assert data["scene_cuts_ms"] == [20_000]  # nothing else of the analysis changes
    db.expire_all()
    rec = db.get(Recording, ready.id)
    assert rec.media_info["motion"]["missing"] == 0
    cached = stored_sync(app, db, rec, redo=False)  # the job stored it already
    assert cached["error"].startswith("Synchrony needs at least 35 s")  # 6 s is too short
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "motion_rerun"))


def test_study_settings_drive_the_synchrony_figures(app, db, owner_web, study, ready):
    before = stored_sync(app, db, ready)
    assert "smoothing_s" not in before["settings"] and before["window_ms"] == 30_000
    form = {"threshold": "12", "smoothing_s": "0.5", "window_s": "20", "step_s": "5",
            "max_lag_s": "2", "surrogates": "10", "seed": "3"}  # fmt: skip
    assert owner_web.post(f"/studies/{study.id}/motion", form).status_code == 302
    db.expire_all()
    assert db.get(Study, study.id).motion_settings["window_s"] == 20.0
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "motion_settings_changed"))
    assert event.study_id == study.id
    assert event.details["before"]["window_s"] == 30.0 and event.details["after"] == {
        "threshold": 12, "smoothing_s": 0.5, "window_s": 20.0, "step_s": 5.0,
        "max_lag_s": 2.0, "surrogates": 10, "seed": 3,
    }  # fmt: skip
    rec = db.get(Recording, ready.id)
    after = stored_sync(app, db, rec)
    assert (after["window_ms"], after["step_ms"], after["max_lag_ms"]) == (20_000, 5_000, 2_000)
    assert after["settings"]["smoothing_s"] == 0.5
    assert after["surrogate"]["n"] == 10 and after["surrogate"]["seed"] == 3
    assert after["grand_mean"] != before["grand_mean"]
    bad = owner_web.post(f"/studies/{study.id}/motion", {**form, "max_lag_s": "30"})
    assert bad.status_code == 422
    assert "The lag must be shorter than the window." in bad.get_data(as_text=True)
    db.expire_all()
    assert db.get(Study, study.id).motion_settings["max_lag_s"] == 2.0


def _with_missing(app, rec, every: int) -> None:
    """Every `every`-th sample of both series missing, as a repeated frame makes it."""
    left, right = motion()
    for i in range(0, len(left), every):
        left[i] = right[i] = None
    path = Storage(app.config["RECORDINGS_DIR"]).derived(rec.storage_key, "analysis.json")
    me = {"rate_hz": 25.0, "left": left, "right": right, "missing": len(left[::every])}
    path.write_text(json.dumps({"scene_cuts_ms": [], "silences_ms": [], "motion_energy": me}))


def test_a_third_missing_gives_a_warned_figure_and_mostly_missing_none(app, db, ready, owner_web):
    storage = Storage(app.config["RECORDINGS_DIR"])
    _with_missing(app, ready, 3)
    sync = stored_sync(app, db, ready)
    assert sync["missing"]["missing"] == 500 and sync["missing"]["samples"] == 1500
    assert sync["warning"] == "33% of samples missing: variable frame rate or dropped frames"
    assert sync["grand_mean"] is not None
    page = owner_web.get(f"/recordings/{ready.id}/timeline").get_data(as_text=True)
    assert "33% of samples missing" in page
    odd = [None if i % 10 else v for i, v in enumerate(motion()[0])]  # 90% missing
    path = storage.derived(ready.storage_key, "analysis.json")
    me = {"rate_hz": 25.0, "left": odd, "right": odd}
    path.write_text(json.dumps({"scene_cuts_ms": [], "silences_ms": [], "motion_energy": me}))
    sync = stored_sync(app, db, ready)
    assert sync.get("grand_mean") is None
    assert sync["error"] == (
        "90% of samples missing: variable frame rate or dropped frames; the motion data is "
        "mostly missing, so no synchrony figure is given"
    )


def test_exports_carry_the_missing_warning_and_no_figure_when_mostly_missing(
    app, db, owner, owner_web, ready
):
    from tests.conftest import api_token

    auth = {"Authorization": f"Bearer {api_token(db, owner)}"}
    base = f"/api/v1/recordings/{ready.id}/export"
    warning = "# WARNING: 33% of samples missing: variable frame rate or dropped frames"
    _with_missing(app, ready, 3)
    figures = stored_sync(app, db, ready)
    motion_csv = owner_web.client.get(f"{base}.motion_csv", headers=auth).get_data(as_text=True)
    assert motion_csv.splitlines()[2:4] == ["# missing_samples=500 of 1500", warning]
    sync = owner_web.client.get(f"{base}.synchrony_csv", headers=auth).get_data(as_text=True)
    assert warning in sync.splitlines()
    assert f"# grand_mean={figures['grand_mean']}" in sync.splitlines()
    # 90% missing: the warning, the reason there is no figure, and no figure
    odd = [None if i % 10 else v for i, v in enumerate(motion()[0])]
    path = Storage(app.config["RECORDINGS_DIR"]).derived(ready.storage_key, "analysis.json")
    me = {"rate_hz": 25.0, "left": odd, "right": odd}
    path.write_text(json.dumps({"scene_cuts_ms": [], "silences_ms": [], "motion_energy": me}))
    stored_sync(app, db, ready)
    sync = owner_web.client.get(f"{base}.synchrony_csv", headers=auth).get_data(as_text=True)
    mostly = (
        "90% of samples missing: variable frame rate or dropped frames; the motion data is "
        "mostly missing, so no synchrony figure is given"
    )
    assert f"# WARNING: {mostly}" in sync.splitlines()
    assert f"# no synchrony: {mostly}" in sync.splitlines()
    assert "grand_mean=" not in sync
    assert sync.splitlines()[-1] == "window_centre_ms,synchrony"


def test_the_dashboard_marks_a_synchrony_that_rests_on_missing_samples(app, db, ready, owner_web):
    """The study dashboard shows each session's synchrony in a table: a figure from a third
    missing samples is marked and explained under it; a complete one is not."""
    url = f"/studies/{ready.study_id}/dashboard"
    stored_sync(app, db, ready)  # complete series
    html = owner_web.get(url).get_data(as_text=True)
    assert "synchrony-warnings" not in html and "incomplete motion data" not in html
    _with_missing(app, ready, 3)
    sync = stored_sync(app, db, ready)
    assert sync["grand_mean"] is not None
    html = owner_web.get(url).get_data(as_text=True)
    flag = (
        '<a href="#synchrony-warnings" class="flag" '
        'aria-label="Warning: incomplete motion data">!</a>'
    )
    assert html.count(flag) == 1
    assert (
        "<li>01, Session 1: 33% of samples missing: variable frame rate or dropped frames.</li>"
        in html
    )


def test_repeated_zeros_would_fake_synchrony_missing_samples_do_not(ready):
    """The issue's case: strangers' series with every third sample a shared zero (what a
    repeated frame gave before) look in sync; the same samples missing do not."""
    rng = np.random.default_rng(1)
    a, b = rng.random(1500), rng.random(1500)
    from ipr.synchrony import synchrony

    zeros_a, zeros_b = a.copy(), b.copy()
    zeros_a[::3] = zeros_b[::3] = 0.0
    gaps_a, gaps_b = a.copy(), b.copy()
    gaps_a[::3] = gaps_b[::3] = np.nan
    fake = synchrony(zeros_a, zeros_b, 25.0).lag_zero_mean
    honest = synchrony(gaps_a, gaps_b, 25.0).lag_zero_mean
    assert fake > 0.4 and honest < 0.1


# --- series and figures out -------------------------------------------------------------------


def test_motion_series_and_synchrony_exports(app, db, owner_web, owner, ready):
    from tests.conftest import api_token

    storage = Storage(app.config["RECORDINGS_DIR"])
    path = storage.derived(ready.storage_key, "analysis.json")
    left, right = motion()
    left[1] = right[1] = None
    me = {"rate_hz": 25.0, "therapist": left, "client": right, "threshold": 10, "missing": 1}
    path.write_text(json.dumps({"scene_cuts_ms": [], "silences_ms": [], "motion_energy": me}))
    page = owner_web.get(f"/recordings/{ready.id}/export").get_data(as_text=True)
    assert 'value="motion_txt"' in page
    token = api_token(db, owner)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/recordings/{ready.id}/export"
    csv_text = owner_web.client.get(f"{base}.motion_csv", headers=auth).get_data(as_text=True)
    lines = csv_text.splitlines()
    assert lines[:4] == [
        "# rate_hz=25.0", "# threshold=10", "# missing_samples=1 of 1500", "t_ms,therapist,client"
    ]  # fmt: skip
    assert lines[4] == f"0,{left[0]},{right[0]}"
    assert lines[5] == "40,,"
    assert len(lines) == 4 + 1500
    txt = owner_web.client.get(f"{base}.motion_txt", headers=auth)
    assert txt.status_code == 200
    rows = txt.get_data(as_text=True).splitlines()
    assert rows[0] == "therapist client" and rows[2] == "NA NA" and len(rows) == 1501
    figures = stored_sync(app, db, ready)  # the worker's part
    sync = owner_web.client.get(f"{base}.synchrony_csv", headers=auth).get_data(as_text=True)
    assert f"# grand_mean={figures['grand_mean']}" in sync.splitlines()
    settings = '# settings={"max_lag_s": 5.0, "n_surrogates": 50, "seed": 0, "segment_s": 30.0'
    assert settings in sync
    body = sync.split("window_centre_ms,synchrony\n")[1].splitlines()
    assert len(body) == figures["n_windows"] == 3
    assert body[0] == f"15000,{figures['series'][0]['value']}"


@pytest.mark.corpus
def test_the_vfr_corpus_file_shows_its_missing_share(app, db, owner, owner_web, study, tmp_path):
    from tests.conftest import CORPUS

    src = CORPUS / "scene_cuts" / "pyscenedetect" / "goldeneye-vfr-drop3.mp4"
    if not src.is_file():
        pytest.skip("../shared/corpus not present")
    from ipr import recordings

    dyad = studies.create_dyad(db, study, owner, "07")
    db.commit()
    copy = tmp_path / "goldeneye.mp4"
    shutil.copy(src, copy)
    storage = Storage(app.config["RECORDINGS_DIR"])
    rec = recordings.add_recording(
        db, storage, app.extensions["ipr_huey"], dyad, owner, "S1", copy, "goldeneye.mp4"
    )
    job = recordings.latest_job(db, rec)
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
    db.expire_all()
    rec = db.get(Recording, rec.id)
    assert rec.media_info["motion"]["missing"] == 79 and rec.media_info["motion"]["samples"] == 239
    message = "33% of samples missing: repeated frames (variable frame rate or dropped frames)"
    assert message in owner_web.get(f"/recordings/{rec.id}").get_data(as_text=True)
    sync = stored_sync(app, db, rec, redo=False)  # the figures job the ingest queued
    timeline = owner_web.get(f"/recordings/{rec.id}/timeline").get_data(as_text=True)
    assert f"<strong>Warning:</strong> {message}." in timeline
    assert sync.get("grand_mean") is None and sync["warning"] == message


def test_study_default_regions_and_threshold_reach_a_new_recordings_ingest(db, study, ready):
    from ipr import recordings
    from ipr.media import DEFAULT_REGIONS

    assert recordings.ingest_settings(study, ready).regions == DEFAULT_REGIONS
    study.motion_settings = {"regions": REGIONS, "threshold": 25}
    settings = recordings.ingest_settings(study, ready)
    assert [(r.name, r.x, r.w) for r in settings.regions] == [
        ("therapist", 0.05, 0.4), ("client", 0.55, 0.4)
    ]  # fmt: skip
    assert settings.motion_threshold == 25
    ready.regions = [{"name": "therapist", "x": 0, "y": 0, "w": 0.3, "h": 1},
                     {"name": "client", "x": 0.7, "y": 0, "w": 0.3, "h": 1}]  # fmt: skip
    own = recordings.ingest_settings(study, ready).regions  # the recording's own win
    assert [(r.name, r.x) for r in own] == [("therapist", 0.0), ("client", 0.7)]


def test_suggestion_reads_the_first_clips_still(app, owner_web, ready):
    import cv2

    from tests.test_motion import assert_regions_hold_the_faces, two_faces_side_by_side

    url = f"/recordings/{ready.id}/regions/suggest"
    assert owner_web.get(url).status_code == 422  # no still yet
    still = Storage(app.config["RECORDINGS_DIR"]).derived(ready.storage_key, "clips/001.jpg")
    cv2.imwrite(str(still), np.full((180, 320, 3), 90, np.uint8))
    body = owner_web.get(url).json
    assert body["detector"] is True and body["faces"] == 0
    assert body["regions"] == [  # no faces in a grey picture: the halves
        {"name": "therapist", "x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0},
        {"name": "client", "x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0},
    ]
    # a split-screen session's thumbnail (320 wide, as the ingest writes it): the two faces
    thumb = cv2.resize(two_faces_side_by_side(), (320, 90), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(still), thumb, [cv2.IMWRITE_JPEG_QUALITY, 85])
    body = owner_web.get(url).json
    assert body["detector"] is True and body["faces"] == 2
    assert_regions_hold_the_faces(body["regions"])
