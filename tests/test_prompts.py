"""The interviewer's prompt sheet (defaults, editing, languages, validation) and the answers
captured per stop: the recall page's route and the API (bounded, refused to participants and to
other studies), frozen like blind data after the reveal, and in every export (issue 16)."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest
from sqlalchemy import select

from ipr import prompts
from ipr.models import AuditEvent, Moment, PromptAnswer, Study, utcnow
from tests.conftest import Web, jpost, jsend, participant

BSR_KEYS = [
    "then", "whose_words", "why_it_mattered", "helpfulness", "impact", "feelings", "thoughts",
    "unsaid", "the_other",
]  # fmt: skip


def test_the_default_sheet_is_brief_structured_recall_fitted_to_the_study(db, study) -> None:
    sheet = prompts.sheet(study)
    assert [p["key"] for p in sheet] == BSR_KEYS
    assert prompts.is_default(study)
    assert {p["kind"] for p in sheet} == {"text", "choice", "scale"}
    (rating,) = [p for p in sheet if p["kind"] == "scale"]
    assert rating["scale"] == "hat"  # the study's HAT scale
    for p in sheet:  # every default prompt exists in both of the app's languages
        assert set(p["text"]) == {"en", "nb"} and all(p["text"].values())
    whose = next(p for p in sheet if p["key"] == "whose_words")
    assert [c["value"] for c in whose["choices"]] == ["therapist", "own", "both", "neither"]
    # a study without the HAT scale rates on its first scale; without scales, not at all
    study.scales[0].key = "intensity"
    assert next(p for p in prompts.sheet(study) if p["kind"] == "scale")["scale"] == "intensity"
    study.scales.clear()
    assert [p["key"] for p in prompts.sheet(study)] == [k for k in BSR_KEYS if k != "helpfulness"]
    db.rollback()


def test_the_interviewer_reads_the_participants_language_with_fallback(db, study, owner) -> None:
    study.languages = ["en", "nb"]
    db.commit()
    nb = prompts.for_language(study, "nb")
    assert nb[0]["question"].startswith("Gå tilbake til øyeblikket")
    hat = next(p for p in nb if p["kind"] == "scale")["scale"]
    assert (hat["key"], hat["min"], hat["max"]) == ("hat", 1, 9)
    raw = [
        {"key": "felt", "kind": "text", "text": {"en": "What did you feel?"}},
        {"key": "who", "kind": "choice", "text": {"en": "Who?", "nb": "Hvem?"},
         "choices": [{"label": {"en": "Me", "nb": "Meg"}}, {"label": {"en": "The other"}}]},
    ]  # fmt: skip
    prompts.set_sheet(db, study, raw, owner)
    nb = prompts.for_language(study, "nb")
    assert [p["question"] for p in nb] == ["What did you feel?", "Hvem?"]  # en: the fallback
    assert nb[1]["choices"] == [
        {"value": "me", "label": "Meg"},
        {"value": "the_other", "label": "The other"},
    ]
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "prompt_sheet_updated"))
    assert event.details == {"prompts": ["felt", "who"]}


def test_a_bad_sheet_lists_every_problem(db, study) -> None:
    raw = [
        {"key": "Bad Key", "kind": "text", "text": {"en": "Q"}},
        {"key": "a", "kind": "poem", "text": {"en": "Q"}},
        {"key": "a", "kind": "text", "text": {"nb": "Bare norsk"}},
        {"key": "r", "kind": "scale", "scale": "nope", "text": {"en": "Rate"}},
        {"key": "c", "kind": "choice", "text": {"en": "Pick"}, "choices": [{"label": {"en": "x"}}]},
        {"key": "long", "kind": "text", "text": {"en": "x" * 501}},
    ]
    with pytest.raises(prompts.PromptProblems) as caught:
        prompts.validate(study, raw)
    assert caught.value.problems == [
        "prompts[0]: key must be 1–40 of a–z, 0–9 and _ (starting with a letter)",
        "prompts[1]: kind must be one of text, scale, choice",
        "prompts[2]: key 'a' is used twice",
        "prompts[2]: 'nb' is not one of the study's languages",
        "prompts[2]: the question in the main language (en) is missing",
        "prompts[3]: scale must be one of the study's scales (hat)",
        "prompts[4]: a choice prompt has 2–20 choices",
        "prompts[5]: the en question must be text of at most 500 characters",
        "prompts[5]: the question in the main language (en) is missing",
    ]
    with pytest.raises(prompts.PromptProblems):
        prompts.validate(study, [{"key": f"k{i}", "kind": "text", "text": {"en": "q"}}
                                 for i in range(31)])  # fmt: skip


def test_the_study_page_edits_the_sheet(owner_web, db, study) -> None:
    page = owner_web.get(f"/studies/{study.id}").get_data(as_text=True)
    assert 'id="prompts"' in page and "Brief Structured Recall" in page
    assert "Go back into that moment as it was then" in page
    form = {
        "count": "2",
        "p0.key": "felt", "p0.kind": "text", "p0.text.en": "What did you feel  then?",
        "p1.key": "", "p1.kind": "choice", "p1.text.en": "Whose words?",
        "p1.choices.en": "Therapist\nMine\n\n",
    }  # fmt: skip
    resp = owner_web.post(f"/studies/{study.id}/prompts", form, htmx=True)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(Study, study.id).prompt_sheet == [
        {"key": "felt", "kind": "text", "text": {"en": "What did you feel then?"}},
        {"key": "whose_words", "kind": "choice", "text": {"en": "Whose words?"},
         "choices": [{"value": "therapist", "label": {"en": "Therapist"}},
                     {"value": "mine", "label": {"en": "Mine"}}]},
    ]  # fmt: skip
    # renaming a choice keeps its value, so answers already given still read
    form.update({"p1.key": "whose_words", "p1.choices.en": "The therapist\nMine"})
    owner_web.post(f"/studies/{study.id}/prompts", form, htmx=True)
    db.expire_all()
    choices = db.get(Study, study.id).prompt_sheet[1]["choices"]
    assert choices[0] == {"value": "therapist", "label": {"en": "The therapist"}}
    bad = owner_web.post(
        f"/studies/{study.id}/prompts",
        {"count": "1", "p0.key": "r", "p0.kind": "scale", "p0.scale": "", "p0.text.en": "Rate"},
        htmx=True,
    )
    assert bad.status_code == 422
    assert "prompts[0]: scale must be one of the study&#39;s scales (hat)" in bad.get_data(
        as_text=True
    )
    reset = owner_web.post(f"/studies/{study.id}/prompts", {"action": "reset"}, htmx=True)
    assert reset.status_code == 200
    db.expire_all()
    assert db.get(Study, study.id).prompt_sheet is None
    actions = db.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("prompt%")).order_by(AuditEvent.id)
    )
    assert list(actions) == ["prompt_sheet_updated", "prompt_sheet_updated", "prompt_sheet_reset"]


def test_the_api_reads_replaces_and_resets_the_sheet(recall_env, db) -> None:
    api, study = recall_env["api"], recall_env["study"]
    got = api("GET", f"/api/v1/studies/{study.id}/prompts")
    assert got.status_code == 200
    assert (got.json["is_default"], [p["key"] for p in got.json["prompts"]]) == (True, BSR_KEYS)
    one = [{"key": "felt", "kind": "text", "text": {"en": "What did you feel?"}}]
    put = api("PUT", f"/api/v1/studies/{study.id}/prompts", {"prompts": one})
    assert (put.status_code, put.json["is_default"], put.json["prompts"]) == (200, False, one)
    bad = api("PUT", f"/api/v1/studies/{study.id}/prompts", {"prompts": [{"key": "x"}]})
    assert bad.status_code == 422
    assert bad.json["error"]["problems"] == [
        "prompts[0]: kind must be one of text, scale, choice",
        "prompts[0]: text must map each language to its question",
        "prompts[0]: the question in the main language (en) is missing",
    ]
    back = api("PUT", f"/api/v1/studies/{study.id}/prompts", {"prompts": None})
    assert back.json["is_default"] is True


@pytest.fixture
def led(recall_env, app, db, owner, owner_web):
    """A researcher-led session of C01 with two moments, driven from the owner's browser."""
    rs = recall_env["invite"]("client", "researcher")
    page = owner_web.get(f"/recall/{rs['id']}")
    assert page.status_code == 200
    ids = []
    for t in (1000, 4000):
        resp = jpost(owner_web, f"/recall/{rs['id']}/moments", {"t_ms": t, "text": f"at {t}"})
        assert resp.status_code == 201, resp.json
        ids.append(resp.json["id"])
    return {**recall_env, "rs": rs, "moments": ids, "page": page.get_data(as_text=True)}


ANSWERS = {"then": "My chest went tight.", "helpfulness": 8, "whose_words": "therapist"}


def test_the_leading_researcher_sees_the_sheet_and_saves_answers(led, owner_web, db) -> None:
    assert 'id="prompt-panel"' in led["page"]
    assert "What did it do for you, mainly?" in led["page"]
    rs_id, a = led["rs"]["id"], led["moments"][0]
    url = f"/recall/{rs_id}/moments/{a}/answers"
    resp = jsend(owner_web, "PUT", url, {"answers": ANSWERS})
    assert resp.status_code == 200, resp.json
    want = {"then": "My chest went tight.", "helpfulness": "8", "whose_words": "therapist"}
    assert resp.json == {"moment_id": a, "answers": want}
    # a second save changes one answer, clears another and keeps the rest
    resp = jsend(owner_web, "PUT", url, {"answers": {"helpfulness": 6, "whose_words": None}})
    assert resp.json["answers"] == {"then": "My chest went tight.", "helpfulness": "6"}
    rows = db.scalars(select(PromptAnswer).order_by(PromptAnswer.prompt_key)).all()
    assert [(r.moment_id, r.prompt_key, r.value) for r in rows] == [
        (a, "helpfulness", "6"), (a, "then", "My chest went tight."),
    ]  # fmt: skip
    assert {r.by_id for r in rows} == {led["rec"].dyad.study.memberships[0].user_id}
    # the page shows them again after a reload
    again = owner_web.get(f"/recall/{rs_id}").get_data(as_text=True)
    data = json.loads(again.split('id="prompt-data">')[1].split("</script>")[0])
    assert data["answers"] == {str(a): {"then": "My chest went tight.", "helpfulness": "6"}}
    # the API reads the same
    got = led["api"]("GET", f"/api/v1/recall-sessions/{rs_id}/moments/{a}/answers")
    assert sorted((x["prompt_key"], x["value"]) for x in got.json["answers"]) == [
        ("helpfulness", "6"), ("then", "My chest went tight."),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        ({"then": "x" * 10_001}, "then: at most 10000 characters"),
        ({"helpfulness": 10}, "helpfulness: from 1 to 9"),
        ({"helpfulness": "very"}, "helpfulness: a whole number"),
        ({"whose_words": "nobody"}, "whose_words: one of therapist, own, both, neither"),
        ({"nope": "x"}, "nope: no such prompt on the study's sheet"),
        ({"then": 5}, "then: a text answer"),
    ],
)
def test_answers_are_checked_and_bounded(led, owner_web, db, answers, problem) -> None:
    url = f"/recall/{led['rs']['id']}/moments/{led['moments'][0]}/answers"
    resp = jsend(owner_web, "PUT", url, {"answers": answers})
    assert resp.status_code == 422
    assert resp.json["error"]["problems"] == [problem]
    assert db.scalar(select(PromptAnswer)) is None


def test_participants_and_other_studies_are_refused(led, app, db, owner_web, make_user) -> None:
    rs_id, a = led["rs"]["id"], led["moments"][0]
    # the participant of a self-guided session: their own page has no prompts, and the route
    # does not exist for them
    own = led["invite"]("therapist", "self")
    p = participant(app, own["url"])
    page = p.get(p.landing).get_data(as_text=True)
    assert 'id="prompt-panel"' not in page and "prompt-data" not in page
    m = jpost(p, f"/recall/{own['id']}/moments", {"t_ms": 500, "text": "mine"}).json["id"]
    assert jsend(p, "PUT", f"/recall/{own['id']}/moments/{m}/answers",
                 {"answers": {"then": "x"}}).status_code == 404  # fmt: skip
    assert jsend(p, "PUT", f"/recall/{rs_id}/moments/{a}/answers",
                 {"answers": {"then": "x"}}).status_code == 404  # fmt: skip
    # the owner on a self-guided session: no prompt answers there (API: 409)
    api = led["api"]
    resp = api("PUT", f"/api/v1/recall-sessions/{own['id']}/moments/{m}/answers",
               {"answers": {"then": "x"}})  # fmt: skip
    assert resp.status_code == 409
    # a researcher of another study sees nothing of this one
    make_user("stranger@example.org")
    stranger = Web(app)
    stranger.login("stranger@example.org")
    assert jsend(stranger, "PUT", f"/recall/{rs_id}/moments/{a}/answers",
                 {"answers": {"then": "x"}}).status_code == 404  # fmt: skip
    # a moment of another session is not this session's
    assert jsend(owner_web, "PUT", f"/recall/{rs_id}/moments/{m}/answers",
                 {"answers": {"then": "x"}}).status_code == 404  # fmt: skip
    assert db.scalar(select(PromptAnswer)) is None


def test_after_the_reveal_a_blind_moments_answers_change_only_as_a_correction(
    led, owner_web, db
) -> None:
    rs_id, a = led["rs"]["id"], led["moments"][0]
    url = f"/recall/{rs_id}/moments/{a}/answers"
    assert jsend(owner_web, "PUT", url, {"answers": {"then": "before"}}).status_code == 200
    assert db.get(Moment, a).corrected_at is None
    led["rec"].revealed_at = utcnow()
    db.commit()
    assert jsend(owner_web, "PUT", url, {"answers": {"then": "after"}}).status_code == 200
    db.expire_all()
    assert db.get(Moment, a).corrected_at is not None
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "moment_corrected"))
    assert event.details == {"action": "prompt answers", "participant": "C01"}


def _csv(data: bytes) -> list[dict[str, str]]:
    lines = [x for x in data.decode("utf-8-sig").splitlines() if not x.startswith("# ")]
    return list(csv.DictReader(lines))


def _export(api, study_id: int, fmt: str, **params) -> bytes:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    resp = api("GET", f"/api/v1/studies/{study_id}/export.{fmt}" + (f"?{query}" if query else ""))
    assert resp.status_code == 200, (fmt, resp.status_code)
    return resp.get_data()


def test_every_export_carries_the_answers(led, owner_web, db) -> None:
    rs_id, (a, b) = led["rs"]["id"], led["moments"]
    jsend(owner_web, "PUT", f"/recall/{rs_id}/moments/{a}/answers", {"answers": ANSWERS})
    jsend(
        owner_web, "PUT", f"/recall/{rs_id}/moments/{b}/answers", {"answers": {"impact": "insight"}}
    )
    api, study_id = led["api"], led["study"].id
    rows = _csv(_export(api, study_id, "csv"))
    header = list(rows[0])
    assert header[-9:] == [f"prompt_{k}" for k in BSR_KEYS]
    by_id = {int(r["moment_id"]): r for r in rows}
    assert (by_id[a]["prompt_then"], by_id[a]["prompt_helpfulness"],
            by_id[a]["prompt_whose_words"], by_id[a]["prompt_impact"]) == (
        "My chest went tight.", "8", "therapist", "")  # fmt: skip
    assert by_id[b]["prompt_impact"] == "insight"
    no_text = _csv(_export(api, study_id, "csv", include_text="false"))
    assert "prompt_then" not in no_text[0] and no_text[0]["prompt_helpfulness"] == "8"
    book = openpyxl.load_workbook(io.BytesIO(_export(api, study_id, "xlsx")), read_only=True)
    sheet = book.worksheets[0]
    table = list(sheet.iter_rows(values_only=True))
    head = list(table[0])
    row = next(r for r in table[1:] if r[head.index("moment_id")] == a)
    assert (row[head.index("prompt_then")], row[head.index("prompt_helpfulness")]) == (
        "My chest went tight.", 8)  # fmt: skip
    doc = json.loads(_export(api, study_id, "json"))
    assert [p["key"] for p in doc["study"]["prompts"]] == BSR_KEYS
    moments = {m["id"]: m for m in doc["study"]["dyads"][0]["recordings"][0]["moments"]}
    assert moments[a]["prompt_answers"] == {
        "helpfulness": 8, "then": "My chest went tight.", "whose_words": "therapist"}  # fmt: skip
    assert moments[b]["prompt_answers"] == {"impact": "insight"}
    rec_id = led["rec"].id
    eaf = api("GET", f"/api/v1/recordings/{rec_id}/export.eaf").get_data(as_text=True)
    assert 'TIER_ID="client prompt answers"' in eaf
    assert "<ANNOTATION_VALUE>then=My chest went tight.</ANNOTATION_VALUE>" in eaf
    assert "<ANNOTATION_VALUE>helpfulness=8</ANNOTATION_VALUE>" in eaf


def test_exports_of_a_study_without_answers_keep_their_columns(led) -> None:
    rows = _csv(_export(led["api"], led["study"].id, "csv"))
    assert not [c for c in rows[0] if c.startswith("prompt_")]
    doc = json.loads(_export(led["api"], led["study"].id, "json"))
    assert "prompts" not in doc["study"]


def test_the_timeline_detail_shows_the_answers(led, owner_web) -> None:
    rs_id, a = led["rs"]["id"], led["moments"][0]
    jsend(owner_web, "PUT", f"/recall/{rs_id}/moments/{a}/answers", {"answers": ANSWERS})
    page = owner_web.get(f"/recordings/{led['rec'].id}/timeline").get_data(as_text=True)
    payload = json.loads(page.split('id="timeline-data">')[1].split("</script>")[0])
    assert payload["prompt_answers"][str(a)][:3] == [
        {"key": "then", "question": "Go back into that moment as it was then, not as you see "
         "it now: what was going on for you?", "answer": "My chest went tight."},
        {"key": "whose_words", "question": "Whose words here mattered most?",
         "answer": "The therapist's"},
        {"key": "helpfulness", "question": "How helpful or hindering was it?",
         "answer": "8 (Greatly helpful)"},
    ]  # fmt: skip


def test_the_distress_control_is_on_every_participant_page_in_their_language(
    recall_env, app, db
) -> None:
    study = recall_env["study"]
    study.languages = ["en", "nb"]
    client = recall_env["dyad"].participant("client")
    client.language = "nb"
    db.commit()
    invited = recall_env["invite"]("client", "self")
    p = participant(app, invited["url"])
    page = p.get(p.landing).get_data(as_text=True)
    assert 'id="distress-btn"' in page
    assert "Takk for at du sa ifra." in page  # the support text, ready before any network call
    assert "Jeg må stoppe / dette er vondt" in page


def test_two_first_saves_of_one_prompt_at_once_keep_the_later(led, app, db, owner) -> None:
    """Two tabs (or a quick double change) add the same prompt's first answer at once: the
    unique (moment, prompt) row refuses the second insert, which is then applied as an update."""
    from sqlalchemy import event

    from ipr.models import RecallSession

    a = led["moments"][0]
    rs, moment = db.get(RecallSession, led["rs"]["id"]), db.get(Moment, a)
    fired: list[bool] = []

    def other_tab_first(session, _ctx, _instances) -> None:
        if fired:
            return
        fired.append(True)
        with app.extensions["ipr_db"].session() as other:
            other.add(PromptAnswer(study_id=rs.study_id, moment_id=a, prompt_key="then",
                                   value="from the other tab", by_id=owner.id))  # fmt: skip
            other.commit()

    event.listen(db, "before_flush", other_tab_first)
    saved = prompts.save_answers(db, rs, moment, {"then": "from this tab"}, owner)
    event.remove(db, "before_flush", other_tab_first)
    assert fired == [True]
    assert saved == {"then": "from this tab"}
    rows = db.scalars(select(PromptAnswer).where(PromptAnswer.moment_id == a)).all()
    assert [(r.prompt_key, r.value) for r in rows] == [("then", "from this tab")]
