"""The API against its own OpenAPI document: schemathesis drives the app from /api/v1/openapi.json.

Every operation is called with generated requests (random ids, bodies and query values) and
again with the ids of real objects, authenticated with a real researcher token. A 5xx, an
undocumented status code or content type, or a body that breaks the documented schema fails.
Examples are limited so the test fits the CI budget.
"""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ipr import studies
from ipr.models import Moment, RecallSession, Recording
from ipr.storage import Storage
from tests.conftest import api_token, make_video

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 10  # per operation and pass: every documented branch, within the CI budget


@pytest.fixture(scope="module")
def playable(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("openapi-media") / "playable.mp4", 3.0)


@pytest.fixture
def real_ids(app, db, owner, study, playable):
    """A study with a dyad, a ready recording, a researcher-led recall session and a moment."""
    dyad = studies.create_dyad(db, study, owner, "01")
    studies.add_code(db, study, owner, {"name": "Insight", "colour": "#123456"})
    key = Storage.new_key()
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Session 1", storage_key=key,
        status="ready", duration_ms=3000, width=320, height=180, fps_num=25, fps_den=1,
        has_audio=True,
    )  # fmt: skip
    db.add(rec)
    db.flush()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(key)
    derived.mkdir(parents=True)
    shutil.copy(playable, derived / "playable.mp4")
    therapist = dyad.participant("therapist")
    rs = RecallSession(
        study_id=study.id, recording_id=rec.id, participant_id=therapist.id, mode="researcher"
    )
    db.add(rs)
    db.flush()
    moment = Moment(study_id=study.id, recall_session_id=rs.id, t_ms=1000, text="a moment")
    db.add(moment)
    db.commit()
    return {
        "study_id": study.id,
        "dyad_id": dyad.id,
        "participant_id": therapist.id,
        "recording_id": rec.id,
        "rs_id": rs.id,
        "moment_id": moment.id,
    }


def _operations(schema):
    """GET and the other non-destructive operations first; DELETE last (it removes the data)."""
    ops = [result.ok() for result in schema.get_all_operations()]
    return sorted(ops, key=lambda op: (op.method.upper() == "DELETE", op.path, op.method))


def _fuzz(op, headers: dict[str, str], ids: dict[str, int]) -> None:
    """Run one operation's generated cases; `ids` replaces generated path ids with real ones."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def run(case) -> None:
        for name in list(case.path_parameters or {}):
            if name in ids:
                case.path_parameters[name] = ids[name]
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@pytest.mark.slow
def test_api_conforms_to_its_openapi_document(app, db, owner, real_ids) -> None:
    token = api_token(db, owner)
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = _operations(schema)
    assert len(operations) >= 19
    checked: list[str] = []

    for op in operations:
        for use_real_ids in (False, True):
            _fuzz(op, headers, real_ids if use_real_ids else {})
        checked.append(f"{op.method.upper()} {op.path}")

    assert "GET /recordings/{recording_id}/export.{fmt}" in checked
