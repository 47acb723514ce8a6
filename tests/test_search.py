"""Search across a study's moments and interview transcripts (issue 16): what is found, and
that nothing of another study ever is. Runs on SQLite and PostgreSQL (the LIKE must agree)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ipr import auth, search, studies
from ipr.errors import ValidationError
from ipr.models import (
    Code,
    InterviewUtterance,
    Membership,
    Moment,
    Recording,
    ResearcherAnnotation,
    Study,
)
from tests.conftest import PASSWORD, Web, api_token, make_app, participant, ready_recording


@pytest.fixture
def app(tmp_path, any_db_url):
    app = make_app(tmp_path, any_db_url)
    yield app
    app.extensions["ipr_db"].dispose()


def _recording(db, study, code: str) -> Recording:
    return ready_recording(db, studies.create_dyad(db, study, study_owner(db, study), code))


def study_owner(db, study):
    from ipr.models import User

    return db.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.study_id == study.id, Membership.role == "owner")
    )


@pytest.fixture
def world(app, db, owner, study, make_user):
    """Study A (the owner's) and study B (a stranger's), both with the word "stuck"."""
    client = app.test_client()

    def api(method, url, token, **kw):
        return client.open(url, method=method, headers={"Authorization": f"Bearer {token}"}, **kw)

    rupture = Code(study_id=study.id, name="rupture", description="A strain in the alliance")
    calm = Code(study_id=study.id, name="calm")
    db.add_all([rupture, calm])
    db.commit()
    token = api_token(db, owner)
    rec = _recording(db, study, "01")
    dyad = rec.dyad

    def session(role: str, mode: str = "researcher") -> dict:
        body = {"participant_id": dyad.participant(role).id, "mode": mode}
        resp = api("POST", f"/api/v1/recordings/{rec.id}/recall-sessions", token, json=body)
        assert resp.status_code == 201, resp.json
        return resp.json

    def moment(rs: dict, t_ms: int, text: str = "", codes=()) -> int:
        resp = api("POST", f"/api/v1/recall-sessions/{rs['id']}/moments", rs.get("token", token),
                   json={"t_ms": t_ms, "text": text, "codes": list(codes)})  # fmt: skip
        assert resp.status_code == 201, resp.json
        return resp.json["id"]

    client_rs, therapist_rs = session("client"), session("therapist", "self")
    m = {
        "stuck": moment(client_rs, 5000, "I felt stuck there"),
        "coded": moment(client_rs, 7000, "we drifted apart", codes=[rupture.id]),
        "said": moment(client_rs, 20_000, ""),
        "noted": moment(therapist_rs, 30_000, "quiet"),
        "gone": moment(client_rs, 40_000, "stuck again, deleted later"),
        "percent": moment(client_rs, 50_000, "100% sure"),
        "coded2": moment(client_rs, 55_000, "later", codes=[calm.id, rupture.id]),
    }
    # code ids that merely contain the rupture's id (a deleted code's) are not the rupture
    decoy = Moment(study_id=study.id, recall_session_id=client_rs["id"], t_ms=56_000,
                   text="decoy", codes=[int(f"{rupture.id}1"), int(f"1{rupture.id}")],
                   ratings={}, peaks_ms=[])  # fmt: skip
    db.add(decoy)
    resp = api("DELETE", f"/api/v1/recall-sessions/{client_rs['id']}/moments/{m['gone']}", token)
    assert resp.status_code == 204
    db.add(InterviewUtterance(study_id=study.id, recall_session_id=client_rs["id"],
                              moment_id=m["said"], start_ms=61_000, end_ms=64_000,
                              text="My chest went tight, I was STUCK"))  # fmt: skip
    db.add(InterviewUtterance(study_id=study.id, recall_session_id=client_rs["id"],
                              moment_id=None, start_ms=1000, end_ms=2000,
                              text="stuck between stops: belongs to no moment"))  # fmt: skip
    db.add(ResearcherAnnotation(study_id=study.id, moment_id=m["noted"], user_id=owner.id,
                                codes=[], note="Therapist felt stuck too"))  # fmt: skip
    db.commit()

    # study B: another researcher's, with the same word and a secret of its own
    stranger = make_user("stranger@example.org")
    b = studies.create_study(db, stranger, "Other study")
    db.commit()
    b_rec = _recording(db, b, "07")
    b_token = api_token(db, stranger)
    body = {"participant_id": b_rec.dyad.participant("client").id, "mode": "researcher"}
    b_rs = api("POST", f"/api/v1/recordings/{b_rec.id}/recall-sessions", b_token, json=body).json
    b_moment = api("POST", f"/api/v1/recall-sessions/{b_rs['id']}/moments", b_token,
                   json={"t_ms": 1000, "text": "stuck: study B secret"}).json["id"]  # fmt: skip
    db.add(InterviewUtterance(study_id=b.id, recall_session_id=b_rs["id"], moment_id=b_moment,
                              start_ms=0, end_ms=1000, text="B's stuck interview"))  # fmt: skip
    db.commit()
    return {"m": m, "a": study, "b": b, "b_moment": b_moment, "rec": rec,
            "link": therapist_rs["url"]}  # fmt: skip


def _found(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-moment-id="(\d+)"', page)]


def test_search_finds_comments_notes_codes_and_transcripts_of_this_study_only(
    app, db, owner_web, world
) -> None:
    m, a = world["m"], world["a"]
    url = f"/studies/{a.id}/search"
    page = owner_web.get(f"{url}?q=stuck")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # dyad, session and time order; the deleted moment and study B's never
    assert _found(html) == [m["stuck"], m["said"], m["noted"]]
    assert "study B secret" not in html and "B&#39;s stuck interview" not in html
    assert "B's stuck interview" not in html
    assert f'href="/recordings/{world["rec"].id}/timeline#moment-{m["stuck"]}"' in html
    assert "My chest went tight, I was STUCK" in html  # the utterance that matched, shown
    assert "belongs to no moment" not in html
    hits = {h.moment_id: h for h in search.search(db, a.id, "stuck").hits}
    assert {k: v.matched for k, v in hits.items()} == {
        m["stuck"]: {"comment"}, m["said"]: {"transcript"}, m["noted"]: {"note"},
    }  # fmt: skip
    assert hits[m["said"]].said == [(61_000, "My chest went tight, I was STUCK")]
    # a code by its name or its description; every word must occur
    assert [h.moment_id for h in search.search(db, a.id, "RUPTURE").hits] == [
        m["coded"], m["coded2"],
    ]  # fmt: skip
    assert search.search(db, a.id, "calm").hits[0].matched == {"code"}
    assert [h.moment_id for h in search.search(db, a.id, "alliance drifted").hits] == [m["coded"]]
    assert search.search(db, a.id, "alliance stuck").hits == []
    assert [h.moment_id for h in search.search(db, a.id, "chest stuck").hits] == [m["said"]]
    # LIKE's wildcards are plain characters
    assert [h.moment_id for h in search.search(db, a.id, "0%").hits] == [m["percent"]]
    assert search.search(db, a.id, "%%").hits == []
    assert search.search(db, a.id, "__").hits == []
    # the other study's owner finds only their own
    assert [h.moment_id for h in search.search(db, world["b"].id, "stuck").hits] == [
        world["b_moment"]
    ]
    # typing (htmx) swaps the results alone
    frag = owner_web.get(f"{url}?q=chest", htmx=True).get_data(as_text=True)
    assert frag.lstrip().startswith('<section id="search-results"')
    assert _found(frag) == [m["said"]]
    short = owner_web.get(f"{url}?q=a", htmx=True).get_data(as_text=True)
    assert "Type at least 2 characters." in short and _found(short) == []
    with pytest.raises(ValidationError):
        search.words("x" * 201)


def test_search_is_bounded(app, db, world, monkeypatch) -> None:
    found = search.search(db, world["a"].id, "stuck", limit=2)
    assert len(found.hits) == 2 and found.more is True
    assert search.search(db, world["a"].id, "stuck", limit=3).more is False


def test_only_members_of_the_study_can_search_it(app, db, world, make_user) -> None:
    a, b = world["a"], world["b"]
    url = f"/studies/{a.id}/search?q=stuck"
    viewer = make_user("viewer@example.org")
    db.add(Membership(study_id=a.id, user_id=viewer.id, role="viewer"))
    db.commit()
    as_viewer = Web(app)
    as_viewer.login(viewer.email)
    assert _found(as_viewer.get(url).get_data(as_text=True)) == [
        world["m"]["stuck"], world["m"]["said"], world["m"]["noted"],
    ]  # fmt: skip
    stranger = Web(app)
    stranger.login("stranger@example.org", PASSWORD)
    refused = stranger.get(url)
    assert refused.status_code == 404
    assert "I felt stuck there" not in refused.get_data(as_text=True)
    # the stranger's own study, searched with study A's id in the query: still their own only
    own = stranger.get(f"/studies/{b.id}/search?q=felt")
    assert own.status_code == 200 and _found(own.get_data(as_text=True)) == []
    anonymous = Web(app).get(url)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    admin = auth.create_user(db, "admin@example.org", PASSWORD, "admin")
    db.commit()
    as_admin = Web(app)
    as_admin.login(admin.email)
    assert as_admin.get(url).status_code == 404  # an admin is not a member
    # a participant's link gives no researcher page
    page = participant(app, world["link"])
    resp = page.get(url)
    assert resp.status_code in (302, 401, 404)
    assert "I felt stuck there" not in resp.get_data(as_text=True)
    assert db.scalar(select(Study.id).where(Study.id == a.id)) == a.id
