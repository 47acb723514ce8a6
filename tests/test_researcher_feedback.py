"""Every save on the study page says so, and an error outlines the field it is about."""

from __future__ import annotations

import re

from sqlalchemy import select

from ipr.models import Dyad


def _dyads(owner_web, study, db) -> list[Dyad]:
    for code in ("01", "02"):
        assert owner_web.post(f"/studies/{study.id}/dyads", {"code": code}).status_code == 302
    return list(db.scalars(select(Dyad).where(Dyad.study_id == study.id).order_by(Dyad.code)))


def test_renaming_a_dyad_shows_saved_beside_it(owner_web, study, db) -> None:
    first, second = _dyads(owner_web, study, db)
    html = owner_web.post(f"/dyads/{first.id}", {"code": "11"}, htmx=True).get_data(as_text=True)
    row = re.search(rf'id="dyad-{first.id}".*?</form>', html, flags=re.S).group(0)
    assert 'value="11"' in row and '<span class="saved" role="status">Saved</span>' in row
    assert html.count("Saved</span>") == 1


def test_a_rejected_rename_outlines_that_dyads_field_only(owner_web, study, db) -> None:
    first, second = _dyads(owner_web, study, db)
    resp = owner_web.post(f"/dyads/{second.id}", {"code": "01"}, htmx=True)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.findall(r'<input id="([^"]+)"[^>]*aria-invalid="true"', html) == [f"dyad-{second.id}"]
    assert "Saved</span>" not in html


def test_processing_and_uploading_recordings_show_in_the_dyad_table(owner_web, study, db) -> None:
    import datetime as dt

    from ipr.models import Job, Recording, Upload

    first, _ = _dyads(owner_web, study, db)
    rec = Recording(
        study_id=study.id, dyad_id=first.id, session_label="Session 3",
        storage_key="0" * 36, status="processing", original_name="s3.mp4",
    )  # fmt: skip
    db.add(rec)
    db.flush()
    db.add(Job(kind="ingest", recording_id=rec.id, study_id=study.id, status="running",
               stage="Making the playable copy", progress=0.42))  # fmt: skip
    db.add(Upload(id="u" * 32, study_id=study.id, dyad_id=first.id, session_label="Session 5",
                  filename="s5.mp4", length=1000, offset=250,
                  expires_at=dt.datetime(2099, 1, 1)))  # fmt: skip
    db.commit()
    html = owner_web.get(f"/dyads/{first.id}", htmx=True).get_data(as_text=True)
    assert "No recordings of this dyad yet" not in html
    assert "Making the playable copy · 42%" in html
    assert 'uploading</span> <span class="muted progress-note">25% received' in html
    assert 'hx-trigger="every 2s"' in html  # it keeps itself up to date while busy


def test_a_codebook_error_outlines_the_field_it_is_about(owner_web, study, db) -> None:
    from ipr.models import Code

    owner_web.post(f"/studies/{study.id}/codes", {"name": "Insight", "shortcut": "i"})
    resp = owner_web.post(
        f"/studies/{study.id}/codes", {"name": "Rupture", "shortcut": "i"}, htmx=True
    )
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.findall(r'<input id="([^"]+)"[^>]*aria-invalid="true"', html) == ["new-code-key"]
    code = db.scalar(select(Code).where(Code.study_id == study.id))
    resp = owner_web.post(f"/codes/{code.id}", {"name": "Insight!", "shortcut": "i"}, htmx=True)
    html = resp.get_data(as_text=True)
    row = re.search(rf'id="code-key-{code.id}".*?</tr>', html, flags=re.S).group(0)
    assert '<span class="saved" role="status">Saved</span>' in row
