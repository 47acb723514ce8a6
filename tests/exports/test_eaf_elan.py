"""EAF that ELAN accepts: overlapping moments on extra layers, exact peaks, zero-length spans
as points in every format, and a point caption at the very end."""

from __future__ import annotations

import io
import json

import pympi
import pytest
import webvtt
from lxml import etree

from ipr.exports.csv_ import to_csv
from ipr.exports.data import ExportMoment
from ipr.exports.eaf import to_eaf
from ipr.exports.imports import import_csv
from ipr.exports.json_ import to_json
from ipr.exports.peers import import_eaf_lane
from ipr.exports.peers import moments as peer_moments
from ipr.exports.textgrid import to_textgrid
from ipr.exports.vtt import to_srt, to_vtt
from tests.exports.conftest import make_study

OVERLAPPING = (
    ExportMoment(1, "therapist", "T05", 1000, 5000, peaks_ms=(5000,), text="long"),
    ExportMoment(2, "therapist", "T05", 2000, 3000, peaks_ms=(2000,), text="inside"),
    ExportMoment(3, "therapist", "T05", 2500, text="point inside both"),
    ExportMoment(4, "therapist", "T05", 5000, 6000, text="touches the first"),
    ExportMoment(5, "client", "C05", 4000, 4000, text="zero length"),
)


def _alignable(root, tier_id):
    slots = {s.get("TIME_SLOT_ID"): int(s.get("TIME_VALUE")) for s in root.iter("TIME_SLOT")}
    tier = root.find(f"TIER[@TIER_ID='{tier_id}']")
    return [
        (slots[a.get("TIME_SLOT_REF1")], slots[a.get("TIME_SLOT_REF2")], a.findtext("*"))
        for a in tier.iterfind("ANNOTATION/ALIGNABLE_ANNOTATION")
    ]


@pytest.mark.corpus
def test_overlapping_moments_go_onto_extra_layers_that_elan_accepts(corpus, tmp_path):
    study = make_study(moments=OVERLAPPING, pairs=())
    data = to_eaf(study.only_recording())
    xsd = etree.XMLSchema(etree.parse(str(corpus / "annotation_formats/elan/EAFv3.0.xsd")))
    assert xsd.validate(etree.parse(io.BytesIO(data))), xsd.error_log
    root = etree.fromstring(data)
    assert _alignable(root, "therapist") == [
        (1000, 5000, "long"),
        (5000, 6000, "touches the first"),
    ]
    assert _alignable(root, "therapist 2") == [(2000, 3000, "inside")]
    assert _alignable(root, "therapist 3") == [(2500, 2501, "point inside both")]
    assert root.find("TIER[@TIER_ID='therapist 2 codes']").get("PARENT_REF") == "therapist 2"
    # no time-aligned tier holds overlapping annotations
    for tier in root.iter("TIER"):
        spans = sorted(_alignable(root, tier.get("TIER_ID")))
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), tier
    path = tmp_path / "overlap.eaf"
    path.write_bytes(data)
    eaf = pympi.Elan.Eaf(str(path))
    assert eaf.get_annotation_data_for_tier("therapist 2") == [(2000, 3000, "inside")]
    # a peak at a span's end starts exactly there, as every peak does (its own tier, no parent)
    assert eaf.get_annotation_data_for_tier("therapist peaks") == [
        (5000, 5001, "peak 00:00:05.000")
    ]
    assert eaf.get_annotation_data_for_tier("therapist 2 peaks") == [
        (2000, 2001, "peak 00:00:02.000")
    ]
    assert "PARENT_REF" not in eaf.get_parameters_for_tier("therapist peaks")
    back = import_eaf_lane(data, "therapist")
    assert [(m.t_ms, m.end_ms, m.peaks_ms, m.text, m.lane) for m in back] == [
        (1000, 5000, (5000,), "long", "therapist"),
        (2000, 3000, (2000,), "inside", "therapist"),
        (2500, None, (), "point inside both", "therapist"),
        (5000, 6000, (), "touches the first", "therapist"),
    ]


@pytest.mark.corpus
def test_peaks_at_the_same_millisecond_go_onto_extra_peak_tiers(corpus):
    """A moment's peak at its end and the next moment's peak at its start (the same instant on
    one layer), and a peak given twice: each starts exactly at its time, none overlap."""
    moments = (
        ExportMoment(1, "client", "C05", 1000, 3000, peaks_ms=(1500, 3000), text="first"),
        ExportMoment(2, "client", "C05", 3000, 4000, peaks_ms=(3000, 3600, 3600), text="next"),
    )
    data = to_eaf(make_study(moments=moments, pairs=()).only_recording())
    xsd = etree.XMLSchema(etree.parse(str(corpus / "annotation_formats/elan/EAFv3.0.xsd")))
    assert xsd.validate(etree.parse(io.BytesIO(data))), xsd.error_log
    root = etree.fromstring(data)
    assert _alignable(root, "client") == [(1000, 3000, "first"), (3000, 4000, "next")]
    assert _alignable(root, "client peaks") == [
        (1500, 1501, "peak 00:00:01.500"),
        (3000, 3001, "peak 00:00:03.000"),
        (3600, 3601, "peak 00:00:03.600"),
    ]
    assert _alignable(root, "client peaks 2") == [
        (3000, 3001, "peak 00:00:03.000"),
        (3600, 3601, "peak 00:00:03.600"),
    ]
    assert root.find("TIER[@TIER_ID='client peaks 2']").get("PARTICIPANT") == "C05"
    back = import_eaf_lane(data, "client")
    assert [(m.t_ms, m.end_ms, m.peaks_ms) for m in back] == [
        (1000, 3000, (1500, 3000)),
        (3000, 4000, (3000, 3600, 3600)),
    ]
    assert to_eaf(make_study(moments=moments, pairs=()).only_recording()) == data


def test_a_zero_length_span_is_a_point_in_every_format():
    study = make_study(moments=OVERLAPPING, pairs=())
    ctx = study.only_recording()
    assert [m.end_ms for m in ctx.recording.moments if m.id == 5] == [None]
    assert [(m.t_ms, m.end_ms) for m in import_csv(to_csv(study)) if m.lane == "client"] == [
        (4000, None)
    ]
    moments = json.loads(to_json(study))["study"]["dyads"][0]["recordings"][0]["moments"]
    assert [m["end_ms"] for m in moments if m["id"] == 5] == [None]
    assert [(m.t_ms, m.end_ms) for m in import_eaf_lane(to_eaf(ctx), "client")] == [(4000, None)]
    grid = to_textgrid(ctx)
    assert [(m.t_ms, m.end_ms) for m in peer_moments(grid, "textgrid", "client")] == [(4000, None)]
    cue = [c for c in webvtt.from_buffer(io.StringIO(to_vtt(ctx).decode())) if "C05" in c.text]
    assert (cue[0].start, cue[0].end) == ("00:00:04.000", "00:00:07.000")
    # and coming in: a hand-made row whose end equals its start is a point too
    rows = import_csv(b"lane,start_ms,end_ms,peaks_ms,text\nclient,4000,4000,4000,x\n")
    assert [(m.t_ms, m.end_ms, m.peaks_ms) for m in rows] == [(4000, None, (4000,))]


def test_a_point_at_the_very_end_gets_a_caption_that_ends_at_the_end():
    last = (
        ExportMoment(1, "client", "C05", 10_000, text="at the end"),
        ExportMoment(2, "therapist", "T05", 9_700, text="just before"),
    )
    ctx = make_study(moments=last, pairs=(), duration_ms=10_000).only_recording()
    cues = list(webvtt.from_buffer(io.StringIO(to_vtt(ctx).decode())))
    assert [(c.identifier, c.start, c.end) for c in cues] == [
        ("therapist-2", "00:00:09.000", "00:00:10.000"),
        ("client-1", "00:00:09.000", "00:00:10.000"),
    ]
    assert "00:00:09,000 --> 00:00:10,000" in to_srt(ctx).decode()
