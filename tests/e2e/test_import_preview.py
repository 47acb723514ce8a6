"""A researcher imports a colleague's Praat TextGrid: preview first, then confirm, in Chromium."""

from __future__ import annotations

import codecs

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from ipr.models import Dyad, Moment, RecallSession, Recording
from ipr.storage import Storage
from tests.e2e.conftest import log_in
from tests.e2e.test_pages_look import shoot

pytestmark = pytest.mark.e2e

GRID = (
    'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n9\n<exists>\n2\n'
    '"IntervalTier"\n"client spans"\n0\n9\n3\n0\n1.5\n""\n1.5\n2.25\n"felt seen"\n'
    '2.25\n9\n""\n"TextTier"\n"Tones"\n0\n9\n1\n4\n"H*"\n'
)


def test_textgrid_preview_then_confirm(page, live_server) -> None:
    who = live_server.new_researcher("imp")
    study_id = live_server.seed_study(who)
    with live_server.database.session() as s:
        dyad = s.scalars(select(Dyad).where(Dyad.study_id == study_id).order_by(Dyad.id)).first()
        rec = Recording(
            study_id=study_id, dyad_id=dyad.id, session_label="Session 9",
            storage_key=Storage.new_key(), status="ready", duration_ms=9000, width=320,
            height=180, fps_num=25, fps_den=1, has_audio=False,
        )  # fmt: skip
        s.add(rec)
        s.commit()
        rec_id = rec.id
        client_code = dyad.participant("client").code
        client_id = dyad.participant("client").id
    log_in(page, who)
    page.goto(f"/recordings/{rec_id}/import")
    page.locator("#imp-file").set_input_files(
        {"name": "colleague.TextGrid", "mimeType": "text/plain",
         "buffer": codecs.BOM_UTF16_LE + GRID.encode("utf-16-le")}
    )  # fmt: skip
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview: colleague.TextGrid (Praat TextGrid)"))
    rows = page.locator("table.preview tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("client")
    expect(rows.nth(0)).to_contain_text("0:01–0:02")
    expect(rows.nth(1)).to_contain_text("Tones")
    shoot(page, "import-preview", "desktop")
    # other tests share this live server: look at this recording's moments only
    mine = select(Moment).join(RecallSession).where(RecallSession.recording_id == rec_id)
    with live_server.database.session() as s:
        assert s.scalars(mine).all() == []  # the preview wrote nothing
    # the file's lane (client) is offered as the receiving lane
    expect(page.get_by_label("Into the lane of")).to_have_value(str(client_id))
    page.get_by_role("button", name="Confirm import").click()
    expect(page.get_by_role("status")).to_contain_text(f"Imported 1 moment into {client_code}")
    with live_server.database.session() as s:
        got = [(m.t_ms, m.end_ms, m.text) for m in s.scalars(mine)]
    assert got == [(1500, 2250, "felt seen")]
