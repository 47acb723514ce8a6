"""The recall interview in the exports, ELAN transcripts, the transcription hook (issue 16).

The clocks are constructed (``tests.interview_helpers.events``: stops at 2000–4000, 6000–8000 and
9000–10 000 ms of a 10 s interview), so every offset and every utterance's stop is known.
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile

import openpyxl
import pympi
from lxml import etree
from sqlalchemy import select

from ipr import interview, jobs
from ipr.exports.json_ import schema
from ipr.models import AuditEvent, Job
from tests.conftest import corpus
from tests.exports.test_csv_json import _validate
from tests.interview_helpers import VTT, events, upload
from tests.test_interview import app, env  # noqa: F401 (fixtures: SQLite and PostgreSQL)

WAV_NAME = "01_S1_C01_interview.wav"
SAID = {  # moment index -> the VTT's utterances whose start falls in its stop
    0: [(2000, 3000, "What was happening for you there?"), (3999, 4000, "I felt stuck.")],
    1: [(6200, 7000, "I noticed the pause.")],
    2: [(9500, 10_000, "That was the moment.")],
}
STRETCH = {0: (2000, 4000), 1: (6000, 8000), 2: (9000, 10_000)}


def _post_transcript(env, data: bytes, name: str, **form):  # noqa: F811
    files = {"file": (io.BytesIO(data), name), **form}
    url = f"/api/v1/recall-sessions/{env['rs']['id']}/transcript"
    return env["api"]("POST", url, data=files)


def _csv_rows(body: str) -> list[dict]:
    lines = [ln for ln in body.lstrip("\ufeff").splitlines(keepends=True) if not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("".join(lines))))


def test_a_transcript_reaches_every_export(env, db, interview_wav, tmp_path) -> None:  # noqa: F811
    ids = env["moments"]
    assert upload(env, interview_wav, events(*ids)).status_code == 201
    resp = _post_transcript(env, VTT.encode(), "t.vtt")
    assert resp.status_code == 201, resp.json
    assert resp.json["attached"] == {str(ids[0]): 2, str(ids[1]): 1, str(ids[2]): 1}
    study_id, rec_id = env["rec"].study_id, env["rec"].id
    get = lambda url: env["api"]("GET", url)  # noqa: E731

    # CSV: the stretch and the words at each stop
    rows = {int(r["moment_id"]): r for r in _csv_rows(get(
        f"/api/v1/studies/{study_id}/export.csv").get_data(as_text=True))}  # fmt: skip
    for i, mid in enumerate(ids):
        assert (rows[mid]["interview_audio_start_ms"], rows[mid]["interview_audio_end_ms"]) == (
            str(STRETCH[i][0]), str(STRETCH[i][1]),
        )  # fmt: skip
    assert rows[ids[0]]["interview_transcript"] == (
        "[00:00:02.000] What was happening for you there?\n[00:00:03.999] I felt stuck."
    )
    assert rows[ids[1]]["interview_transcript"] == "[00:00:06.200] I noticed the pause."
    assert rows[ids[2]]["interview_transcript"] == "[00:00:09.500] That was the moment."

    # XLSX: the same cells, numbers as numbers
    book = openpyxl.load_workbook(io.BytesIO(get(f"/api/v1/studies/{study_id}/export.xlsx").data))
    sheet = book["moments"]
    header = [c.value for c in sheet[1]]
    cells = {r[header.index("moment_id")]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    for i, mid in enumerate(ids):
        row = cells[mid]
        assert row[header.index("interview_audio_start_ms")] == STRETCH[i][0]
        assert row[header.index("interview_audio_end_ms")] == STRETCH[i][1]
    assert cells[ids[0]][header.index("interview_transcript")] == (
        "[00:00:02.000] What was happening for you there?\n[00:00:03.999] I felt stuck."
    )

    # JSON: offsets, utterances, the interview medium and the provenance that cites it
    doc = get(f"/api/v1/studies/{study_id}/export.json").json
    assert _validate(doc, schema(), schema()) == []  # the interview keys are in schema v1
    (recording,) = doc["study"]["dyads"][0]["recordings"]
    moments = {m["id"]: m for m in recording["moments"]}
    for i, mid in enumerate(ids):
        m = moments[mid]
        assert (m["interview_audio_start_ms"], m["interview_audio_end_ms"]) == STRETCH[i]
        assert [(u["start_ms"], u["end_ms"], u["text"]) for u in m["interview_transcript"]] == (
            SAID[i]
        )
    assert recording["interviews"] == {
        "client": {"media_filename": WAV_NAME, "duration_ms": 10_000, "time_origin_ms": 0}
    }
    (prov,) = doc["provenance"]["recordings"]
    assert prov["recall"]["client"]["interview"] == {
        "media_filename": WAV_NAME, "duration_ms": 10_000, "time_origin_ms": 0, "segments": 3,
        "transcript_utterances": 4,
    }  # fmt: skip
    assert "interview_time_origin" in doc["provenance"]["definitions"]
    assert set(prov["recall"]) == {"client"}  # the therapist has no recall session here

    # EAF: the interview audio as a second medium, a stretch and the words per stop; valid
    # EAF 3.0, and pympi (as ELAN) reads both media with their offsets
    eaf_bytes = get(f"/api/v1/recordings/{rec_id}/export.eaf").data
    xsd = etree.XMLSchema(etree.parse(str(corpus("annotation_formats/elan/EAFv3.0.xsd"))))
    assert xsd.validate(etree.fromstring(eaf_bytes)), xsd.error_log
    eaf_path = tmp_path / "interview.eaf"
    eaf_path.write_bytes(eaf_bytes)
    linked = pympi.Elan.Eaf(str(eaf_path)).get_linked_files()
    assert [(f["MEDIA_URL"], f.get("TIME_ORIGIN")) for f in linked] == [
        ("./01_S1.mp4", None), (f"./{WAV_NAME}", "0"),
    ]  # fmt: skip
    root = etree.fromstring(eaf_bytes)
    media = root.findall("HEADER/MEDIA_DESCRIPTOR")
    assert [(m.get("MEDIA_URL"), m.get("MIME_TYPE"), m.get("TIME_ORIGIN")) for m in media] == [
        ("./01_S1.mp4", "video/mp4", None),
        (f"./{WAV_NAME}", "audio/x-wav", "0"),
    ]

    def tier(name: str) -> dict[str, list[str]]:
        node = root.find(f"TIER[@TIER_ID='{name}']")
        assert node.get("PARENT_REF") == "client" and node.get("PARTICIPANT") == "C01"
        out: dict[str, list[str]] = {}
        for ann in node.iterfind("ANNOTATION/REF_ANNOTATION"):
            out.setdefault(ann.get("ANNOTATION_REF"), []).append(ann.findtext("ANNOTATION_VALUE"))
        return out

    assert tier("client interview") == {
        f"m{ids[0]}": ["interview 00:00:02.000–00:00:04.000"],
        f"m{ids[1]}": ["interview 00:00:06.000–00:00:08.000"],
        f"m{ids[2]}": ["interview 00:00:09.000–00:00:10.000"],
    }
    assert tier("client interview transcript") == {
        f"m{ids[0]}": [
            "[00:00:02.000] What was happening for you there?",
            "[00:00:03.999] I felt stuck.",
        ],
        f"m{ids[1]}": ["[00:00:06.200] I noticed the pause."],
        f"m{ids[2]}": ["[00:00:09.500] That was the moment."],
    }
    assert root.find("TIER[@TIER_ID='therapist interview']") is None  # no interview there

    # the bundle: the audio itself beside the EAF that links it
    bundle = zipfile.ZipFile(io.BytesIO(get(f"/api/v1/studies/{study_id}/export.bundle").data))
    assert bundle.read(f"recordings/01/S1/{WAV_NAME}") == interview_wav
    assert b'TIME_ORIGIN="0"' in bundle.read("recordings/01/S1/01_S1.eaf")
    # ... and the interview on its own axis: the audio as master medium, stops and words on it
    own = bundle.read("recordings/01/S1/01_S1_C01_interview.eaf")
    assert xsd.validate(etree.fromstring(own)), xsd.error_log
    (tmp_path / "own.eaf").write_bytes(own)
    doc = pympi.Elan.Eaf(str(tmp_path / "own.eaf"))
    assert [f["MEDIA_URL"] for f in doc.get_linked_files()] == [f"./{WAV_NAME}"]
    assert doc.get_annotation_data_for_tier("stops") == [
        (2000, 4000, f"m{ids[0]} · client 00:00:05.000"),
        (6000, 8000, f"m{ids[1]} · client 00:00:09.000"),
        (9000, 10_000, f"m{ids[2]} · client 00:00:12.000"),
    ]
    assert doc.get_annotation_data_for_tier("transcript") == [
        (start, end, text) for i in range(3) for start, end, text in SAID[i]
    ]
    readme = bundle.read("README.md").decode()
    assert "<dyad>_<session>_<participant>_interview.<ext>" in readme

    # without free text: offsets stay, the words and the recorded voice go
    plain = zipfile.ZipFile(io.BytesIO(get(
        f"/api/v1/studies/{study_id}/export.bundle?include_text=false").data))  # fmt: skip
    assert not [n for n in plain.namelist() if "_interview." in n]  # no audio, no interview EAF
    for name in plain.namelist():
        if name.endswith((".csv", ".json", ".eaf")):
            body = plain.read(name).decode("utf-8-sig")
            assert "I felt stuck" not in body and "What was happening" not in body
    eaf = etree.fromstring(plain.read("recordings/01/S1/01_S1.eaf"))
    assert len(eaf.findall("HEADER/MEDIA_DESCRIPTOR")) == 1
    assert eaf.find("TIER[@TIER_ID='client interview']") is not None


def test_time_origin_is_the_first_stretch_the_video_played() -> None:
    def play(video: int, audio: int) -> dict:
        return {"type": "play", "video_ms": video, "audio_ms": audio}

    pause = {"type": "pause", "video_ms": 0, "audio_ms": 500, "moment_id": 1}
    assert interview.time_origin([pause, play(1000, 3500), play(9000, 4000)]) == 2500
    assert interview.time_origin([play(5000, 2000)]) is None  # ELAN takes no negative offset
    assert interview.time_origin([pause]) is None  # the video never played


EAF = """<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="" DATE="2026-11-30T00:00:00+00:00" FORMAT="3.0" VERSION="3.0">
  <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">
    <MEDIA_DESCRIPTOR MEDIA_URL="file:///interview.wav" MIME_TYPE="audio/x-wav"/>
  </HEADER>
  <TIME_ORDER>
    <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="1000"/>
    <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="2100"/>
    <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="2500"/>
    <TIME_SLOT TIME_SLOT_ID="ts4"/>
    <TIME_SLOT TIME_SLOT_ID="ts5" TIME_VALUE="4500"/>
    <TIME_SLOT TIME_SLOT_ID="ts6" TIME_VALUE="6000"/>
    <TIME_SLOT TIME_SLOT_ID="ts7" TIME_VALUE="7000"/>
    <TIME_SLOT TIME_SLOT_ID="ts8" TIME_VALUE="9000"/>
    <TIME_SLOT TIME_SLOT_ID="ts9" TIME_VALUE="9800"/>
  </TIME_ORDER>
  <TIER LINGUISTIC_TYPE_REF="utterance" TIER_ID="Interviewer">
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
      <ANNOTATION_VALUE>Shall we look here?</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" TIME_SLOT_REF1="ts6" TIME_SLOT_REF2="ts7">
      <ANNOTATION_VALUE>And   this one?</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  </TIER>
  <TIER LINGUISTIC_TYPE_REF="utterance" TIER_ID="Client">
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a3" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts4">
      <ANNOTATION_VALUE>I froze.</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a4" TIME_SLOT_REF1="ts4" TIME_SLOT_REF2="ts5">
      <ANNOTATION_VALUE>Then I was angry.</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a5" TIME_SLOT_REF1="ts6" TIME_SLOT_REF2="ts7">
      <ANNOTATION_VALUE></ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a6" TIME_SLOT_REF1="ts7" TIME_SLOT_REF2="ts8">
      <ANNOTATION_VALUE>Relief, I think.</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a7" TIME_SLOT_REF1="ts8" TIME_SLOT_REF2="ts9">
      <ANNOTATION_VALUE>Yes.</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  </TIER>
  <LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="utterance" TIME_ALIGNABLE="true"/>
</ANNOTATION_DOCUMENT>
"""


def test_an_elan_transcript_attaches_like_vtt(env, db, interview_wav) -> None:  # noqa: F811
    a, b, c = env["moments"]
    assert upload(env, interview_wav, events(a, b, c)).status_code == 201
    # no tier named: the one with most utterances ("Client": 4 with words, "Interviewer": 2);
    # ts4 has no time, so ELAN puts it half-way between 2500 and 4500
    resp = _post_transcript(env, EAF.encode(), "interview.eaf")
    assert resp.status_code == 201, resp.json
    assert (resp.json["format"], resp.json["tier"]) == ("eaf", "Client")
    assert resp.json["attached"] == {str(a): 2, str(b): 1, str(c): 1}
    assert resp.json["unattached"] == 0
    said = env["api"]("GET", f"/api/v1/recall-sessions/{env['rs']['id']}").json["transcripts"]
    assert said == [
        {"moment_id": a, "utterances": [
            {"start_ms": 2500, "end_ms": 3500, "text": "I froze."},
            {"start_ms": 3500, "end_ms": 4500, "text": "Then I was angry."}]},
        {"moment_id": b, "utterances": [
            {"start_ms": 7000, "end_ms": 9000, "text": "Relief, I think."}]},
        {"moment_id": c, "utterances": [{"start_ms": 9000, "end_ms": 9800, "text": "Yes."}]},
    ]  # fmt: skip
    # a named tier, whitespace folded; 1000 falls before the first stop
    resp = _post_transcript(env, EAF.encode(), "interview.eaf", tier="Interviewer")
    assert (resp.json["tier"], resp.json["attached"], resp.json["unattached"]) == (
        "Interviewer", {str(b): 1}, 1,
    )  # fmt: skip
    said = env["api"]("GET", f"/api/v1/recall-sessions/{env['rs']['id']}").json["transcripts"]
    assert said == [{"moment_id": b, "utterances": [
        {"start_ms": 6000, "end_ms": 7000, "text": "And this one?"}]}]  # fmt: skip
    # and it reaches the exports like any transcript
    doc = env["api"]("GET", f"/api/v1/studies/{env['rec'].study_id}/export.json").json
    moments = {m["id"]: m for m in doc["study"]["dyads"][0]["recordings"][0]["moments"]}
    assert [u["text"] for u in moments[b]["interview_transcript"]] == ["And this one?"]
    missing = _post_transcript(env, EAF.encode(), "interview.eaf", tier="Therapist")
    assert missing.status_code == 422
    assert missing.json["error"]["problems"] == ["tier: not one of 'Interviewer', 'Client'"]
    broken = _post_transcript(env, b"<ANNOTATION_DOCUMENT><TIER", "x.eaf")
    assert broken.status_code == 422


FAKE_MODEL = """\
import sys
from pathlib import Path

audio = Path(sys.argv[1])
size = audio.stat().st_size  # proves it was given the interview audio itself
print("WEBVTT")
print()
print("00:00:02.100 --> 00:00:03.000")
print(f"heard {size} bytes")
print()
print("00:00:06.500 --> 00:00:07.500")
print("second stop")
"""


def test_the_transcription_hook_runs_a_local_command(
    app,  # noqa: F811
    env,  # noqa: F811
    db,
    interview_wav,
    tmp_path,
) -> None:
    a, b, c = env["moments"]
    rs_id = env["rs"]["id"]
    url = f"/api/v1/recall-sessions/{rs_id}/transcribe"
    assert upload(env, interview_wav, events(a, b, c)).status_code == 201
    refused = env["api"]("POST", url)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "no_transcriber"
    script = tmp_path / "fake_model.py"
    script.write_text(FAKE_MODEL)
    app.config["TRANSCRIBE_COMMAND"] = f"{sys.executable} {script} {{audio}}"
    resp = env["api"]("POST", url)
    assert resp.status_code == 202, resp.json
    job = db.get(Job, resp.json["job_id"])
    assert job.kind == "interview_transcribe"
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id) == "done"
    said = env["api"]("GET", f"/api/v1/recall-sessions/{rs_id}").json["transcripts"]
    assert said == [
        {"moment_id": a, "utterances": [
            {"start_ms": 2100, "end_ms": 3000, "text": f"heard {len(interview_wav)} bytes"}]},
        {"moment_id": b, "utterances": [
            {"start_ms": 6500, "end_ms": 7500, "text": "second stop"}]},
    ]  # fmt: skip
    done = db.scalar(select(AuditEvent).where(AuditEvent.action == "interview_transcript_imported"))
    assert (done.actor, done.details["format"]) == ("worker", "model:vtt")
    # a model that fails: the job fails with its message, the transcript stays
    app.config["TRANSCRIBE_COMMAND"] = f"{sys.executable} -c 'import sys; sys.exit(\"no weights\")'"
    job_id = env["api"]("POST", url).json["job_id"]
    assert jobs.run_job(app.extensions["ipr_db"], dict(app.config), job_id) == "failed"
    db.expire_all()
    assert "no weights" in db.get(Job, job_id).error
    assert len(env["api"]("GET", f"/api/v1/recall-sessions/{rs_id}").json["transcripts"]) == 2


def test_transcribe_args_never_use_a_shell(tmp_path) -> None:
    audio = tmp_path / "a b.wav"
    assert interview.transcribe_args("whisper-cli -m 'my model.bin' -ovtt", audio) == [
        "whisper-cli", "-m", "my model.bin", "-ovtt", str(audio),
    ]  # fmt: skip
    assert interview.transcribe_args("run --in={audio} --vtt; rm -rf /", audio) == [
        "run", f"--in={audio}", "--vtt;", "rm", "-rf", "/",
    ]  # fmt: skip


def test_after_withdrawal_no_export_holds_the_interview(env, db, interview_wav) -> None:  # noqa: F811
    ids = env["moments"]
    assert upload(env, interview_wav, events(*ids)).status_code == 201
    assert _post_transcript(env, VTT.encode(), "t.vtt").status_code == 201
    study_id, rec_id = env["rec"].study_id, env["rec"].id
    get = lambda url: env["api"]("GET", url)  # noqa: E731
    before = zipfile.ZipFile(io.BytesIO(get(f"/api/v1/studies/{study_id}/export.bundle").data))
    assert f"recordings/01/S1/{WAV_NAME}" in before.namelist()
    pid = env["dyad"].participant("client").id
    assert env["api"]("POST", f"/api/v1/participants/{pid}/withdraw").status_code == 200
    bundle = zipfile.ZipFile(io.BytesIO(get(f"/api/v1/studies/{study_id}/export.bundle").data))
    assert not [n for n in bundle.namelist() if "interview" in n]
    for name in bundle.namelist():
        if name.endswith((".csv", ".json", ".eaf", ".md", ".vtt", ".srt", ".TextGrid")):
            body = bundle.read(name).decode("utf-8-sig")
            assert "I felt stuck" not in body and WAV_NAME not in body, name
    book = openpyxl.load_workbook(io.BytesIO(bundle.read("study.xlsx")))
    cells = [str(c) for row in book["moments"].iter_rows(values_only=True) for c in row]
    assert not [c for c in cells if "felt stuck" in c]
    eaf = etree.fromstring(get(f"/api/v1/recordings/{rec_id}/export.eaf").data)
    assert len(eaf.findall("HEADER/MEDIA_DESCRIPTOR")) == 1
    assert eaf.find("TIER[@TIER_ID='client interview']") is None


def test_the_interview_eaf_puts_clashing_stops_and_words_on_extra_tiers() -> None:
    from ipr.exports import ExportMoment
    from ipr.exports.data import InterviewMedia
    from ipr.exports.eaf import to_interview_eaf
    from tests.exports.conftest import make_study

    said = ((500, None, "first"), (800, 1500, "overlaps the first"))
    moments = (  # two stops logged at one pause share their stretch
        ExportMoment(1, "client", "C05", 1000, text="a", interview_audio_start_ms=400,
                     interview_audio_end_ms=2000, interview_transcript=said),
        ExportMoment(2, "client", "C05", 1000, text="b", interview_audio_start_ms=400,
                     interview_audio_end_ms=2000),
        ExportMoment(3, "therapist", "T05", 900, text="not this lane"),
    )  # fmt: skip
    media = {"client": InterviewMedia("D05_session_3_C05_interview.ogg", 5000)}
    ctx = make_study(moments=moments, pairs=(), interviews=media).only_recording()
    root = etree.fromstring(to_interview_eaf(ctx, "client"))
    slots = {s.get("TIME_SLOT_ID"): int(s.get("TIME_VALUE")) for s in root.iter("TIME_SLOT")}

    def tier(name: str) -> list[tuple[int, int, str]]:
        return [
            (slots[a.get("TIME_SLOT_REF1")], slots[a.get("TIME_SLOT_REF2")],
             a.findtext("ANNOTATION_VALUE"))
            for a in root.iterfind(f"TIER[@TIER_ID='{name}']/ANNOTATION/ALIGNABLE_ANNOTATION")
        ]  # fmt: skip

    assert tier("stops") == [(400, 2000, "m1 · client 00:00:01.000 · a")]
    assert tier("stops 2") == [(400, 2000, "m2 · client 00:00:01.000 · b")]
    assert tier("transcript") == [(500, 2000, "first")]  # no end: to its stop's end
    assert tier("transcript 2") == [(800, 1500, "overlaps the first")]
    assert root.find("HEADER/MEDIA_DESCRIPTOR").get("MIME_TYPE") == "audio/ogg"
    plain = etree.fromstring(to_interview_eaf(ctx, "client", include_text=False))
    assert [t.get("TIER_ID") for t in plain.iter("TIER")] == ["stops", "stops 2"]
    values = [a.findtext("ANNOTATION_VALUE") for a in plain.iter("ALIGNABLE_ANNOTATION")]
    assert values == ["m1 · client 00:00:01.000", "m2 · client 00:00:01.000"]
