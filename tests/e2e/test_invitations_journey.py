"""Invitations that cannot get lost, and researcher pages that fit a tablet and a phone.

A researcher invites both participants of a dyad from the invitations panel, e-mails the
client an invitation and a reminder through a real local SMTP server (aiosmtpd, started by the
harness), and the client opens the link from the received message on a phone and reads the
study in Norwegian only. The QR code on screen decodes to the link. Screenshots go to
``test-artifacts/screenshots/`` (``SCREENSHOTS_DIR=docs/screenshots`` refreshes the kept ones).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ipr import invitations, jobs, study_texts
from ipr.config import load_config
from ipr.demo import CODES, INSTRUCTIONS
from ipr.models import HAT_LABELS, HAT_NAME, Dyad, Job, Recording, Study
from ipr.storage import Storage
from tests.conftest import ROOT, make_video
from tests.e2e.conftest import LiveServer, expect_status, log_in
from tests.qr import decode_png
from tests.smtp_inbox import Inbox

pytestmark = pytest.mark.e2e

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")
TABLET_PORTRAIT = {"width": 768, "height": 1024}
PHONE = {"width": 390, "height": 844}

NB_INSTRUCTIONS = "Se opptaket av timen din. Trykk Marker øyeblikk når noe betydde noe for deg."
NB_CODES = ["Følte meg forstått", "Innsikt", "Brudd", "Reparasjon", "Vonde følelser"]


WIDEST = """() => Array.from(document.querySelectorAll('main *'))
  .filter(el => el.getBoundingClientRect().right > innerWidth + 1)
  .map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))
  .slice(-6)"""


def fits(page: Page, name: str) -> None:
    """Nothing scrolls sideways; then the page is saved for a person to look at."""
    width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    if width[0] > width[1]:
        wide = page.evaluate(WIDEST)
        raise AssertionError(f"{name} is {width[0]}px wide in a {width[1]}px window: {wide}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def ready_recording(server: LiveServer, study_id: int, video: Path) -> tuple[int, int]:
    """A processed recording of dyad 01 (the playable copy only): (recording id, dyad id)."""
    with server.database.session() as s:
        dyad = s.scalar(select(Dyad).where(Dyad.study_id == study_id, Dyad.code == "01"))
        rec = Recording(
            study_id=study_id, dyad_id=dyad.id, session_label="Session 3",
            storage_key=Storage.new_key(), status="ready", duration_ms=4000, width=320,
            height=180, fps_num=25, fps_den=1, has_audio=True,
        )  # fmt: skip
        s.add(rec)
        s.commit()
        derived = Storage(server.env["IPR_RECORDINGS_DIR"]).derived_dir(rec.storage_key)
        derived.mkdir(parents=True)
        shutil.copy(video, derived / "playable.mp4")
        return rec.id, dyad.id


def translate_to_norwegian(server: LiveServer, study_id: int) -> None:
    with server.database.session() as s:
        study = s.get(Study, study_id)
        extra = next(sc for sc in study.scales if sc.key == "intensity")
        form: dict = {
            "languages": ["nb"],
            "instructions.nb": NB_INSTRUCTIONS,
            "invitation.nb": "Hei! Her er lenken din til gjennomgangen: {link}",
            "invitation.en": "Hello! Here is your link to the recall: {link}",
            f"scale.{extra.id}.nb.name": "Hvor sterkt kjente du dette?",
            f"scale.{extra.id}.nb.1": "Knapt",
            f"scale.{extra.id}.nb.5": "Svært sterkt",
        }
        for code in study.codes:
            form[f"code.{code.id}.nb.name"] = NB_CODES[[c[0] for c in CODES].index(code.name)]
        study_texts.apply(study, form)
        s.commit()


def run_email_jobs(server: LiveServer) -> None:
    """Be the worker for the queued e-mails (the harness runs no worker process)."""
    assert "send_invitation" in jobs.HANDLERS, invitations.__name__
    config = load_config(Path(server.env["IPR_INSTANCE_PATH"]), environ=server.env)
    with server.database.session() as s:
        ids = s.scalars(
            select(Job.id).where(Job.kind == "send_invitation", Job.status == "queued")
        ).all()
    for job_id in ids:
        assert jobs.run_job(server.database, config, job_id) == "done"


def decode_qr(page: Page, selector: str) -> str:
    return decode_png(page.locator(selector).screenshot())


def test_invitations_by_email_and_qr_reach_the_norwegian_participant_page(
    new_page: Callable[..., Page],
    live_server: LiveServer,
    smtp_inbox: Inbox,
    tmp_path: Path,
) -> None:
    who = live_server.new_researcher("inv")
    study_id = live_server.seed_study(who, "Invitations study")
    video = make_video(tmp_path / "session.mp4", 4.0)
    rec_id, dyad_id = ready_recording(live_server, study_id, video)

    # the study offers Norwegian: the study page flags what is not translated yet
    page = new_page(viewport=TABLET_PORTRAIT, name="researcher")
    expect_status(page, 404)  # this recording has no analysis files: its plot stays empty
    log_in(page, who)
    with live_server.database.session() as s:
        s.get(Study, study_id).languages = ["en", "nb"]
        s.commit()
    page.goto(f"/studies/{study_id}")
    missing = page.locator("#missing-texts li")
    expect(missing).to_have_count(7)  # instructions, five codes, the extra scale
    expect(missing.first).to_have_text("Instructions in Norsk bokmål")
    fits(page, "invitations-study-languages-768")
    translate_to_norwegian(live_server, study_id)
    page.reload()
    expect(page.locator("#missing-texts")).to_have_count(0)

    # the panel: one row per participant; each link box says whose link it is
    page.goto(f"/recordings/{rec_id}")
    client_row = page.locator("#invite-client")
    therapist_row = page.locator("#invite-therapist")
    expect(client_row.get_by_text("Not invited yet")).to_be_visible()
    client_row.get_by_label("Language").select_option("nb")
    client_row.get_by_role("button", name=re.compile("Start recall for C")).click()
    client_box = client_row.get_by_role("textbox", name=re.compile("C.*personal recall link"))
    expect(client_box).to_be_visible()
    client_link = client_box.input_value()
    assert client_link.startswith(live_server.url + "/r/")
    expect(client_row.locator(".new-link")).to_contain_text("(client)")
    therapist_row.get_by_role("button", name=re.compile("Start recall for T")).click()
    therapist_box = therapist_row.get_by_role("textbox", name=re.compile("personal recall link"))
    expect(therapist_box).to_be_visible()
    expect(client_box).to_have_value(client_link)  # the client's link stays on screen
    client_row.get_by_text("Show as QR code").click()
    assert decode_qr(page, "#invite-client .qr-code svg") == client_link
    fits(page, "invitations-panel-768")

    # e-mail the client an invitation, then a reminder; each carries a fresh link
    client_row.get_by_label(re.compile("e-mail address")).fill("c01@example.org")
    client_row.get_by_role("button", name="E-mail the invitation").click()
    expect(client_row.get_by_role("status").filter(has_text="is queued")).to_be_visible()
    before = len(smtp_inbox.messages)
    run_email_jobs(live_server)
    invitation = smtp_inbox.wait_for(before + 1)[before]
    assert invitation["To"] == "c01@example.org"
    assert invitation["Subject"] == "Din personlige lenke for å se timen din"
    body = invitation.get_content()
    assert body.startswith("Hei! Her er lenken din til gjennomgangen: " + live_server.url + "/r/")
    expect(client_row.locator(".email-status")).to_contain_text("Invitation e-mail: sent")
    client_row.get_by_label(re.compile("e-mail address")).fill("c01@example.org")
    client_row.get_by_role("button", name="E-mail a reminder").click()
    expect(client_row.get_by_role("status").filter(has_text="reminder")).to_be_visible()
    run_email_jobs(live_server)
    reminder = smtp_inbox.wait_for(before + 2)[before + 1]
    assert reminder["Subject"] == "Påminnelse: din personlige lenke for å se timen din"
    link = re.search(r"http://\S+/r/\S+", reminder.get_content()).group(0)
    assert link not in body and link != client_link

    # the client opens the reminder's link on a phone and reads no English study text
    phone = new_page(viewport=PHONE, name="client")
    phone.goto(link)
    expect(phone).to_have_url(re.compile(r"/recall/\d+$"))
    expect(phone.locator("html")).to_have_attribute("lang", "nb")
    text = phone.locator("body").inner_text()
    assert NB_INSTRUCTIONS in text
    english = [INSTRUCTIONS.split("\n")[0], "How strongly did you feel this?", "Barely"]
    english += [c[0] for c in CODES] + [HAT_NAME, *HAT_LABELS.values()]
    phone.locator("#start-btn").click()
    text += phone.locator("body").inner_text()
    html = phone.content()
    assert [e for e in english if e in text or e in html] == []
    assert "Innsikt" in html and "Hvor sterkt kjente du dette?" in html
    phone.screenshot(path=str(SHOTS / "invitations-participant-nb-390.png"))
