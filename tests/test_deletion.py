"""Deleting a participant's data or a dyad removes every derived file and row."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from ipr import figures
from ipr.models import (
    AuditEvent,
    Clip,
    Dyad,
    Moment,
    MomentRevision,
    Participant,
    RecallSession,
    Recording,
    VoiceNote,
)
from ipr.storage import Storage
from tests.conftest import jpost, participant


def _with_voice(app, recall_env, role: str) -> tuple[int, int]:
    created = recall_env["invite"](role)
    web = participant(app, created["url"])
    base = f"/recall/{created['id']}/moments"
    mid = jpost(web, base, {"t_ms": 100, "text": f"{role} says"}).json["id"]
    resp = web.client.post(f"{base}/{mid}/voice", headers={"X-CSRFToken": web.csrf},
                           data={"audio": (io.BytesIO(b"\x1aE\xdf\xa3voice"), "v.webm",
                                           "audio/webm")})  # fmt: skip
    assert resp.status_code == 201
    return created["id"], mid


def count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model))


def test_erase_participant_data(app, db, recall_env, owner_web) -> None:
    _, t_moment = _with_voice(app, recall_env, "therapist")
    c_rs, c_moment = _with_voice(app, recall_env, "client")
    storage = Storage(app.config["RECORDINGS_DIR"])
    voice_dir = storage.voice_dir(recall_env["rec"].storage_key)
    assert len(list(voice_dir.iterdir())) == 2
    assert figures.run_queued(app.extensions["ipr_db"], dict(app.config)) == 1
    drawn = storage.timeline_dir(recall_env["rec"].storage_key)
    assert len(list(drawn.glob("timeline-*.png"))) == 1  # the worker drew both lanes
    client = recall_env["dyad"].participant("client")
    resp = owner_web.post(f"/participants/{client.id}/erase")
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(RecallSession, c_rs) is None and db.get(Moment, c_moment) is None
    assert db.scalars(select(MomentRevision.moment_id)).all() == [t_moment]
    assert db.scalars(select(VoiceNote.moment_id)).all() == [t_moment]
    assert len(list(voice_dir.iterdir())) == 1  # the therapist's note stays
    assert not drawn.exists()  # the picture with the client's moments went at once
    assert figures.run_queued(app.extensions["ipr_db"], dict(app.config)) == 1  # figures anew
    assert len(list(drawn.glob("timeline-*.png"))) == 1
    assert db.get(Participant, client.id).code == "C01"  # the pseudonym stays
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "participant_data_erased"))
    assert event.details == {"code": "C01", "recall_sessions": 1}


def test_delete_dyad_removes_everything(app, db, recall_env, owner_web) -> None:
    _with_voice(app, recall_env, "therapist")
    folder = Storage(app.config["RECORDINGS_DIR"]).recording_dir(recall_env["rec"].storage_key)
    assert folder.exists()
    dyad_id = recall_env["dyad"].id
    resp = owner_web.post(f"/dyads/{dyad_id}/delete", htmx=True)
    assert resp.status_code == 204
    db.expire_all()
    assert db.get(Dyad, dyad_id) is None
    for model in (Participant, Recording, Clip, RecallSession, Moment, MomentRevision, VoiceNote):
        assert count(db, model) == 0, model.__name__
    assert not folder.exists()


def test_delete_dyad_through_the_api(app, db, recall_env) -> None:
    dyad_id = recall_env["dyad"].id
    assert recall_env["api"]("DELETE", f"/api/v1/dyads/{dyad_id}").status_code == 204
    assert recall_env["api"]("GET", f"/api/v1/dyads/{dyad_id}").status_code == 404
