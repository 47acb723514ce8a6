"""The API against its own OpenAPI document: schemathesis drives the app from /api/v1/openapi.json.

Every operation is called with generated requests (random ids, bodies and query values) and
again with the ids of real objects, authenticated with a real researcher token. A 5xx, an
undocumented status code or content type, or a body that breaks the documented schema fails.
Examples are limited so the test fits the CI budget.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import api_token

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 10  # per operation and pass: every documented branch, within the CI budget


@pytest.fixture
def real_ids(api_objects):
    """The ids of one object of each kind (tests/conftest.py)."""
    rs = api_objects["rs"]
    return {
        "study_id": api_objects["study"].id,
        "dyad_id": api_objects["dyad"].id,
        "participant_id": rs.participant_id,
        "recording_id": api_objects["rec"].id,
        "rs_id": rs.id,
        "moment_id": api_objects["moment"].id,
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
