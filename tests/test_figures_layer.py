"""The stored figures layer: blind-phase input, coalesced jobs, statement counts, and no figure
computed in the web process (ipr.figures)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

import ipr.synchrony
import ipr.timeline
from ipr import auth, figures
from ipr.models import (
    Dyad,
    Job,
    Moment,
    Participant,
    RecallSession,
    Recording,
    Study,
)
from ipr.storage import Storage
from tests.conftest import PASSWORD, Web, jpost, make_app, participant

PURE = {
    ipr.timeline: ("agreement", "match_lanes", "chance_baseline", "binned_kappa", "count_pairs"),
    ipr.synchrony: ("synchrony", "surrogate_baseline"),
}


@pytest.fixture
def computed(monkeypatch):
    """Every call of a pure figure function (ipr.timeline, ipr.synchrony), by name."""
    calls: list[str] = []
    for module, names in PURE.items():
        for name in names:
            real = getattr(module, name)

            def counting(*a: Any, _real=real, _name=name, **k: Any) -> Any:
                calls.append(_name)
                return _real(*a, **k)

            monkeypatch.setattr(module, name, counting)
    return calls


@contextmanager
def statements(app):
    """Count the SQL statements sent to the database inside the block (but the login
    session's periodic last-seen write)."""
    seen: list[str] = []
    engine = app.extensions["ipr_db"].engine

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        # the login session's last-seen time is written at most every 15 s: a clock, not size
        if not statement.startswith("UPDATE auth_sessions SET last_seen_at"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def run_worker(app) -> int:
    return figures.run_queued(app.extensions["ipr_db"], dict(app.config))


def timeline_json(api, rec_id: int) -> dict:
    resp = api("GET", f"/api/v1/recordings/{rec_id}/timeline")
    assert resp.status_code == 200, resp.json
    return resp.json


def test_a_reveal_and_responses_leave_every_figure_unchanged(app, db, recall_env) -> None:
    api, rec = recall_env["api"], recall_env["rec"]
    recall_env["study"].alignment_tolerance_ms = 1000  # 4000 and 5500 stay unmatched
    db.commit()
    t, c = recall_env["invite"]("therapist"), recall_env["invite"]("client")
    tw, cw = participant(app, t["url"]), participant(app, c["url"])
    for web, rs, t_ms in ((tw, t, 1000), (tw, t, 4000), (cw, c, 1600), (cw, c, 5500)):
        assert jpost(web, f"/recall/{rs['id']}/moments", {"t_ms": t_ms}).status_code == 201
    for web, rs in ((tw, t), (cw, c)):
        assert jpost(web, f"/recall/{rs['id']}/finish", {}).json == {"status": "submitted"}
    timeline_json(api, rec.id)
    run_worker(app)
    before = timeline_json(api, rec.id)
    assert before["figures_status"]["state"] == "fresh"
    assert before["figures"]["n_pairs"] == 1 and before["figures"]["co_marking_rate"] == 0.5
    export_before = json.loads(api("GET", f"/api/v1/recordings/{rec.id}/export.json").data)
    assert api("POST", f"/api/v1/recordings/{rec.id}/reveal").status_code in (200, 204)
    # both answer the other's unmatched moment right on time: lag-0 "pairs" if they counted
    lanes = before["lanes"]
    t_unmatched = before["unmatched"]["therapist"][0]
    c_unmatched = before["unmatched"]["client"][0]
    at = {m["id"]: m["t_ms"] for m in lanes["therapist"] + lanes["client"]}
    for web, rs, other in ((cw, c, t_unmatched), (tw, t, c_unmatched)):
        body = {"t_ms": at[other], "responds_to_id": other, "text": "answer"}
        resp = jpost(web, f"/recall/{rs['id']}/moments", body)
        assert resp.status_code == 201, resp.json
    phases = db.scalars(select(Moment.phase).order_by(Moment.id)).all()
    assert phases == ["blind"] * 4 + ["response"] * 2
    assert run_worker(app) == 0  # responses queue no recompute
    # and a forced recompute gives the same figures
    figures.mark_stale(db, rec.id, rec.study_id)
    db.commit()
    assert run_worker(app) == 1
    after = timeline_json(api, rec.id)
    assert after["figures_status"]["state"] == "fresh"
    assert after["figures"] == before["figures"]
    assert after["pairs"] == before["pairs"] and after["unmatched"] == before["unmatched"]
    assert len(after["lanes"]["therapist"]) == 3  # the lanes still carry the responses
    export_after = json.loads(api("GET", f"/api/v1/recordings/{rec.id}/export.json").data)
    fig_before = export_before["study"]["dyads"][0]["recordings"][0]["figures"]
    fig_after = export_after["study"]["dyads"][0]["recordings"][0]["figures"]
    assert fig_after == fig_before and fig_after["n_pairs"] == 1


def test_fifty_saves_queue_one_job(app, db, recall_env) -> None:
    rec = recall_env["rec"]
    c = recall_env["invite"]("client")
    cw = participant(app, c["url"])
    for i in range(50):
        assert jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 100 * i}).status_code == 201
    jobs = db.scalars(select(Job).where(Job.kind == "figures")).all()
    assert [(j.recording_id, j.status) for j in jobs] == [(rec.id, "queued")]
    db.expire_all()
    assert db.get(Recording, rec.id).figures_version == 50
    assert run_worker(app) == 1
    db.expire_all()
    assert db.scalars(select(Job.status).where(Job.kind == "figures")).all() == ["done"]


def build_study(db, name: str, n_dyads: int, *, recordings: int = 1) -> Study:
    """A study of n dyads × recordings, each with 2 therapist and 2 client moments."""
    study = Study(name=name, alignment_tolerance_ms=5000)
    db.add(study)
    db.flush()
    for i in range(n_dyads):
        dyad = Dyad(study_id=study.id, code=f"{i:02d}")
        db.add(dyad)
        db.flush()
        people = {
            role: Participant(study_id=study.id, dyad_id=dyad.id, role=role, code=f"{role[0]}{i}")
            for role in ("therapist", "client")
        }
        db.add_all(people.values())
        db.flush()
        for r in range(recordings):
            rec = Recording(
                study_id=study.id, dyad_id=dyad.id, session_label=f"S{r}",
                storage_key=Storage.new_key(), status="ready", duration_ms=60_000,
            )  # fmt: skip
            db.add(rec)
            db.flush()
            for role, times in (("therapist", (10_000, 30_000)), ("client", (11_000, 50_000))):
                rs = RecallSession(
                    study_id=study.id, recording_id=rec.id, participant_id=people[role].id,
                    status="submitted",
                )  # fmt: skip
                db.add(rs)
                db.flush()
                db.add_all(
                    Moment(study_id=study.id, recall_session_id=rs.id, t_ms=t, text=f"m{t}")
                    for t in times
                )
            figures.mark_stale(db, rec.id, study.id)
    db.commit()
    return study


def member(db, study: Study, user) -> None:
    from ipr.models import Membership

    db.add(Membership(study_id=study.id, user_id=user.id, role="owner"))
    db.commit()


@pytest.fixture
def any_app(tmp_path, any_db_url):
    """The app on SQLite and on PostgreSQL."""
    app = make_app(tmp_path, any_db_url)
    yield app
    app.extensions["ipr_db"].dispose()


def test_dashboard_and_study_export_in_a_fixed_number_of_statements(any_app, computed) -> None:
    app = any_app
    db = app.extensions["ipr_db"].session()
    owner = auth.create_user(db, "owner@example.org", PASSWORD, "researcher")
    db.commit()
    owner_web = Web(app)
    owner_web.login(owner.email)
    small, large = build_study(db, "One", 1), build_study(db, "Fifty", 50)
    for s in (small, large):
        member(db, s, owner)
    counts: dict[str, list[int]] = {}
    for state in ("computing", "fresh", "updating"):
        if state == "fresh":  # the dashboard views queued nothing twice: one job per recording
            queued = select(func.count()).select_from(Job).where(Job.status == "queued")
            assert db.scalar(queued) == 51
            assert run_worker(app) == 51
        if state == "updating":
            for s in (small, large):
                for rid in db.scalars(select(Recording.id).where(Recording.study_id == s.id)):
                    figures.mark_stale(db, rid, s.id)
            db.commit()
        for s in (small, large):
            with statements(app) as seen:
                resp = owner_web.get(f"/studies/{s.id}/dashboard")
            assert resp.status_code == 200
            html = resp.get_data(as_text=True)
            assert html.count("<tr data-recording=") == (1 if s is small else 50)
            if state != "fresh":
                assert f'data-figures-state="{state}"' in html
            counts.setdefault(f"dashboard {state}", []).append(len(seen))
    computed.clear()
    for s in (small, large):
        with statements(app) as seen:
            resp = owner_web.get(f"/studies/{s.id}/export?format=csv")
            assert resp.is_streamed  # rows leave as they are written
            body = resp.get_data()
        assert resp.status_code == 200
        text = body.decode("utf-8-sig")
        rows = [line for line in text.split("\r\n") if line and not line.startswith("#")]
        assert len(rows) == 1 + 4 * (1 if s is small else 50)  # header + moments
        counts.setdefault("study csv", []).append(len(seen))
    assert computed == []  # no figure computed for a page or an export
    for what, (one, fifty) in counts.items():
        assert one == fifty, (what, counts)
    assert max(counts[f"dashboard {s}"][0] for s in ("computing", "fresh", "updating")) <= 10
    # 18: moments, researcher layer, per-coder layers, voice notes, recall sessions, transcripts,
    # interview audio, prompt answers (the answers and the study's prompt columns together) and
    # stored figures are each one statement for the whole study, whatever its size (follow-up
    # ratings add one only for a study that has a follow-up setting)
    assert counts["study csv"][0] <= 18, counts
    db.close()


def test_saves_while_a_researcher_opens_twenty_new_timelines(
    app, db, owner, owner_web, recall_env, computed
) -> None:
    """The participant's save costs the same few statements whatever the researcher does, and
    the researcher's twenty never-computed timelines compute nothing in the web process."""
    study = recall_env["study"]
    crowd = build_study(db, "Crowd", 20)
    member(db, crowd, owner)
    new = db.scalars(select(Recording.id).where(Recording.study_id == crowd.id)).all()
    assert len(new) == 20
    c = recall_env["invite"]("client")
    cw = participant(app, c["url"])
    per_save: list[int] = []
    for i, rid in enumerate(new):
        with statements(app) as seen:
            resp = jpost(cw, f"/recall/{c['id']}/moments", {"t_ms": 100 * i, "text": f"n{i}"})
        assert resp.status_code == 201
        per_save.append(len(seen))
        page = owner_web.get(f"/recordings/{rid}/timeline")
        assert page.status_code == 200 and "being computed" in page.get_data(as_text=True)
    assert computed == []  # not one figure function ran in the web process
    assert len(set(per_save[1:])) == 1, per_save  # the same statements for every save
    # 11 on SQLite: 8 before the figures layer, + the version bump, + the device check of the
    # one participant door, the moment limit's count, the last-seen time and the job lookup,
    # - the study read once (was twice) - no voice-note look-up for a moment made just now
    assert per_save[-1] <= 11, per_save
    queued = db.scalar(
        select(func.count()).select_from(Job).where(Job.kind == "figures", Job.status == "queued")
    )
    assert queued == 21  # one per never-computed recording, one for the participant's
    assert run_worker(app) == 21 and "agreement" in computed
    rec = recall_env["rec"]
    body = owner_web.get(f"/recordings/{rec.id}/timeline.json").json
    assert body["figures_status"]["state"] == "fresh" and body["figures"]["n_client"] == 20
    assert study.id != crowd.id


def test_study_page_in_a_fixed_number_of_statements(app, db, owner, owner_web) -> None:
    small, large = build_study(db, "One", 1), build_study(db, "Fifty", 50, recordings=2)
    counts = []
    for s in (small, large):
        member(db, s, owner)
        with statements(app) as seen:
            resp = owner_web.get(f"/studies/{s.id}")
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        n = 1 if s is small else 50
        assert html.count('name="code" value="t') == n  # one therapist code field per dyad
        assert html.count("2 sessions<span") == (0 if s is small else 50)
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 12, counts  # was 9 and 107


def test_large_lanes_send_cut_texts() -> None:
    from ipr import timeline_service as ts

    def lane(n: int) -> list[ts.LaneMoment]:
        return [ts.LaneMoment(i, 10 * i, None, (), "x" * 1000, (), {}, 1) for i in range(n)]

    small = ts.Timeline(1, 60_000, 0, ts.Lanes(therapist=lane(ts.LANE_FULL_TEXT)), None, [], {})
    big = ts.Timeline(1, 60_000, 0, ts.Lanes(client=lane(ts.LANE_FULL_TEXT + 1)), None, [], {})
    assert {len(m["text"]) for m in small.to_dict()["lanes"]["therapist"]} == {1000}
    body = big.to_dict()
    assert len(body["lanes"]["client"]) == 2001
    assert {len(m["text"]) for m in body["lanes"]["client"]} == {ts.TEXT_PREVIEW_CHARS}
    assert body["figures"] is None and body["figures_status"] is None
