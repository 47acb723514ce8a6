"""Small defects from the hardening review (issue 10), each pinned by a test."""

from __future__ import annotations

import pytest

from ipr.models import Recording
from ipr.web import tus


def test_dyad_timeline_with_a_recording_without_synchrony_is_not_a_500(
    app, db, owner_web, study
) -> None:
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"})
    db.expire_all()
    dyad = study.dyads[0]
    storage = app.extensions["ipr_storage"]
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Short", storage_key=storage.new_key(),
        status="ready", duration_ms=4_000,
    )  # fmt: skip
    db.add(rec)
    db.commit()
    out = storage.derived_dir(rec.storage_key)
    out.mkdir(parents=True)
    (out / "analysis.json").write_text("{}")  # no motion curves: synchrony is an error
    resp = owner_web.get(f"/dyads/{dyad.id}/timeline")
    assert resp.status_code == 200
    assert "synchrony —" in resp.get_data(as_text=True)


def test_upload_metadata_with_non_ascii_base64_is_a_400_not_a_500(owner_web, study) -> None:
    with pytest.raises(tus.TusError, match="Upload-Metadata 'filename' is not valid base64"):
        tus.parse_metadata("filename é")  # found by tests/test_fuzz_parsers.py
    owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"})
    resp = owner_web.client.post(
        f"/dyads/{study.dyads[0].id}/uploads",
        headers={"Tus-Resumable": "1.0.0", "X-CSRFToken": owner_web.csrf,
                 "Upload-Length": "10", "Upload-Metadata": "filename é"},
    )  # fmt: skip
    assert resp.status_code == 400
    assert resp.get_data(as_text=True) == "Upload-Metadata 'filename' is not valid base64 UTF-8."
