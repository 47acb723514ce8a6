"""Exports and imports through the app: API, pages, CLI, moment clips, audit, API tokens."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from ipr import dataset, figure_files, figures, jobs, studies
from ipr.exports.figure import to_png
from ipr.models import ApiToken, AuditEvent, Membership, Moment, RecallSession, Recording
from ipr.storage import Storage
from tests.conftest import CORPUS, Web, api_token, make_video

FPS = 25
FRAME_MS = 1000 / FPS


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory):
    """6 s, 25 fps, a keyframe every second (so clips starting on a whole second are copied)."""
    return make_video(tmp_path_factory.mktemp("exports-media") / "playable.mp4", 6.0, rate=FPS)


def _recording(app, db, study, dyad, label: str, mp4: Path) -> Recording:
    key = Storage.new_key()
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label=label, storage_key=key,
        original_name="Jane Doe therapy.mp4", status="ready", duration_ms=6000, width=320,
        height=180, fps_num=FPS, fps_den=1, has_audio=True,
    )  # fmt: skip
    db.add(rec)
    db.commit()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(key)
    derived.mkdir(parents=True)
    shutil.copy(mp4, derived / "playable.mp4")
    return rec


@pytest.fixture
def setup(app, db, owner, study, sample_mp4):
    """Dyad 01 (T01/C01), a ready 'Session 3' with three moments, and a second empty session."""
    dyad = studies.create_dyad(db, study, owner, "01")
    studies.add_code(db, study, owner, {"name": "Insight", "colour": "#123456", "shortcut": "i"})
    db.commit()
    rec = _recording(app, db, study, dyad, "Session 3", sample_mp4)
    rec2 = _recording(app, db, study, dyad, "Session 5", sample_mp4)
    token = api_token(db, owner)
    client = app.test_client()

    def api(method, url, json=None, bearer=token):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return client.open(url, method=method, json=json, headers=headers, buffered=True)

    code_id = study.codes[0].id
    sessions = {}
    for role in ("therapist", "client"):
        body = {"participant_id": dyad.participant(role).id, "mode": "researcher"}
        resp = api("POST", f"/api/v1/recordings/{rec.id}/recall-sessions", body)
        assert resp.status_code == 201, resp.json
        sessions[role] = resp.json["id"]
    moments = {}
    for name, role, body in (
        ("t1", "therapist", {"t_ms": 1000, "text": "=she understood", "codes": [code_id],
                             "ratings": {"hat": 8}}),
        ("t2", "therapist", {"t_ms": 3000, "end_ms": 4500, "peaks_ms": [4000],
                             "text": "stuck\nfor a while"}),
        ("c1", "client", {"t_ms": 1400, "text": "I felt heard", "ratings": {"hat": 7}}),
        ("gone", "client", {"t_ms": 5000, "text": "deleted later"}),
    ):  # fmt: skip
        resp = api("POST", f"/api/v1/recall-sessions/{sessions[role]}/moments", body)
        assert resp.status_code == 201, resp.json
        moments[name] = resp.json["id"]
    gone = f"/api/v1/recall-sessions/{sessions['client']}/moments/{moments['gone']}"
    assert api("DELETE", gone).status_code == 204
    figures.run_queued(app.extensions["ipr_db"], dict(app.config))  # what the worker does
    return {"rec": rec, "rec2": rec2, "dyad": dyad, "api": api, "m": moments, "study": study}


def _rows(data: bytes) -> list[dict[str, str]]:
    """The CSV's rows, after the '#' provenance lines at the top of the moments CSV."""
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    while text.startswith("#"):
        text = text[text.index("\n") + 1 :]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_recording_csv_has_the_exact_rows_pairs_and_an_audit_event(setup, db, owner) -> None:
    rec, m = setup["rec"], setup["m"]
    resp = setup["api"]("GET", f"/api/v1/recordings/{rec.id}/export.csv")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == "attachment; filename=01_Session_3.csv"
    assert resp.headers["Cache-Control"] == "no-store"
    rows = _rows(resp.data)
    assert [r["moment_id"] for r in rows] == [str(m["t1"]), str(m["c1"]), str(m["t2"])]
    assert rows[0] == {
        "study": "Recall study", "dyad": "01", "session": "Session 3",
        "recording_id": str(rec.id), "lane": "therapist", "participant": "T01",
        "moment_id": str(m["t1"]), "start_ms": "1000", "end_ms": "", "start_tc": "00:00:01.000",
        "end_tc": "", "peaks_ms": "", "text": "'=she understood", "codes": "Insight",
        "rating_hat": "8", "coder": "", "researcher_codes": "", "researcher_note": "",
        "voice_note": "0", "imported_from": "",
        "matched_moment_id": str(m["c1"]), "lag_ms": "400", "clip": "",
        "phase": "blind", "responds_to_id": "", "corrected_at": "",
        "interview_audio_start_ms": "", "interview_audio_end_ms": "", "interview_transcript": "",
    }  # fmt: skip
    assert rows[2]["end_ms"] == "4500" and rows[2]["peaks_ms"] == "4000"
    assert rows[2]["matched_moment_id"] == "" and rows[2]["text"] == "stuck\nfor a while"
    assert b"deleted later" not in resp.data  # deleted moments are never exported
    assert b"Jane Doe" not in resp.data
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
    assert (event.user_id, event.object_type, event.object_id) == (
        owner.id,
        "recording",
        str(rec.id),
    )
    assert event.details == {"format": "csv", "scope": "recording", "include_text": True}


def test_include_text_false_leaves_out_free_text(setup, db) -> None:
    rec = setup["rec"]
    for fmt in ("csv", "json", "vtt", "eaf"):
        url = f"/api/v1/recordings/{rec.id}/export.{fmt}?include_text=false"
        resp = setup["api"]("GET", url)
        assert resp.status_code == 200, fmt
        for text in (b"she understood", b"I felt heard", b"stuck"):
            assert text not in resp.data, (fmt, text)
    assert "text" not in _rows(setup["api"]("GET", url.replace("eaf", "csv")).data)[0]
    data = json.loads(setup["api"]("GET", f"/api/v1/recordings/{rec.id}/export.json").data)
    figures = data["study"]["dyads"][0]["recordings"][0]["figures"]
    assert figures["n_pairs"] == 1 and figures["lag_median_ms"] == 400
    assert figures["tolerance_ms"] == 5000 and figures["n_therapist"] == 2
    flags = db.scalars(select(AuditEvent.details).where(AuditEvent.action == "export")).all()
    assert [f["include_text"] for f in flags] == [False] * 4 + [False, True]


def test_eaf_export_validates_against_the_elan_schema(setup) -> None:
    xsd = CORPUS / "annotation_formats" / "elan" / "EAFv3.0.xsd"
    if not xsd.exists():
        pytest.skip("../shared/corpus not present")
    resp = setup["api"]("GET", f"/api/v1/recordings/{setup['rec'].id}/export.eaf")
    assert resp.status_code == 200 and resp.mimetype == "application/xml"
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    doc = etree.fromstring(resp.data)
    assert schema.validate(doc), schema.error_log
    assert doc.find("HEADER/MEDIA_DESCRIPTOR").get("RELATIVE_MEDIA_URL") == "./01_Session_3.mp4"


def test_dyad_and_study_exports(setup) -> None:
    api, dyad, study = setup["api"], setup["dyad"], setup["study"]
    resp = api("GET", f"/api/v1/dyads/{dyad.id}/export.vtt")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert resp.headers["Content-Disposition"] == "attachment; filename=dyad_01_vtt.zip"
    with zipfile.ZipFile(io.BytesIO(resp.data)) as z:
        assert z.namelist() == ["01_Session_3.vtt", "01_Session_5.vtt"]
        assert z.read("01_Session_3.vtt").startswith(b"WEBVTT\n")
    resp = api("GET", f"/api/v1/studies/{study.id}/export.xlsx")
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == "attachment; filename=study_Recall_study.xlsx"
    resp = api("GET", f"/api/v1/studies/{study.id}/export.bundle")
    with zipfile.ZipFile(io.BytesIO(resp.data)) as z:
        assert "moments.csv" in z.namelist()
        assert len(_rows(z.read("moments.csv"))) == 3
    resp = api("GET", f"/api/v1/studies/{study.id}/export.doc")
    assert resp.status_code == 422 and resp.json["error"]["code"] == "export_invalid"


def test_bundle_carries_the_figure_the_worker_drew(setup, app, db, monkeypatch) -> None:
    """The worker draws a recording's timeline PNG once it has stored its figures; the study
    bundle carries that file (the bytes `to_png` gives) instead of drawing it again, and the
    worker replaces it when the moments change."""
    rec, api, study = setup["rec"], setup["api"], setup["study"]
    storage = Storage(app.config["RECORDINGS_DIR"])
    folder = storage.derived_dir(rec.storage_key) / "figures"
    kept = sorted(folder.glob("timeline-*.png"))
    assert len(kept) == 1  # Session 3 (Session 5 has no moments: no figures job ran for it)
    drawn: list = []
    real = figure_files.png_of
    monkeypatch.setattr(figure_files, "png_of", lambda scene: drawn.append(scene) or real(scene))
    names = ("recordings/01/Session_3/01_Session_3.png", "recordings/01/Session_5/01_Session_5.png")
    for expected_drawn in (1, 1):  # Session 5 is drawn by the first bundle, then kept
        resp = api("GET", f"/api/v1/studies/{study.id}/export.bundle")
        assert resp.status_code == 200
        with zipfile.ZipFile(io.BytesIO(resp.data)) as z:
            pngs = [z.read(name) for name in names]
        assert len(drawn) == expected_drawn
    assert pngs[0] == kept[0].read_bytes()
    when = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    for recording, png in zip((rec, setup["rec2"]), pngs, strict=True):
        ctx = dataset.study_for_recording(db, recording, exported_at=when).only_recording()
        assert png == to_png(ctx) and png.startswith(b"\x89PNG\r\n\x1a\n")
    rs = db.scalar(select(RecallSession).where(RecallSession.recording_id == rec.id))
    resp = api("POST", f"/api/v1/recall-sessions/{rs.id}/moments", {"t_ms": 2500, "text": "new"})
    assert resp.status_code == 201
    assert figures.run_queued(app.extensions["ipr_db"], dict(app.config)) == 1
    now = sorted(folder.glob("timeline-*.png"))
    assert len(now) == 1 and now != kept  # the new figure, and only it


def test_study_bundle_is_made_with_the_collector_paused(setup, monkeypatch) -> None:
    """A study's export holds a million objects: no cyclic collection walks them meanwhile
    (ipr.collector), and the collector is back once the bundle is made."""
    seen: list[bool] = []
    real = dataset.to_bundle
    monkeypatch.setattr(
        dataset, "to_bundle", lambda *a, **k: seen.append(gc.isenabled()) or real(*a, **k)
    )
    resp = setup["api"]("GET", f"/api/v1/studies/{setup['study'].id}/export.bundle")
    assert resp.status_code == 200 and seen == [False] and gc.isenabled()


def test_viewer_may_export_outsider_gets_404_and_no_token_401(setup, db, make_user) -> None:
    viewer = make_user("viewer@example.org")
    outsider = make_user("outsider@example.org")
    db.add(Membership(study_id=setup["study"].id, user_id=viewer.id, role="viewer"))
    db.commit()
    url = f"/api/v1/recordings/{setup['rec'].id}/export.srt"
    assert setup["api"]("GET", url, bearer=api_token(db, viewer)).status_code == 200
    resp = setup["api"]("GET", url, bearer=api_token(db, outsider))
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    assert setup["api"]("GET", url, bearer=None).status_code == 401


# The MP4 file-type box (brands) is structure, not metadata; nothing else may survive.
STRUCTURAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


def _probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)


def fetch_clips(app, db, setup, url: str):
    """The web process only queues moment clips (202); a worker cuts them; then they download."""
    first = setup["api"]("GET", url)
    assert first.status_code == 202 and first.headers["Retry-After"] == "3"
    assert first.json["status"] == "queued"
    again = setup["api"]("GET", url)  # asking again does not queue a second job
    assert again.status_code == 202 and again.json["job_id"] == first.json["job_id"]
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), first.json["job_id"]) == "done"
    ready = setup["api"]("GET", url)
    assert ready.status_code == 200
    assert setup["api"]("GET", url).data == ready.data  # served again from the export cache
    events = db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("export%"))).all()
    assert events.count("export_requested") >= 1 and events.count("export") >= 2
    return ready


def test_moment_clips_probe_with_the_expected_duration_and_no_metadata(
    app, db, setup, tmp_path
) -> None:
    rec, m = setup["rec"], setup["m"]
    url = f"/api/v1/recordings/{rec.id}/export.zip?pre_roll_ms=1000&post_roll_ms=500"
    resp = fetch_clips(app, db, setup, url + "&include_text=false")  # default: on a keyframe
    with zipfile.ZipFile(io.BytesIO(resp.data)) as z:
        index = _rows(z.read("clips.csv"))
    assert "text" not in index[0]
    assert [(r["clip_start_ms"], r["clip_end_ms"]) for r in index] == [
        ("0", "1500"), ("0", "1900"), ("2000", "5000"),  # 400 moved back to the keyframe at 0
    ]  # fmt: skip
    url += "&keyframe_slack_ms=0"  # exact pre-roll
    resp = fetch_clips(app, db, setup, url)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=01_Session_3_moment_clips.zip"
    )
    expected = {  # t − 1000 … (end or t) + 500
        f"01_Session_3_therapist_00h00m01s_{m['t1']}.mp4": 1500,  # 0 … 1500 (starts at 0)
        f"01_Session_3_client_00h00m01s_{m['c1']}.mp4": 1500,  # 400 … 1900
        f"01_Session_3_therapist_00h00m03s_{m['t2']}.mp4": 3000,  # 2000 … 5000
    }
    with zipfile.ZipFile(io.BytesIO(resp.data)) as z:
        assert z.namelist() == [*expected, "clips.csv", "provenance.json"]
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        z.extractall(tmp_path)
        index = _rows(z.read("clips.csv"))
    assert [(r["clip_start_ms"], r["clip_end_ms"]) for r in index] == [
        ("0", "1500"), ("400", "1900"), ("2000", "5000"),
    ]  # fmt: skip
    assert index[1]["text"] == "I felt heard"
    for name, duration_ms in expected.items():
        info = _probe(tmp_path / name)
        assert abs(float(info["format"]["duration"]) * 1000 - duration_ms) <= FRAME_MS, name
        assert set(info["format"].get("tags", {})) <= STRUCTURAL_TAGS, info["format"].get("tags")
        for stream in info["streams"]:
            tags = {k: v for k, v in stream.get("tags", {}).items() if v}
            assert set(tags) <= {"language", "vendor_id", "encoder", "handler_name"}, (name, tags)
            # the mov muxer's generic handler names, never the source's (e.g. a phone's)
            assert tags.get("handler_name", "VideoHandler") in {"VideoHandler", "SoundHandler"}
            assert "creation_time" not in stream.get("tags", {})


def test_cli_export_writes_the_file_and_audits_as_the_operator(app, setup, db, tmp_path) -> None:
    out = tmp_path / "out.vtt"
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["ipr", "export", str(setup["rec"].id), "--format", "vtt", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert f"therapist-{setup['m']['t1']}\n00:00:01.000 --> 00:00:04.000 line:5%" in text
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
    assert (event.actor, event.user_id, event.details["format"]) == ("cli", None, "vtt")
    result = runner.invoke(args=["ipr", "export", "999", "--format", "csv", "-o", str(out)])
    assert result.exit_code != 0 and "No recording with id 999" in result.output


def test_export_page_downloads_with_the_chosen_options(setup, owner_web) -> None:
    rec = setup["rec"]
    page = owner_web.get(f"/recordings/{rec.id}/export")
    assert page.status_code == 200 and b'value="zip"' in page.data
    resp = owner_web.get(f"/recordings/{rec.id}/export?format=csv")  # text box unticked
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == "attachment; filename=01_Session_3.csv"
    assert b"I felt heard" not in resp.data
    form = {"format": "json", "include_text": "1"}
    resp = owner_web.get(f"/studies/{setup['study'].id}/export", query_string=form)
    assert b"I felt heard" in resp.data


def _import(web: Web, rec, participant, data: bytes, name: str, **form):
    return web.post(
        f"/recordings/{rec.id}/import",
        {"participant_id": str(participant.id), "file": (io.BytesIO(data), name), **form},
        content_type="multipart/form-data",
    )


def test_csv_import_with_errors_names_the_lines_and_imports_nothing(setup, owner_web, db) -> None:
    rec2, dyad = setup["rec2"], setup["dyad"]
    data = b"start_ms,text,rating_hat\r\n1000,fine,5\r\nsoon,bad time,5\r\n2000,bad rating,12\r\n"
    resp = _import(owner_web, rec2, dyad.participant("client"), data, "paper.csv")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "line 3" in page and "line 4" in page and "line 2" not in page
    assert db.scalar(select(RecallSession).where(RecallSession.recording_id == rec2.id)) is None
    data = b"start_ms,text\r\n1000,fine\r\n9000,after the end\r\n"
    resp = _import(owner_web, rec2, dyad.participant("client"), data, "paper.csv")
    assert resp.status_code == 422 and "line 3: The time is outside the recording." in (
        resp.get_data(as_text=True)
    )
    assert db.scalars(select(Moment).join(RecallSession).where(
        RecallSession.recording_id == rec2.id)).all() == []  # fmt: skip


MOMENT_FIELDS = (
    "start_ms", "end_ms", "start_tc", "end_tc", "peaks_ms", "text", "codes", "rating_hat",
)  # fmt: skip


def test_csv_round_trip_into_another_lane(setup, owner_web, owner, db) -> None:
    api, rec, rec2, dyad = setup["api"], setup["rec"], setup["rec2"], setup["dyad"]
    exported = api("GET", f"/api/v1/recordings/{rec.id}/export.csv").data
    client = dyad.participant("client")
    resp = _import(owner_web, rec2, client, exported, "s3.csv", source_lane="therapist")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "Imported 2 moments into C01" in resp.get_data(as_text=True)
    rs = db.scalar(select(RecallSession).where(RecallSession.recording_id == rec2.id))
    assert (rs.participant_id, rs.mode, rs.created_by_id) == (client.id, "researcher", owner.id)
    entered = db.scalars(select(Moment.entered_by_id).where(Moment.recall_session_id == rs.id))
    assert set(entered) == {owner.id}
    again = _rows(api("GET", f"/api/v1/recordings/{rec2.id}/export.csv").data)
    original = [r for r in _rows(exported) if r["lane"] == "therapist"]
    assert [{k: r[k] for k in MOMENT_FIELDS} for r in again] == [
        {k: r[k] for k in MOMENT_FIELDS} for r in original
    ]
    assert {r["lane"] for r in again} == {"client"} and {r["participant"] for r in again} == {"C01"}
    assert {r["imported_from"] for r in again} == {"csv:s3.csv"}  # and in the provenance:
    doc = json.loads(api("GET", f"/api/v1/recordings/{rec2.id}/export.json").data)
    recall_info = doc["provenance"]["recordings"][0]["recall"]["client"]
    assert (recall_info["imported_moments"], recall_info["import_sources"]) == (2, ["csv:s3.csv"])
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "moments_imported"))
    assert event.details == {"format": "csv", "count": 2, "participant": "C01"}
    # a second import adds to the same recall session
    resp = _import(owner_web, rec2, client, b"start_ms\r\n500\r\n", "more.csv")
    assert resp.status_code == 200
    assert (
        len(db.scalars(select(RecallSession).where(RecallSession.recording_id == rec2.id)).all())
        == 1
    )


def test_csv_with_both_lanes_needs_a_lane_choice(setup, owner_web) -> None:
    exported = setup["api"]("GET", f"/api/v1/recordings/{setup['rec'].id}/export.csv").data
    resp = _import(owner_web, setup["rec2"], setup["dyad"].participant("client"), exported, "x.csv")
    assert resp.status_code == 422
    assert "choose which lane" in resp.get_data(as_text=True)


def test_eaf_tier_round_trip(setup, owner_web, db) -> None:
    api, rec, rec2, dyad = setup["api"], setup["rec"], setup["rec2"], setup["dyad"]
    eaf = api("GET", f"/api/v1/recordings/{rec.id}/export.eaf").data
    therapist = dyad.participant("therapist")
    resp = _import(owner_web, rec2, therapist, eaf, "s3.eaf")
    assert resp.status_code == 422 and "choose the tier" in resp.get_data(as_text=True)
    resp = _import(owner_web, rec2, therapist, eaf, "s3.eaf", tier="therapist")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    got = db.scalars(
        select(Moment).join(RecallSession).where(RecallSession.recording_id == rec2.id)
        .order_by(Moment.t_ms)
    ).all()  # fmt: skip
    assert [(m.t_ms, m.end_ms, m.peaks_ms, m.text, m.ratings) for m in got] == [
        (1000, None, [], "=she understood", {"hat": 8}),
        (3000, 4500, [4000], "stuck\nfor a while", {}),
    ]
    assert got[0].codes == [setup["study"].codes[0].id]


def test_api_tokens_created_once_listed_and_revoked(app, owner_web, owner, db, make_user) -> None:
    resp = owner_web.post("/account/tokens", {"name": "analysis script"})
    assert resp.status_code == 201
    page = resp.get_data(as_text=True)
    start = page.index("ipr_")
    plain = page[start : page.index("<", start)]
    row = db.scalar(select(ApiToken).where(ApiToken.user_id == owner.id))
    assert row.token_hash != plain and plain not in row.token_hash and len(plain) > 40
    listing = owner_web.get("/account/tokens").get_data(as_text=True)
    assert plain not in listing and f"{row.prefix}…" in listing and "never" in listing
    client = app.test_client()
    auth = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/studies", headers=auth).status_code == 200
    assert "never" not in owner_web.get("/account/tokens").get_data(as_text=True)
    make_user("other@example.org")
    other = Web(app)
    other.login("other@example.org")
    assert other.post(f"/account/tokens/{row.id}/revoke").status_code == 404  # not theirs
    assert client.get("/api/v1/studies", headers=auth).status_code == 200
    resp = owner_web.post(f"/account/tokens/{row.id}/revoke")
    assert resp.status_code == 303
    assert client.get("/api/v1/studies", headers=auth).status_code == 401
    assert row.prefix not in owner_web.get("/account/tokens").get_data(as_text=True)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "api_token"))
    assert list(actions) == ["api_token_created", "api_token_revoked"]
    assert owner_web.post(f"/account/tokens/{row.id}/revoke").status_code == 404
    assert owner_web.post("/account/tokens", {"name": " "}).status_code == 422


def test_textgrid_import_previews_then_writes_only_on_confirm(setup, owner_web, db, app) -> None:
    rec2, client = setup["rec2"], setup["dyad"].participant("client")
    grid = (
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n9\n<exists>\n2\n'
        '"IntervalTier"\n"client spans"\n0\n9\n3\n0\n1.5\n""\n1.5\n2.25\n"[Insight] felt seen"\n'
        '2.25\n9\n""\n"TextTier"\n"client points"\n0\n9\n1\n4\n"tea"\n'
    ).encode("utf-16")
    resp = owner_web.post(
        f"/recordings/{rec2.id}/import/preview",
        {"file": (io.BytesIO(grid), "talk.TextGrid")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    page = resp.get_data(as_text=True)
    assert "Preview: talk.TextGrid (Praat TextGrid)" in page
    assert "client spans, client points" in page
    assert "<td>0:01–0:04</td>" in page
    moments = select(Moment).join(RecallSession).where(RecallSession.recording_id == rec2.id)
    assert db.scalars(moments).all() == []  # nothing written by the preview
    token = page.split('name="token" value="')[1].split('"')[0]
    staged = Storage(app.config["RECORDINGS_DIR"]).staged_import(token)
    assert staged.read_bytes() == grid
    resp = owner_web.post(
        f"/recordings/{rec2.id}/import",
        {"participant_id": str(client.id), "token": token, "filename": "talk.TextGrid",
         "tier": "client"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.get_data(as_text=True)
    got = db.scalars(moments.order_by(Moment.t_ms)).all()
    assert [(m.t_ms, m.end_ms, m.text, m.import_source) for m in got] == [
        (1500, 2250, "felt seen", "textgrid:talk.TextGrid"),
        (4000, None, "tea", "textgrid:talk.TextGrid"),
    ]
    assert got[0].codes == [setup["study"].codes[0].id]  # the codebook's code, by its key
    assert not staged.exists()


def test_unreadable_import_names_the_format_it_recognised(setup, owner_web) -> None:
    resp = owner_web.post(
        f"/recordings/{setup['rec2'].id}/import/preview",
        {"file": (io.BytesIO(b"WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n"), "c.vtt")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 422
    assert "WebVTT subtitles: captions are not moments" in resp.get_data(as_text=True)
