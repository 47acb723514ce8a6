"""The dyad timeline page, its JSON, the dyad and dashboard pages, and the timeline API.

A hand-made recording with known moments: therapist at 10 000 and 30 000 ms, client at 12 000
and 50 000 ms (plus a deleted therapist moment at 51 000 that must not count), 60 s long.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from ipr import figures, recall, studies
from ipr import timeline_service as ts
from ipr.models import Moment, Recording, ResearcherAnnotation, utcnow
from ipr.storage import Storage
from ipr.synchrony import synchrony
from ipr.timeline import Mark, agreement
from tests.conftest import Web, api_token, make_video

DURATION = 60_000


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("media") / "playable.mp4", 2.0)


def motion(seconds: int = 60, rate: float = 25.0) -> tuple[list[float], list[float]]:
    """Right follows left by 1 s, with noise: a coupled pair with a known shape."""
    rng = np.random.default_rng(7)
    n = int(seconds * rate)
    left = np.abs(np.sin(np.arange(n) / 20.0)) + rng.random(n) * 0.3
    right = np.roll(left, 25) + rng.random(n) * 0.3
    return np.round(left, 4).tolist(), np.round(right, 4).tolist()


def add_recording(app, db, study, dyad, owner, sample_mp4, label: str, *, analysis: bool = True):
    rec = Recording(
        study_id=study.id,
        dyad_id=dyad.id,
        session_label=label,
        storage_key=Storage.new_key(),
        status="ready",
        duration_ms=DURATION,
        width=320,
        height=180,
        fps_num=25,
        fps_den=1,
        has_audio=True,
    )
    db.add(rec)
    db.commit()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(rec.storage_key)
    derived.mkdir(parents=True)
    shutil.copy(sample_mp4, derived / "playable.mp4")
    if analysis:
        left, right = motion()
        (derived / "analysis.json").write_text(
            json.dumps(
                {
                    "scene_cuts_ms": [20_000],
                    "silences_ms": [[0, 1500]],
                    "motion_energy": {"rate_hz": 25.0, "left": left, "right": right},
                }
            )
        )
    return rec


def moment(db, rs, t_ms: int, **fields) -> Moment:
    m = Moment(study_id=rs.study_id, recall_session_id=rs.id, t_ms=t_ms, **fields)
    db.add(m)
    db.flush()
    return m


@pytest.fixture
def dyad_setup(app, db, owner, owner_web, study, sample_mp4):
    dyad = studies.create_dyad(db, study, owner, "01")
    insight = studies.add_code(db, study, owner, {"name": "Insight", "colour": "#123456"})
    rupture = studies.add_code(db, study, owner, {"name": "Rupture", "colour": "#aa3300"})
    db.commit()
    rec = add_recording(app, db, study, dyad, owner, sample_mp4, "Session 3")
    rs_t, token_t = recall.create_session(
        db, rec, dyad.participant("therapist"), "self", owner, days=14
    )
    rs_c, token_c = recall.create_session(
        db, rec, dyad.participant("client"), "self", owner, days=14
    )
    rs_t.status = "submitted"
    rs_c.status = "in_progress"
    t1 = moment(db, rs_t, 10_000, codes=[insight.id], ratings={"hat": 8}, text="I saw her relax")
    t2 = moment(db, rs_t, 30_000, text="I pushed too hard")
    gone = moment(db, rs_t, 51_000, text="deleted", deleted_at=utcnow())
    c1 = moment(db, rs_c, 12_000, codes=[insight.id], ratings={"hat": 7}, text="I felt heard")
    c2 = moment(db, rs_c, 50_000, end_ms=55_000, peaks_ms=[53_000], text="Angry here")
    db.add(
        ResearcherAnnotation(
            study_id=study.id, moment_id=c2.id, user_id=owner.id, codes=[rupture.id], note="r1"
        )
    )
    figures.mark_stale(db, rec.id, study.id)  # moments written behind recall's back
    db.commit()
    token = api_token(db, owner)
    client = app.test_client()

    def compute() -> int:
        """What the worker does: run the waiting figures jobs."""
        return figures.run_queued(app.extensions["ipr_db"], dict(app.config))

    def api(url: str, bearer: str | None = token, *, fresh: bool = True):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if fresh:  # ask once (queues the figures if they are not stored), let the worker run
            client.get(url, headers=headers)
            compute()
        return client.get(url, headers=headers)

    return {
        "compute": compute,
        "rec": rec,
        "dyad": dyad,
        "study": study,
        "api": api,
        "ids": {"t1": t1.id, "t2": t2.id, "gone": gone.id, "c1": c1.id, "c2": c2.id},
        "tokens": {"therapist": token_t, "client": token_c},
        "codes": {"insight": insight.id, "rupture": rupture.id},
    }


def test_api_gives_lanes_pairs_unmatched_and_exact_figures(dyad_setup) -> None:
    ids, rec = dyad_setup["ids"], dyad_setup["rec"]
    resp = dyad_setup["api"](f"/api/v1/recordings/{rec.id}/timeline?tolerance_ms=5000")
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["recording_id"] == rec.id
    assert body["duration_ms"] == DURATION
    assert body["tolerance_ms"] == 5000
    assert [m["id"] for m in body["lanes"]["therapist"]] == [ids["t1"], ids["t2"]]
    assert [m["id"] for m in body["lanes"]["client"]] == [ids["c1"], ids["c2"]]
    assert body["lanes"]["client"][1] | {"ratings": {}} == {
        "id": ids["c2"],
        "t_ms": 50_000,
        "end_ms": 55_000,
        "peaks_ms": [53_000],
        "text": "Angry here",
        "codes": [],
        "ratings": {},
        "version": 1,
        "phase": "blind",
        "responds_to_id": None,
        "corrected_at": None,
    }
    assert body["lanes"]["researcher"] == [
        {
            "id": body["lanes"]["researcher"][0]["id"],
            "moment_id": ids["c2"],
            "lane": "client",
            "t_ms": 50_000,
            "end_ms": 55_000,
            "codes": [dyad_setup["codes"]["rupture"]],
            "note": "r1",
            "coder": "owner@example.org",
        }
    ]
    assert body["pairs"] == [
        {"therapist_moment_id": ids["t1"], "client_moment_id": ids["c1"], "lag_ms": 2000}
    ]
    assert body["unmatched"] == {"therapist": [ids["t2"]], "client": [ids["c2"]]}
    assert body["participants"] == {
        "therapist": {"code": "T01", "status": "submitted"},
        "client": {"code": "C01", "status": "in_progress"},
    }
    f = body["figures"]
    assert (f["n_therapist"], f["n_client"], f["n_pairs"]) == (2, 2, 1)
    assert f["co_marking_rate"] == 0.5
    assert (f["therapist_first"], f["client_first"], f["simultaneous"]) == (1, 0, 0)
    assert f["lag_median_ms"] == 2000 and f["abs_lag_median_ms"] == 2000
    # 60 one-second bins: therapist marks 2, client 6 (the span covers bins 50-54), none shared;
    # p_o = 52/60, p_e = (2·6 + 58·54)/3600 = 3144/3600, kappa = (3120 - 3144)/456 = -1/19
    assert f["kappa"]["n_bins"] == 60
    assert f["kappa"]["kappa"] == pytest.approx(-1 / 19)
    assert f["per_code"] == [{"code": "Insight", "therapist": 1, "client": 1, "both_in_pair": 1}]
    # the chance baseline is the documented one (1,000 circular shifts, seed 0) on these moments
    ref = agreement(
        [Mark(ids["t1"], 10_000, codes=("Insight",)), Mark(ids["t2"], 30_000)],
        [Mark(ids["c1"], 12_000, codes=("Insight",)), Mark(ids["c2"], 50_000, 55_000, (53_000,))],
        5000,
        duration_ms=DURATION,
    )
    assert f["chance"] == {
        "n_shifts": 1000,
        "seed": 0,
        "expected_rate": ref.chance.expected_rate,
        "sd_rate": ref.chance.sd_rate,
        "p_value": ref.chance.p_value,
    }
    assert 0 < f["chance"]["expected_rate"] < 0.5
    left, right = motion()
    sync = f["synchrony"]
    expected = synchrony(left, right, 25.0)
    assert sync["n_windows"] == 3
    assert sync["grand_mean"] == pytest.approx(expected.grand_mean)
    assert [p["t_ms"] for p in sync["series"]] == [15_000, 25_000, 35_000]
    assert sync["surrogate"]["n"] == ts.N_SURROGATES  # the worker computed it
    status = body["figures_status"]
    assert status["state"] == "fresh" and status["moments_version"] == status["current_version"]
    assert status["params"] == {
        "tolerance_ms": 5000,
        "bin_ms": 1000,
        "n_shifts": 1000,
        "seed": 0,
        "phase": "blind",
        "synchrony": {
            "window_s": 30.0,
            "step_s": 10.0,
            "max_lag_s": 5.0,
            "segment_s": 30.0,
            "n_surrogates": 50,
            "seed": 0,
        },
    }


def test_tolerance_changes_the_matching(dyad_setup) -> None:
    ids, rec, api = dyad_setup["ids"], dyad_setup["rec"], dyad_setup["api"]
    wide = api(f"/api/v1/recordings/{rec.id}/timeline?tolerance_ms=20000").json
    assert wide["pairs"] == [
        {"therapist_moment_id": ids["t1"], "client_moment_id": ids["c1"], "lag_ms": 2000},
        {"therapist_moment_id": ids["t2"], "client_moment_id": ids["c2"], "lag_ms": 20_000},
    ]
    assert wide["unmatched"] == {"therapist": [], "client": []}
    assert wide["figures"]["co_marking_rate"] == 1.0
    # 30 000 to the span starting at 50 000 is 20 000 apart: 19 900 leaves it alone
    almost = api(f"/api/v1/recordings/{rec.id}/timeline?tolerance_ms=19900").json
    assert len(almost["pairs"]) == 1
    none = api(f"/api/v1/recordings/{rec.id}/timeline?tolerance_ms=1900").json
    assert none["pairs"] == [] and none["figures"]["co_marking_rate"] == 0.0
    assert none["unmatched"] == {
        "therapist": [ids["t1"], ids["t2"]],
        "client": [ids["c1"], ids["c2"]],
    }
    default = api(f"/api/v1/recordings/{rec.id}/timeline").json
    assert default["tolerance_ms"] == 5000  # the study's alignment tolerance
    assert len(default["pairs"]) == 1


def test_invalid_tolerance_is_422(dyad_setup, owner_web) -> None:
    rec = dyad_setup["rec"]
    for bad in ("-1", "abc", "2.5", "600001", "60100", "3001", "²", "9" * 5000):
        url = f"/api/v1/recordings/{rec.id}/timeline?tolerance_ms={bad}"
        resp = dyad_setup["api"](url, fresh=False)
        assert resp.status_code == 422, bad
        assert resp.json["error"]["field"] == "tolerance_ms"
        page = owner_web.get(f"/recordings/{rec.id}/timeline.json?tolerance_ms={bad}")
        assert page.status_code == 422, bad
    assert ts.parse_tolerance(None, 4000) == 4000 and ts.parse_tolerance("0", 4000) == 0
    assert ts.parse_tolerance("60000", 4000) == 60_000
    assert ts.parse_tolerance("600000", 600_000) == 600_000  # the study's own: always


def test_api_needs_a_token_and_hides_other_studies(app, db, dyad_setup, make_user) -> None:
    rec = dyad_setup["rec"]
    url = f"/api/v1/recordings/{rec.id}/timeline"
    assert dyad_setup["api"](url, bearer=None).status_code == 401
    outsider = make_user("outsider@example.org")
    resp = dyad_setup["api"](url, bearer=api_token(db, outsider))
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    assert dyad_setup["api"](f"/api/v1/recordings/{rec.id + 999}/timeline").status_code == 404


def test_edits_and_deletions_change_the_answer(db, dyad_setup) -> None:
    ids, rec, api = dyad_setup["ids"], dyad_setup["rec"], dyad_setup["api"]
    study_id = dyad_setup["study"].id
    url = f"/api/v1/recordings/{rec.id}/timeline?tolerance_ms=5000"
    assert len(api(url).json["pairs"]) == 1
    lanes = ts.load_lanes(db, db.get(Recording, rec.id))
    assert [m.t_ms for m in lanes.therapist] == [10_000, 30_000]  # not the deleted 51 000
    assert [m.t_ms for m in lanes.client] == [12_000, 50_000]
    m = db.get(Moment, ids["t2"])
    m.t_ms, m.version = 47_000, 2  # now 3 s before the client's span
    figures.mark_stale(db, rec.id, study_id)
    db.commit()
    # until the worker has run: the stored figures, marked as updating, the lane already moved
    before = api(url, fresh=False).json
    assert before["figures_status"]["state"] == "updating"
    assert len(before["pairs"]) == 1 and before["lanes"]["therapist"][1]["t_ms"] == 47_000
    body = api(url).json
    assert body["figures_status"]["state"] == "fresh"
    assert body["pairs"][1] == {
        "therapist_moment_id": ids["t2"],
        "client_moment_id": ids["c2"],
        "lag_ms": 3000,
    }
    db.get(Moment, ids["c1"]).deleted_at = utcnow()
    figures.mark_stale(db, rec.id, study_id)
    db.commit()
    body = api(url).json
    assert [p["client_moment_id"] for p in body["pairs"]] == [ids["c2"]]
    assert body["unmatched"]["therapist"] == [ids["t1"]]


def page_payload(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', html, re.S)
    assert m, "the page embeds its data"
    return json.loads(m.group(1))


def test_page_embeds_the_payload_and_shows_the_figures(owner_web, dyad_setup) -> None:
    ids, rec = dyad_setup["ids"], dyad_setup["rec"]
    first = owner_web.get(f"/recordings/{rec.id}/timeline").get_data(as_text=True)
    # never computed: the lanes are there, the figures say so and the panel polls
    assert page_payload(first)["figures"] is None and page_payload(first)["pairs"] == []
    assert 'data-figures-state="computing"' in first
    assert f'hx-get="/recordings/{rec.id}/timeline?tolerance_ms=5000"' in first
    assert 'hx-trigger="every 2s"' in first
    dyad_setup["compute"]()
    resp = owner_web.get(f"/recordings/{rec.id}/timeline")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    data = page_payload(html)
    assert data["pairs"] == [
        {"therapist_moment_id": ids["t1"], "client_moment_id": ids["c1"], "lag_ms": 2000}
    ]
    assert data["unmatched"] == {"therapist": [ids["t2"]], "client": [ids["c2"]]}
    assert [c["name"] for c in data["codes"]] == ["Insight", "Rupture"]
    assert data["scales"][0]["key"] == "hat"
    assert data["urls"]["data"] == f"/recordings/{rec.id}/timeline.json"
    assert data["figures"]["synchrony"]["surrogate"]["n"] == ts.N_SURROGATES
    assert "Co-marking 50%" in html
    assert "1 pair among 2 therapist and 2 client moments" in html
    assert "Median gap 2.0 s" in html
    assert "Time-unit kappa -0.05" in html
    assert "hx-trigger" not in html  # fresh: nothing polls
    assert "data-figures-state" not in html
    assert data["figures"]["chance"]["n_shifts"] == 1000
    # strict CSP: no executable inline script and no style attributes
    assert not re.search(r"<script(?![^>]*(src=|application/json))", html)
    assert " style=" not in html
    assert "</script><script" not in data["lanes"]["therapist"][0]["text"]


def test_tolerance_control_gets_the_figures_fragment_and_json(owner_web, dyad_setup) -> None:
    rec = dyad_setup["rec"]
    url = f"/recordings/{rec.id}/timeline?tolerance_ms=20000"
    frag = owner_web.get(url, htmx=True).get_data(as_text=True)
    assert '<section id="figures"' in frag and "<html" not in frag
    assert "being computed" in frag and 'hx-trigger="every 2s"' in frag
    dyad_setup["compute"]()
    frag = owner_web.get(url, htmx=True)
    html = frag.get_data(as_text=True)
    assert frag.status_code == 200 and html.lstrip().startswith("{# ") is False
    assert '<section id="figures"' in html and "<html" not in html
    assert "Co-marking 100%" in html and "±20.0 s" in html and "hx-trigger" not in html
    owner_web.get(f"/recordings/{rec.id}/timeline.json?tolerance_ms=0")
    dyad_setup["compute"]()
    data = owner_web.get(f"/recordings/{rec.id}/timeline.json?tolerance_ms=0").json
    assert data["pairs"] == [] and data["tolerance_ms"] == 0
    chance = owner_web.get(f"/recordings/{rec.id}/timeline/chance?tolerance_ms=5000", htmx=True)
    html = chance.get_data(as_text=True)
    assert chance.status_code == 200 and "hx-trigger" not in html
    assert re.search(r"Co-marking 50%\s*<span class=\"muted\">· chance \d+% · p = 0\.\d{3}", html)
    data = owner_web.get(f"/recordings/{rec.id}/timeline.json?tolerance_ms=5000").json
    assert data["figures"]["chance"]["n_shifts"] == 1000


def test_extra_tolerances_are_bounded_and_never_computed_by_the_web(
    app, db, owner_web, dyad_setup, monkeypatch
) -> None:
    """The old DoS: ?tolerance_ms=3001, 3002, … each recomputed the chance baseline in the
    request. Now: a step of 100 ms, the worker computes, and at most MAX_EXTRA_SETS are kept."""
    from sqlalchemy import func, select

    import ipr.timeline
    from ipr.models import FigureSet, Job

    rec = dyad_setup["rec"]
    calls: list[str] = []
    for name in ("agreement", "chance_baseline", "match_lanes"):
        real = getattr(ipr.timeline, name)
        monkeypatch.setattr(
            ipr.timeline, name, lambda *a, _r=real, _n=name, **k: (calls.append(_n), _r(*a, **k))[1]
        )
    owner_web.get(f"/recordings/{rec.id}/timeline")  # the study's own set, asked for
    for tol in (3001, 3002):
        resp = owner_web.get(f"/recordings/{rec.id}/timeline/chance?tolerance_ms={tol}")
        assert resp.status_code == 422
    for tol in range(1000, 9000, 1000):  # eight new tolerances
        resp = owner_web.get(f"/recordings/{rec.id}/timeline/chance?tolerance_ms={tol}")
        assert resp.status_code == 200
    assert calls == []  # not one figure computed in the web process
    kept = db.scalars(select(FigureSet.params_key).where(FigureSet.recording_id == rec.id)).all()
    assert len(kept) == 1 + figures.MAX_EXTRA_SETS  # the study's own set and the 4 newest
    queued = db.scalar(
        select(func.count()).select_from(Job).where(Job.kind == "figures", Job.status == "queued")
    )
    assert queued == 1  # one coalesced job for the recording
    assert dyad_setup["compute"]() == 1
    assert "agreement" in calls
    tols = sorted(
        s["tolerance_ms"]
        for s in db.scalars(select(FigureSet.params).where(FigureSet.recording_id == rec.id))
    )
    assert tols == [4000, 5000, 6000, 7000, 8000]


def test_synchrony_is_computed_by_the_worker_and_kept_across_saves(
    app, db, owner_web, dyad_setup, monkeypatch
) -> None:
    import ipr.synchrony

    rec = dyad_setup["rec"]
    owner_web.get(f"/recordings/{rec.id}/timeline/synchrony", htmx=True)
    dyad_setup["compute"]()
    resp = owner_web.get(f"/recordings/{rec.id}/timeline/synchrony", htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "when shuffled" in html and "hx-trigger" not in html
    first = owner_web.get(f"/recordings/{rec.id}/timeline.json").json["figures"]["synchrony"]
    assert first["surrogate"]["n"] == ts.N_SURROGATES
    calls: list[int] = []
    monkeypatch.setattr(ipr.synchrony, "surrogate_baseline", lambda *a, **k: calls.append(1))
    figures.mark_stale(db, rec.id, rec.study_id)  # a moment changed: synchrony did not
    db.commit()
    assert dyad_setup["compute"]() == 1
    again = owner_web.get(f"/recordings/{rec.id}/timeline.json").json
    assert again["figures_status"]["state"] == "fresh"
    assert again["figures"]["synchrony"] == first and calls == []


def test_participants_and_outsiders_never_reach_the_timeline(app, dyad_setup, make_user) -> None:
    rec, dyad = dyad_setup["rec"], dyad_setup["dyad"]
    pages = (
        f"/recordings/{rec.id}/timeline",
        f"/recordings/{rec.id}/timeline.json",
        f"/recordings/{rec.id}/timeline/synchrony",
        f"/dyads/{dyad.id}/timeline",
        f"/studies/{dyad_setup['study'].id}/dashboard",
    )
    make_user("outsider@example.org")
    outsider = Web(app)
    outsider.login("outsider@example.org")
    for url in pages:
        assert outsider.get(url).status_code == 404, url
    for role, token in dyad_setup["tokens"].items():
        web = Web(app)
        entered = web.get(f"/r/{token}")
        assert entered.status_code == 303, role  # the participant now holds their cookie
        for url in pages:
            resp = web.get(url)
            assert resp.status_code in (302, 404), (role, url, resp.status_code)
            if resp.status_code == 302:
                assert resp.headers["Location"].startswith("/login")
        # nor with their invitation token as a Bearer token on the API
        api = dyad_setup["api"](f"/api/v1/recordings/{rec.id}/timeline", bearer=token)
        assert api.status_code == 401


def test_dyad_page_shows_sessions_one_above_the_other(
    app, db, owner, owner_web, dyad_setup, sample_mp4
) -> None:
    later = add_recording(
        app, db, dyad_setup["study"], dyad_setup["dyad"], owner, sample_mp4, "Session 5"
    )
    waiting = owner_web.get(f"/dyads/{dyad_setup['dyad'].id}/timeline").get_data(as_text=True)
    assert 'data-total="dyad"' not in waiting  # nothing stored yet
    assert "Some figures are being computed" in waiting and 'hx-trigger="every 3s"' in waiting
    dyad_setup["compute"]()
    resp = owner_web.get(f"/dyads/{dyad_setup['dyad'].id}/timeline")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert html.index("Session 3") < html.index("Session 5")
    first = re.search(rf'id="timeline-data-{dyad_setup["rec"].id}">(.*?)</script>', html, re.S)
    second = re.search(rf'id="timeline-data-{later.id}">(.*?)</script>', html, re.S)
    assert len(json.loads(first.group(1))["pairs"]) == 1
    assert json.loads(second.group(1))["pairs"] == []
    assert "<strong>1 pair</strong>" in html and "<strong>0 pairs</strong>" in html
    assert 'co-marking <strong data-figure="co-marking">50%</strong>' in html
    assert "hx-trigger" not in html
    syncs = [json.loads(m.group(1))["figures"]["synchrony"] for m in (first, second)]
    total = re.search(r'<p data-total="dyad">(.*?)</p>', html, re.S).group(1)
    assert " ".join(re.sub(r"<[^>]+>", "", total).split()) == (
        "All 2 sessions: 1 pair among 2 therapist and 2 client moments · co-marking 50% "
        "(pooled) · mean synchrony " + f"{np.mean([s['grand_mean'] for s in syncs]):.3f}"
    )


def test_dyad_page_with_a_recording_shorter_than_the_synchrony_window(
    app, db, owner, owner_web, dyad_setup, sample_mp4
) -> None:
    """It answered 500: the template read synchrony.grand_mean of an error."""
    short = add_recording(
        app, db, dyad_setup["study"], dyad_setup["dyad"], owner, sample_mp4, "Short", analysis=False
    )
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(short.storage_key)
    left, right = motion(seconds=10)  # 10 s: shorter than one 30 s window
    (derived / "analysis.json").write_text(
        json.dumps({"motion_energy": {"rate_hz": 25.0, "left": left, "right": right}})
    )
    owner_web.get(f"/dyads/{dyad_setup['dyad'].id}/timeline")
    dyad_setup["compute"]()
    resp = owner_web.get(f"/dyads/{dyad_setup['dyad'].id}/timeline")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    sync = owner_web.get(f"/recordings/{short.id}/timeline.json").json["figures"]["synchrony"]
    assert sync["error"] and sync["grand_mean"] is None
    assert sync["error"] in html.replace("&#39;", "'")


def test_dashboard_lists_every_dyad_and_session(app, db, owner, owner_web, dyad_setup) -> None:
    study = dyad_setup["study"]
    studies.create_dyad(db, study, owner, "02")
    db.commit()

    def row_text() -> list[str]:
        html = owner_web.get(f"/studies/{study.id}/dashboard").get_data(as_text=True)
        row = re.search(rf'<tr data-recording="{dyad_setup["rec"].id}">(.*?)</tr>', html, re.S)
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row.group(1), re.S)
        return [" ".join(re.sub(r"<[^>]+>", "", c).split()) for c in cells]

    text = row_text()
    assert text[:6] == ["01", "Session 3", "submitted", "in progress", "—", "— computing…"]
    assert dyad_setup["compute"]() == 1  # the dashboard's first view queued nothing twice
    text = row_text()
    assert text[:7] == ["01", "Session 3", "submitted", "in progress", "2 / 2", "1", "50%"]
    # the worker computes the chance level with spans too
    assert re.fullmatch(r"\d+% \(p = 0\.\d{3}\)", text[7]), text[7]
    assert re.fullmatch(r"0\.\d{3} \(p = 0\.\d{3}\)", text[8]), text[8]
    html = owner_web.get(f"/studies/{study.id}/dashboard").get_data(as_text=True)
    assert "No recordings yet." in html  # dyad 02
    assert "hx-trigger" not in html
    foot = re.search(r'<tr data-total="study">(.*?)</tr>', html, re.S).group(1)
    cells = [
        " ".join(re.sub(r"<[^>]+>", "", c).split())
        for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", foot, re.S)
    ]
    assert cells[:4] == ["Study, pooled over 1 session", "2 / 2", "1", "50%"]
    study_page = owner_web.get(f"/studies/{study.id}").get_data(as_text=True)
    assert f'href="/studies/{study.id}/dashboard"' in study_page
    rec, dyad = dyad_setup["rec"], dyad_setup["dyad"]
    recording_page = owner_web.get(f"/recordings/{rec.id}").get_data(as_text=True)
    assert f'href="/recordings/{rec.id}/timeline"' in recording_page
    dyad_page = owner_web.get(f"/dyads/{dyad.id}").get_data(as_text=True)
    assert f'href="/dyads/{dyad.id}/timeline"' in dyad_page


def test_a_recording_not_processed_yet(app, db, owner_web, dyad_setup) -> None:
    rec = db.get(Recording, dyad_setup["rec"].id)
    rec.status = "processing"
    db.commit()
    page = owner_web.get(f"/recordings/{rec.id}/timeline")
    assert page.status_code == 200
    assert "processing now" in page.get_data(as_text=True)
    api = dyad_setup["api"](f"/api/v1/recordings/{rec.id}/timeline")
    assert api.status_code == 422
    dash = owner_web.get(f"/studies/{dyad_setup['study'].id}/dashboard").get_data(as_text=True)
    assert "processing" in dash
