"""The follow-up pass: the study setting, scheduling, the door, saving, figures and exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

from sqlalchemy import func, select

from ipr import figures, followup
from ipr.exports.json_ import schema
from ipr.models import (
    AuditEvent,
    FollowUp,
    FollowUpRating,
    RecallSession,
    Recording,
    Study,
    utcnow,
)
from tests.conftest import PASSWORD, Web, jpost, jsend, participant
from tests.exports.test_csv_json import _validate


def _enable(owner_web, study, *, days: int = 30, scales: list[str] | None = None) -> None:
    form = {"enabled": "on", "delay_days": str(days), "instructions_en": "Look again, calmly."}
    if scales is not None:
        form["scales"] = scales
    resp = owner_web.post(f"/studies/{study.id}/followup", form)
    assert resp.status_code == 302, resp.get_data(as_text=True)


def _intensity(db, study) -> None:
    from ipr.models import RatingScale

    db.add(RatingScale(study_id=study.id, key="intensity", name="How strongly?", min_value=1,
                       max_value=5, labels={}, position=1))  # fmt: skip
    db.commit()


def _finished_pair(app, db, recall_env):
    """Therapist and client each mark moments and finish; returns their sessions and browsers."""
    t, c = recall_env["invite"]("therapist"), recall_env["invite"]("client")
    tw, cw = participant(app, t["url"]), participant(app, c["url"])
    mine = [
        jpost(cw, f"/recall/{c['id']}/moments", body).json
        for body in (
            {"t_ms": 1500, "text": "C first", "ratings": {"hat": 7}},
            {"t_ms": 4200, "end_ms": 5000, "text": "C second", "ratings": {"hat": 3}},
        )
    ]
    theirs = jpost(tw, f"/recall/{t['id']}/moments", {"t_ms": 1400, "text": "T only"}).json
    for web, rs in ((tw, t), (cw, c)):
        assert jpost(web, f"/recall/{rs['id']}/finish", {}).json == {"status": "submitted"}
    return {"t": t, "c": c, "tw": tw, "cw": cw, "mine": mine, "theirs": theirs}


def _open(owner_web, rs_id: int) -> None:
    resp = owner_web.post(f"/recall-sessions/{rs_id}/followup/open")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("#followup")


def _put(web: Web, rs_id: int, moment_id: int, body: object):
    return jsend(web, "PUT", f"/recall/{rs_id}/followup/moments/{moment_id}", body)


# --- the setting ------------------------------------------------------------------------------


def test_study_setting_is_validated_and_stored(owner_web, db, study) -> None:
    _intensity(db, study)
    _enable(owner_web, study, days=28, scales=["hat"])
    db.expire_all()
    assert db.get(Study, study.id).followup == {
        "enabled": True,
        "delay_days": 28,
        "scales": ["hat"],
        "instructions": {"en": "Look again, calmly."},
    }
    # every scale ticked is stored as "every scale" (a scale added later joins in)
    _enable(owner_web, study, days=30, scales=["hat", "intensity"])
    db.expire_all()
    assert db.get(Study, study.id).followup["scales"] is None
    bad = owner_web.post(f"/studies/{study.id}/followup", {"enabled": "on", "delay_days": "-1"})
    assert bad.status_code == 422 and "The delay is from 0 to 730 days." in bad.get_data(True)
    bad = owner_web.post(
        f"/studies/{study.id}/followup", {"enabled": "on", "delay_days": "731"}, htmx=True
    )
    assert bad.status_code == 422 and "The delay is from 0 to 730 days." in bad.get_data(True)
    bad = owner_web.post(
        f"/studies/{study.id}/followup", {"delay_days": "5", "scales": ["nope"]}, htmx=True
    )
    assert bad.status_code == 422 and "Unknown rating scale: nope." in bad.get_data(True)
    db.expire_all()
    assert db.get(Study, study.id).followup["delay_days"] == 30  # refusals changed nothing
    page = owner_web.get(f"/studies/{study.id}").get_data(as_text=True)
    assert 'id="followup-h"' in page and 'name="delay_days"' in page


# --- scheduling -------------------------------------------------------------------------------


def test_finishing_schedules_the_followup_exactly_delay_days_later(
    app, db, owner_web, recall_env
) -> None:
    _enable(owner_web, recall_env["study"], days=30)
    w = _finished_pair(app, db, recall_env)
    rs = db.get(RecallSession, w["c"]["id"])
    fu = db.scalar(select(FollowUp).where(FollowUp.recall_session_id == rs.id))
    assert fu.due_at == rs.submitted_at.replace(microsecond=0) + dt.timedelta(days=30)
    assert (fu.opened_at, fu.done_at) == (None, None)
    assert followup.state(fu) == "scheduled"
    assert followup.state(fu, now=fu.due_at) == "due"
    assert followup.state(fu, now=fu.due_at - dt.timedelta(seconds=1)) == "scheduled"
    # reopening and finishing again keeps the first date
    first = fu.due_at
    owner_web.post(f"/recall-sessions/{rs.id}/reopen")
    assert jpost(w["cw"], f"/recall/{rs.id}/finish", {}).json == {"status": "submitted"}
    db.expire_all()
    assert db.scalar(select(func.count(FollowUp.id))) == 2  # one per participant
    assert db.get(FollowUp, fu.id).due_at == first
    # the dyad page says when
    page = owner_web.get(f"/dyads/{recall_env['dyad'].id}").get_data(as_text=True)
    assert f"Due {first.strftime('%Y-%m-%d %H:%M')} UTC" in page


def test_no_followup_without_the_setting(app, db, recall_env, owner_web) -> None:
    w = _finished_pair(app, db, recall_env)
    assert db.scalar(select(func.count(FollowUp.id))) == 0
    resp = owner_web.post(f"/recall-sessions/{w['c']['id']}/followup/open")
    assert resp.status_code == 303 and "followup_error=" in resp.headers["Location"]
    assert db.scalar(select(func.count(FollowUp.id))) == 0


def test_open_early_and_reschedule_are_audited(app, db, owner_web, recall_env) -> None:
    _enable(owner_web, recall_env["study"], days=30)
    w = _finished_pair(app, db, recall_env)
    rs_id = w["c"]["id"]
    resp = owner_web.post(f"/recall-sessions/{rs_id}/followup/reschedule", {"due_on": "2031-02-03"})
    assert resp.status_code == 303
    db.expire_all()
    fu = db.scalar(select(FollowUp).where(FollowUp.recall_session_id == rs_id))
    assert fu.due_at == dt.datetime(2031, 2, 3, 0, 0)
    bad = owner_web.post(f"/recall-sessions/{rs_id}/followup/reschedule", {"due_on": "soon"})
    assert "followup_error=Choose+a+date" in bad.headers["Location"]
    before = utcnow().replace(microsecond=0)
    _open(owner_web, rs_id)
    db.expire_all()
    fu = db.get(FollowUp, fu.id)
    assert before <= fu.due_at <= utcnow() and followup.state(fu) == "due"
    actions = db.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.like("followup_%"))
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "followup_settings_updated",
        "followup_scheduled",
        "followup_scheduled",
        "followup_rescheduled",
        "followup_opened_early",
    ]


# --- the door ---------------------------------------------------------------------------------


def test_the_link_leads_to_the_followup_once_due_with_own_blind_moments_only(
    app, db, owner_web, recall_env
) -> None:
    _enable(owner_web, recall_env["study"], days=30)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    # not due yet: the link leads to the recall page, and the follow-up says it is not open
    token = _new_link(app, db, owner_web, c["id"])
    early = participant(app, f"/r/{token}")
    assert early.landing == f"/recall/{c['id']}"
    closed = early.get(f"/recall/{c['id']}/followup")
    assert closed.status_code == 200 and "Your follow-up is not open yet" in closed.get_data(True)
    assert _put(early, c["id"], w["mine"][0]["id"], {"ratings": {"hat": 5}}).status_code == 409
    _open(owner_web, c["id"])
    cw = participant(app, f"/r/{token}")
    assert cw.landing == f"/recall/{c['id']}/followup"
    page = cw.get(cw.landing).get_data(as_text=True)
    assert "Look again, calmly." in page
    data = json.loads(page.split('id="followup-data">')[1].split("</script>")[0])
    assert [
        (m["id"], m["text"], m["clip_start_ms"], m["clip_end_ms"]) for m in data["moments"]
    ] == [
        (w["mine"][0]["id"], "C first", 0, 6000),
        (w["mine"][1]["id"], "C second", 0, 6000),
    ]
    assert "T only" not in page  # never the other participant's moments
    db.expire_all()
    fu = db.scalar(select(FollowUp).where(FollowUp.recall_session_id == c["id"]))
    assert fu.opened_at is not None and followup.state(fu) == "opened"


def test_the_followup_page_has_the_distress_button_and_it_flags_the_session(
    app, db, owner_web, recall_env
) -> None:
    """Seeing the moments again can hurt as much as the first time: the follow-up page offers
    *I need to stop* like the recall page, with the support text rendered in, and it works."""
    from ipr import interview

    _enable(owner_web, recall_env["study"], days=0)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    cw = participant(app, f"/r/{_new_link(app, db, owner_web, c['id'])}")
    assert cw.landing == f"/recall/{c['id']}/followup"
    page = cw.get(cw.landing).get_data(as_text=True)
    header = page.split('<header class="recall-top">')[1].split("</header>")[0]
    assert 'id="distress-btn"' in header and "I need to stop / this is distressing" in header
    assert f'data-url="/recall/{c["id"]}/distress"' in header
    assert interview.DEFAULT_SUPPORT["en"] in header  # shown even if the network is gone
    assert 'id="stop-form"' in header  # *End for now* in the dialog ends the visit like Stop
    resp = jpost(cw, f"/recall/{c['id']}/distress", {})
    assert resp.status_code == 200 and resp.json["support_text"] == interview.DEFAULT_SUPPORT["en"]
    flagged = db.scalars(
        select(AuditEvent.details).where(AuditEvent.action == "distress_flagged")
    ).all()
    assert [d["participant"] for d in flagged] == [db.get(RecallSession, c["id"]).participant.code]


def _new_link(app, db, owner_web, rs_id: int, pin: str | None = None) -> str:
    """A fresh link for a recall session (the researcher's *New link*), returned as its token."""
    from ipr import recall
    from ipr.models import User

    rs = db.get(RecallSession, rs_id)
    user = db.scalar(select(User).where(User.email == "owner@example.org"))
    token = recall.issue_link(db, rs, user, days=14, pin=pin)
    db.commit()
    return token


def test_the_door_refuses_others_and_ended_links(app, db, owner_web, recall_env, make_user) -> None:
    _enable(owner_web, recall_env["study"], days=0)  # due the moment they finish
    w = _finished_pair(app, db, recall_env)
    c, t = w["c"], w["t"]
    ctoken, ttoken = (_new_link(app, db, owner_web, x["id"]) for x in (c, t))
    cw, tw = participant(app, f"/r/{ctoken}"), participant(app, f"/r/{ttoken}")
    assert cw.landing == f"/recall/{c['id']}/followup"
    cw.get(cw.landing)
    tw.get(tw.landing)
    mine = w["mine"][0]["id"]
    # the other participant's device: 404 for the page, the ratings and a save
    assert tw.get(f"/recall/{c['id']}/followup").status_code == 404
    assert tw.get(f"/recall/{c['id']}/followup/ratings").status_code == 404
    assert _put(tw, c["id"], mine, {"ratings": {"hat": 1}}).status_code == 404
    assert jpost(tw, f"/recall/{c['id']}/followup/finish", {}).status_code == 404
    # their own session, but the other's moment: 404
    assert _put(tw, t["id"], mine, {"ratings": {"hat": 1}}).status_code == 404
    # a stranger and a researcher of another study
    assert Web(app).get(f"/recall/{c['id']}/followup").status_code == 404
    make_user("other@example.org")
    stranger = Web(app)
    stranger.login("other@example.org", PASSWORD)
    assert stranger.get(f"/recall/{c['id']}/followup").status_code == 404
    assert _put(stranger, c["id"], mine, {"ratings": {"hat": 1}}).status_code == 404
    assert stranger.post(f"/recall-sessions/{c['id']}/followup/open").status_code == 404
    assert stranger.post(f"/studies/{recall_env['study'].id}/followup", {}).status_code == 404
    # the owner is not the participant: a self-guided follow-up is theirs alone
    assert owner_web.get(f"/recall/{c['id']}/followup").status_code == 404
    assert db.scalar(select(func.count(FollowUpRating.id))) == 0
    # a revoked link ends the device at once
    assert owner_web.post(f"/recall-sessions/{c['id']}/revoke").status_code in (200, 303)
    assert _put(cw, c["id"], mine, {"ratings": {"hat": 1}}).status_code == 401
    # the ended device is forgotten: the browser is now nobody (as on the recall page)
    assert cw.get(f"/recall/{c['id']}/followup").status_code == 404
    # an expired link opens nothing
    ttoken = _new_link(app, db, owner_web, t["id"])
    rs = db.get(RecallSession, t["id"])
    rs.token_expires_at = utcnow() - dt.timedelta(seconds=1)
    db.commit()
    assert Web(app).get(f"/r/{ttoken}").status_code == 401
    assert tw.get(f"/recall/{t['id']}/followup").status_code == 401
    assert db.scalar(select(func.count(FollowUpRating.id))) == 0


def test_a_pin_link_needs_its_pin_before_the_followup(app, db, owner_web, recall_env) -> None:
    _enable(owner_web, recall_env["study"], days=0)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    token = _new_link(app, db, owner_web, c["id"], pin="4711")
    web = Web(app)
    resp = web.get(f"/r/{token}")
    assert resp.headers["Location"] == f"/recall/{c['id']}/pin"
    assert web.get(f"/recall/{c['id']}/followup").status_code == 404  # no device yet
    web.get(f"/recall/{c['id']}/pin")
    assert web.post(f"/recall/{c['id']}/pin", {"pin": "0000"}).status_code == 401
    right = web.post(f"/recall/{c['id']}/pin", {"pin": "4711"})
    assert right.headers["Location"] == f"/recall/{c['id']}/followup"
    assert web.get(right.headers["Location"]).status_code == 200


# --- saving -----------------------------------------------------------------------------------


def test_saving_is_idempotent_bounded_and_survives_a_reload(app, db, owner_web, recall_env) -> None:
    study = recall_env["study"]
    _intensity(db, study)
    _enable(owner_web, study, days=0, scales=["hat"])
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    token = _new_link(app, db, owner_web, c["id"])
    cw = participant(app, f"/r/{token}")
    cw.get(cw.landing)
    first, second = (m["id"] for m in w["mine"])
    saved = _put(cw, c["id"], first, {"ratings": {"hat": 8}, "comment": "Still matters."})
    assert saved.status_code == 200
    assert {k: saved.json[k] for k in ("moment_id", "ratings", "comment", "version")} == {
        "moment_id": first,
        "ratings": {"hat": 8},
        "comment": "Still matters.",
        "version": 1,
    }
    # the same save again (a retry) changes nothing
    again = _put(cw, c["id"], first, {"ratings": {"hat": 8}, "comment": "Still matters."})
    assert again.json == saved.json
    changed = _put(cw, c["id"], first, {"ratings": {"hat": 9}, "comment": "Even more."})
    assert changed.json["version"] == 2
    # bounded: scales, range, types, length, fields
    for body, field in (
        ({"ratings": {"intensity": 3}}, "ratings"),  # not re-rated in this study
        ({"ratings": {"hat": 10}}, "ratings"),
        ({"ratings": {"hat": True}}, "ratings"),
        ({"comment": "x" * 10_001}, "comment"),
    ):
        resp = _put(cw, c["id"], second, body)
        assert resp.status_code == 422 and resp.json["error"]["field"] == field, body
    assert _put(cw, c["id"], second, {"t_ms": 1}).status_code == 422
    assert _put(cw, c["id"], second, [1, 2]).status_code == 422
    assert db.scalar(select(func.count(FollowUpRating.id))) == 1
    # a reload reads what was saved
    listed = cw.get(f"/recall/{c['id']}/followup/ratings").json
    assert listed["status"] == "opened"
    assert [
        (r["moment_id"], r["ratings"], r["comment"], r["version"]) for r in listed["ratings"]
    ] == [
        (first, {"hat": 9}, "Even more.", 2),
        (second, {}, "", 0),
    ]
    page = cw.get(f"/recall/{c['id']}/followup").get_data(as_text=True)
    data = json.loads(page.split('id="followup-data">')[1].split("</script>")[0])
    assert data["items"][0]["ratings"] == {"hat": 9}
    # *Stop for now* ends the device; the link opens the follow-up again where it was
    assert 'id="fu-stop"' in page
    assert cw.post(f"/recall/{c['id']}/stop").status_code == 200
    assert cw.get(f"/recall/{c['id']}/followup").status_code == 404
    cw = participant(app, f"/r/{token}")
    assert cw.landing == f"/recall/{c['id']}/followup"
    cw.get(cw.landing)
    assert 'name="fu-scale-hat"' in page and 'name="fu-scale-intensity"' not in page
    # done: later saves are refused, the ratings stay
    assert jpost(cw, f"/recall/{c['id']}/followup/finish", {}).json == {"status": "done"}
    late = _put(cw, c["id"], first, {"ratings": {"hat": 1}})
    assert late.status_code == 409 and late.json["error"]["code"] == "followup_done"
    # the link leads to the recall page again; the follow-up page thanks them
    assert participant(app, f"/r/{token}").landing == f"/recall/{c['id']}"
    done_page = cw.get(f"/recall/{c['id']}/followup").get_data(as_text=True)
    assert "Thank you — you have finished the follow-up" in done_page
    db.expire_all()
    row = db.scalar(select(FollowUpRating).where(FollowUpRating.moment_id == first))
    assert (row.ratings, row.comment, row.version) == ({"hat": 9}, "Even more.", 2)
    assert "Done " in owner_web.get(f"/dyads/{recall_env['dyad'].id}").get_data(as_text=True)


# --- figures and exports ----------------------------------------------------------------------


def test_followup_ratings_change_no_figure_and_are_exported_beside_the_first(
    app, db, owner_web, recall_env
) -> None:
    api, rec = recall_env["api"], recall_env["rec"]
    _enable(owner_web, recall_env["study"], days=0)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    api("GET", f"/api/v1/recordings/{rec.id}/timeline")
    figures.run_queued(app.extensions["ipr_db"], dict(app.config))
    before = api("GET", f"/api/v1/recordings/{rec.id}/timeline").json
    assert before["figures_status"]["state"] == "fresh"
    db.expire_all()
    version = db.get(Recording, rec.id).figures_version
    assert version == 3  # three blind moments saved
    cw = participant(app, f"/r/{_new_link(app, db, owner_web, c['id'])}")
    cw.get(cw.landing)
    first = w["mine"][0]["id"]
    assert (
        _put(cw, c["id"], first, {"ratings": {"hat": 2}, "comment": "Less now."}).status_code == 200
    )
    assert jpost(cw, f"/recall/{c['id']}/followup/finish", {}).status_code == 200
    db.expire_all()
    assert db.get(Recording, rec.id).figures_version == version
    assert figures.run_queued(app.extensions["ipr_db"], dict(app.config)) == 0
    after = api("GET", f"/api/v1/recordings/{rec.id}/timeline").json
    assert after["figures"] == before["figures"] and after["pairs"] == before["pairs"]
    assert after["lanes"] == before["lanes"]
    at = db.get(FollowUpRating, 1).updated_at.isoformat(timespec="seconds") + "Z"
    # CSV: the follow-up columns beside the first rating, one row per moment
    text = api("GET", f"/api/v1/recordings/{rec.id}/export.csv").data.decode("utf-8-sig")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    rows = list(csv.DictReader(io.StringIO(body)))
    got = [
        (r["participant"], r["text"], r["rating_hat"], r["followup_rating_hat"],
         r["followup_comment"], r["followup_at"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        ("T01", "T only", "", "", "", ""),
        ("C01", "C first", "7", "2", "Less now.", at),
        ("C01", "C second", "3", "", "", ""),
    ]
    header = body.splitlines()[0].split(",")
    assert header[-3:] == ["followup_rating_hat", "followup_comment", "followup_at"]
    assert "# parameters.followup.phase: followup" in text
    assert "# parameters.followup.in_figures: false" in text
    # JSON: a "followup" object on each moment, valid against the schema
    doc = json.loads(api("GET", f"/api/v1/recordings/{rec.id}/export.json").data)
    moments = doc["study"]["dyads"][0]["recordings"][0]["moments"]
    assert [m["followup"] for m in moments] == [
        None,
        {"phase": "followup", "ratings": {"hat": 2}, "comment": "Less now.", "at": at},
        None,
    ]
    assert doc["provenance"]["parameters"]["followup"] == {
        "phase": "followup",
        "enabled": True,
        "delay_days": 0,
        "scales": ["hat"],
        "of": "each participant's own blind moments",
        "in_figures": False,
    }
    assert _validate(doc, schema(), schema()) == []
    # each lane's follow-up state at the export's time, in the provenance of every format
    recall = doc["provenance"]["recordings"][0]["recall"]
    assert (recall["client"]["followup"], recall["therapist"]["followup"]) == ("done", "due")
    assert '"followup": "done"' in text  # the CSV's provenance lines say the same
    # EAF and TextGrid: the re-rating beside its moment; the Methods paragraph says n of N
    eaf = api("GET", f"/api/v1/recordings/{rec.id}/export.eaf").data.decode()
    assert f'ANNOTATION_ID="m{first}f1" ANNOTATION_REF="m{first}"' in eaf
    assert "<ANNOTATION_VALUE>followup_comment=Less now.</ANNOTATION_VALUE>" in eaf
    grid = api("GET", f"/api/v1/recordings/{rec.id}/export.textgrid").data.decode()
    assert 'name = "client follow-up points"' in grid
    assert 'mark = "followup_rating_hat=2; followup_comment=Less now."' in grid
    methods = api("GET", f"/api/v1/recordings/{rec.id}/export.methods").data.decode()
    assert (
        "In a follow-up pass scheduled as soon as they had finished their recall, participants "
        "rated their own blind-phase moments again on How helpful or hindering was this "
        "moment? (Helpful Aspects of Therapy) (1-9), without seeing their first rating, and "
        "could add a comment; 1 of 2 participants completed it."
    ) in methods
    no_text = json.loads(
        api("GET", f"/api/v1/recordings/{rec.id}/export.json?include_text=false").data
    )
    assert (
        no_text["study"]["dyads"][0]["recordings"][0]["moments"][1]["followup"]["comment"] is None
    )
    # XLSX: the same columns in the moments sheet
    xlsx = zipfile.ZipFile(io.BytesIO(api("GET", f"/api/v1/recordings/{rec.id}/export.xlsx").data))
    sheet = xlsx.read("xl/worksheets/sheet1.xml").decode()
    assert "followup_rating_hat" in sheet and "Less now." in sheet


def test_a_study_without_followup_exports_no_followup_columns(app, db, recall_env) -> None:
    api, rec = recall_env["api"], recall_env["rec"]
    _finished_pair(app, db, recall_env)
    text = api("GET", f"/api/v1/recordings/{rec.id}/export.csv").data.decode("utf-8-sig")
    assert "followup" not in text
    doc = json.loads(api("GET", f"/api/v1/recordings/{rec.id}/export.json").data)
    assert "followup" not in doc["study"]["dyads"][0]["recordings"][0]["moments"][0]
    assert "followup" not in doc["provenance"]["parameters"]


def test_withdrawal_erases_followup_ratings(app, db, owner_web, recall_env) -> None:
    _enable(owner_web, recall_env["study"], days=0)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    cw = participant(app, f"/r/{_new_link(app, db, owner_web, c['id'])}")
    cw.get(cw.landing)
    assert _put(cw, c["id"], w["mine"][0]["id"], {"ratings": {"hat": 4}}).status_code == 200
    client_id = recall_env["dyad"].participant("client").id
    resp = recall_env["api"]("POST", f"/api/v1/participants/{client_id}/withdraw")
    assert resp.status_code == 200, resp.json
    assert db.scalar(select(func.count(FollowUpRating.id))) == 0
    assert db.scalar(select(func.count(FollowUp.id))) == 1  # the therapist's stays


def test_a_norwegian_participant_reads_the_followup_in_norwegian(
    app, db, owner_web, recall_env
) -> None:
    study = recall_env["study"]
    study.languages = ["en", "nb"]
    recall_env["dyad"].participant("client").language = "nb"
    db.commit()
    _enable(owner_web, study, days=0)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    cw = participant(app, f"/r/{_new_link(app, db, owner_web, c['id'])}")
    page = cw.get(cw.landing).get_data(as_text=True)
    assert '<html lang="nb"' in page
    assert "Et nytt blikk på øyeblikkene dine" in page and "Du markerte 2 øyeblikk." in page
    # no Norwegian instructions written: the app's own words in Norwegian, not the English text
    assert "For en tid siden markerte du" in page and "Look again, calmly." not in page
    refused = _put(cw, c["id"], w["mine"][0]["id"], {"ratings": {"hat": 12}})
    assert refused.json["error"]["message"] == "En vurdering på 'hat' går fra 1 til 9."


def test_the_followup_email_sends_a_fresh_link_that_leads_to_the_followup(
    app, db, owner_web, recall_env
) -> None:
    from ipr import jobs
    from ipr.models import Job
    from tests.smtp_inbox import smtp_server

    _enable(owner_web, recall_env["study"], days=30)
    w = _finished_pair(app, db, recall_env)
    c = w["c"]
    with smtp_server() as smtp:
        app.config.update(SMTP_URL=smtp.url, SMTP_FROM="ipr@clinic.example.org")
        url = f"/recall-sessions/{c['id']}/followup/email"
        early = owner_web.post(url, {"email": "client@example.org"})
        assert "followup_error=The+follow-up+is+not+due+yet" in early.headers["Location"]
        assert db.scalar(select(func.count(Job.id)).where(Job.kind == "send_invitation")) == 0
        _open(owner_web, c["id"])
        dyad_page = owner_web.get(f"/dyads/{recall_env['dyad'].id}").get_data(as_text=True)
        assert "E-mail the follow-up link" in dyad_page
        assert owner_web.post(url, {"email": "client@example.org"}).status_code == 303
        job = db.scalar(select(Job).where(Job.kind == "send_invitation"))
        assert job.params["kind"] == "followup"
        assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
        (msg,) = smtp.messages
        assert smtp.envelopes[0] == ("ipr@clinic.example.org", ["client@example.org"])
        assert msg["Subject"] == followup.MESSAGES["en"][0]
        body = msg.get_content()
        link = next(line for line in body.splitlines() if "/r/" in line).strip()
    app.config.update(SMTP_URL="")
    # the old link stopped working; the new one leads to the follow-up
    assert Web(app).get(f"/r/{c['token']}").status_code == 401
    web = participant(app, link)
    assert web.landing == f"/recall/{c['id']}/followup"
    db.expire_all()
    assert "to" not in db.get(Job, job.id).params  # the address is not kept


def test_a_researcher_led_followup_is_run_by_the_researcher(
    app, db, owner_web, recall_env, make_user
) -> None:
    _enable(owner_web, recall_env["study"], days=0)
    led = recall_env["invite"]("client", mode="researcher")
    url = f"/recall/{led['id']}"
    made = jpost(owner_web, f"{url}/moments", {"t_ms": 2000, "text": "Said aloud"})
    assert made.status_code == 201
    assert jpost(owner_web, f"{url}/finish", {}).json == {"status": "submitted"}
    page = owner_web.get(f"{url}/followup").get_data(as_text=True)
    assert "Researcher-led interview" in page and "Said aloud" in page
    assert 'id="fu-stop"' not in page  # the researcher leaves by the dyad page
    assert 'id="distress-btn"' in page and 'data-where="followup"' in page
    resp = _put(owner_web, led["id"], made.json["id"], {"ratings": {"hat": 6}})
    assert resp.status_code == 200 and resp.json["ratings"] == {"hat": 6}
    dyad_page = owner_web.get(f"/dyads/{recall_env['dyad'].id}").get_data(as_text=True)
    assert f'href="/recall/{led["id"]}/followup"' in dyad_page
    # a viewer of the study may not run it
    viewer = make_user("viewer@example.org")
    from ipr import studies
    from ipr.models import User

    owner = db.scalar(select(User).where(User.email == "owner@example.org"))
    studies.add_member(db, recall_env["study"], owner, viewer.email, "viewer")
    db.commit()
    vw = Web(app)
    vw.login(viewer.email, PASSWORD)
    assert vw.get(f"{url}/followup").status_code == 403
    assert vw.post(f"/recall-sessions/{led['id']}/followup/open").status_code == 403


# --- distress on the follow-up page -------------------------------------------------------------


def test_distress_on_the_followup_page_pauses_and_tells_the_owner_which_moment(
    app, db, owner_web, recall_env
) -> None:
    from ipr import interview, jobs
    from ipr.models import Job
    from tests.smtp_inbox import smtp_server

    _enable(owner_web, recall_env["study"], days=0)
    w = _finished_pair(app, db, recall_env)
    c, second = w["c"], w["mine"][1]
    cw = participant(app, f"/r/{_new_link(app, db, owner_web, c['id'])}")
    page = cw.get(cw.landing).get_data(as_text=True)
    # the same control as on the recall page, its support text ready before any network call
    assert 'id="distress-btn"' in page and 'data-where="followup"' in page
    assert f'data-url="/recall/{c["id"]}/distress"' in page
    assert interview.DEFAULT_SUPPORT["en"] in page
    assert 'id="stop-form"' in page  # what *End for now* submits
    with smtp_server() as smtp:
        app.config.update(SMTP_URL=smtp.url, SMTP_FROM="ipr@clinic.example.org")
        body = {"where": "followup", "moment_id": second["id"]}
        resp = jpost(cw, f"/recall/{c['id']}/distress", body)
        assert resp.status_code == 200, resp.json
        assert (resp.json["paused"], resp.json["support_text"], resp.json["owner_notified"]) == (
            True, interview.DEFAULT_SUPPORT["en"], True,
        )  # fmt: skip
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "distress_flagged"))
        assert (event.actor, event.object_type, event.object_id) == (
            "participant C01", "recall_session", str(c["id"]),
        )  # fmt: skip
        assert event.details == {
            "participant": "C01", "where": "followup", "moment_id": second["id"],
            "position_ms": 4200,
        }  # fmt: skip
        job = db.get(Job, resp.json["email_job_id"])
        assert job.kind == "distress_email"
        assert {k: job.params[k] for k in ("recall_session_id", "where", "position_ms")} == {
            "recall_session_id": c["id"], "where": "followup", "position_ms": 4200,
        }  # fmt: skip
        assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
        (msg,) = smtp.messages
        assert smtp.envelopes[0] == ("ipr@clinic.example.org", ["owner@example.org"])
        assert msg["Subject"] == "Distress flagged by participant C01 during the follow-up"
        assert msg.get_content().replace("\r\n", "\n") == (
            "Participant C01 flagged 'I need to stop / this is distressing' during the "
            f"follow-up of recall session {c['id']} of the study 'Recall study' (recording "
            "'Session 3'), while looking again at their moment at 00:00:04.200. Their "
            "follow-up page is paused.\n\nPlease follow the study's safety procedure.\n"
        )
        assert "C second" not in msg.get_content()  # codes and times, never their words
        # another participant's moment is not named, and the flag is still taken (never
        # refused over its body); within ten minutes it e-mails nobody again
        theirs = {"where": "followup", "moment_id": w["theirs"]["id"]}
        again = jpost(cw, f"/recall/{c['id']}/distress", theirs)
        assert again.status_code == 200 and again.json["email_job_id"] is None
        odd = jpost(cw, f"/recall/{c['id']}/distress", {"where": "elsewhere", "moment_id": "x"})
        assert odd.status_code == 200
    app.config.update(SMTP_URL="")
    details = db.scalars(
        select(AuditEvent.details)
        .where(AuditEvent.action == "distress_flagged")
        .order_by(AuditEvent.id)
    ).all()
    assert details[1:] == [
        {"participant": "C01", "where": "followup", "moment_id": None, "position_ms": None},
        {"participant": "C01", "where": "recall", "position_ms": 0},
    ]
    db.expire_all()
    assert db.get(RecallSession, c["id"]).paused_at is not None
    # the other participant's device cannot flag on this session
    assert jpost(w["tw"], f"/recall/{c['id']}/distress", {"where": "followup"}).status_code == 404
