"""The follow-up pass in EAF, TextGrid and the Methods paragraph (docs/followup.md).

Follow-up re-ratings sit beside the moments they re-rate, in the CSV's names
(`followup_rating_<scale>`, `followup_comment`): in EAF a `<lane> follow-up` child tier of the
moment, in TextGrid `<lane> follow-up points|spans` at the moment's time. The imports never
read them as moments, so a round trip stays what it was.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pympi
import pytest
from lxml import etree

from ipr.exports import peers
from ipr.exports.data import ExportMoment, ExportStudy, FollowUpRating
from ipr.exports.eaf import to_eaf
from ipr.exports.imports import ImportValidationError, import_eaf
from ipr.exports.methods import paragraph
from ipr.exports.textgrid import to_textgrid
from tests.exports.conftest import make_study
from tests.exports.test_eaf_imports import XSD

AGAIN = {
    11: FollowUpRating({"hat": 5}, "Less now.\n  Much less.", "2026-12-30T10:00:00Z"),
    12: FollowUpRating({"hat": 2, "intensity": 1}, "", "2026-12-30T10:01:00Z"),
    21: FollowUpRating({}, "Still true.", "2026-12-30T10:02:00Z"),
}
PARAMETERS = {
    "matching": {"tolerance_ms": 5000},
    "chance_baseline": {"n_shifts": 1000, "seed": 0},
    "time_unit_kappa": {"bin_ms": 1000},
}


def with_followup(study: ExportStudy, again=AGAIN, scales=("hat", "intensity")) -> ExportStudy:
    recording = study.only_recording().recording
    moments = tuple(replace(m, followup=again.get(m.id)) for m in recording.moments)
    recording = replace(recording, moments=moments)
    dyad = replace(study.dyads[0], recordings=(recording,))
    return replace(study, dyads=(dyad,), followup_scales=scales)


def _ref_values(root: etree._Element, tier: str) -> list[tuple[str, str, str]]:
    node = root.find(f"TIER[@TIER_ID='{tier}']")
    return [
        (r.get("ANNOTATION_REF"), r.get("ANNOTATION_ID"), r.findtext("ANNOTATION_VALUE"))
        for r in node.iter("REF_ANNOTATION")
    ]


def test_eaf_has_a_followup_tier_under_each_lane_with_the_csv_names(study, tmp_path) -> None:
    data = to_eaf(with_followup(study).only_recording())
    root = etree.fromstring(data)
    names = [t.get("TIER_ID") for t in root.iter("TIER")]
    assert [n for n in names if "follow-up" in n] == ["therapist follow-up", "client follow-up"]
    tier = root.find("TIER[@TIER_ID='client follow-up']")
    assert (tier.get("PARENT_REF"), tier.get("PARTICIPANT"), tier.get("LINGUISTIC_TYPE_REF")) == (
        "client", "C05", "rating",
    )  # fmt: skip
    assert _ref_values(root, "therapist follow-up") == [
        ("m11", "m11f1", "followup_rating_hat=5"),
        ("m11", "m11f2", "followup_comment=Less now.\n  Much less."),
        ("m12", "m12f1", "followup_rating_hat=2"),
        ("m12", "m12f2", "followup_rating_intensity=1"),
    ]
    assert _ref_values(root, "client follow-up") == [
        ("m21", "m21f1", "followup_comment=Still true."),
    ]
    # ELAN (pympi) shows them at their moments' times: the parent's interval, shared in order
    path = tmp_path / "d05.eaf"
    path.write_bytes(data)
    eaf = pympi.Elan.Eaf(str(path))
    assert eaf.get_parameters_for_tier("therapist follow-up")["PARENT_REF"] == "therapist"
    assert [a[2] for a in eaf.get_ref_annotation_data_for_tier("client follow-up")] == [
        "followup_comment=Still true."
    ]
    # the time slots are the moments' own (as without the follow-up): none was added
    assert len(root.findall("TIME_ORDER/TIME_SLOT")) == 10


def test_eaf_without_text_keeps_the_rerating_and_drops_the_comment(study) -> None:
    data = to_eaf(with_followup(study).only_recording(), include_text=False)
    root = etree.fromstring(data)
    assert _ref_values(root, "therapist follow-up") == [
        ("m11", "m11f1", "followup_rating_hat=5"),
        ("m12", "m12f1", "followup_rating_hat=2"),
        ("m12", "m12f2", "followup_rating_intensity=1"),
    ]
    # the client's follow-up was a comment only: no tier at all without text
    assert root.find("TIER[@TIER_ID='client follow-up']") is None
    assert b"Less now" not in data and b"Still true" not in data


@pytest.mark.corpus
def test_eaf_with_followup_validates_against_the_xsd(study, corpus) -> None:
    xsd = etree.XMLSchema(etree.parse(str(corpus / XSD)))
    for include_text in (True, False):
        document = etree.parse(
            io.BytesIO(to_eaf(with_followup(study).only_recording(), include_text=include_text))
        )
        assert xsd.validate(document), xsd.error_log


def test_no_followup_tier_without_a_followup(study) -> None:
    # a study with a follow-up pass but no moment rated again, and one without any
    for data in (with_followup(study, again={}), study):
        eaf = to_eaf(data.only_recording())
        grid = to_textgrid(data.only_recording())
        assert b"follow-up" not in eaf and b"follow-up" not in grid
    assert to_eaf(with_followup(study, again={}).only_recording()) == to_eaf(study.only_recording())
    # ratings kept for a scale that is no longer re-rated are not exported (as in the CSV)
    only_intensity = with_followup(study, again={11: AGAIN[11]}, scales=("intensity",))
    assert b"follow-up" not in to_eaf(only_intensity.only_recording(), include_text=False)


def test_eaf_import_round_trip_ignores_the_followup_tier(study) -> None:
    plain, again = to_eaf(study.only_recording()), to_eaf(with_followup(study).only_recording())
    for lane in ("therapist", "client"):
        assert import_eaf(again, lane) == import_eaf(plain, lane)
    with pytest.raises(ImportValidationError) as caught:
        import_eaf(again, "client follow-up")
    assert caught.value.problems == [
        "tier 'client follow-up' holds follow-up ratings of the moments on 'client', not "
        "moments; import 'client'"
    ]
    # what the import page offers: the same choices and moments as without the follow-up
    offered = peers.choices(again, "eaf")
    assert [c.name for c in offered] == [c.name for c in peers.choices(plain, "eaf")]
    assert offered == peers.choices(plain, "eaf")


def test_eaf_followup_tier_follows_its_moment_onto_an_overlap_layer() -> None:
    study = make_study(
        moments=(
            ExportMoment(1, "client", "C05", 1000, 5000, text="a"),
            ExportMoment(2, "client", "C05", 3000, 7000, text="b"),
        ),
        pairs=(),
    )
    root = etree.fromstring(
        to_eaf(with_followup(study, again={2: AGAIN[12]}).only_recording(), include_text=False)
    )
    assert [t.get("TIER_ID") for t in root.iter("TIER") if "follow-up" in t.get("TIER_ID")] == [
        "client 2 follow-up"
    ]
    assert root.find("TIER[@TIER_ID='client 2 follow-up']").get("PARENT_REF") == "client 2"
    assert _ref_values(root, "client 2 follow-up") == [
        ("m2", "m2f1", "followup_rating_hat=2"),
        ("m2", "m2f2", "followup_rating_intensity=1"),
    ]


def test_textgrid_has_followup_tiers_at_the_moments_times(study, tmp_path) -> None:
    data = to_textgrid(with_followup(study).only_recording())
    path = tmp_path / "d05.TextGrid"
    path.write_bytes(data)
    grid = pympi.Praat.TextGrid(str(path))
    tiers = {t.name: t.get_all_intervals() for t in grid.get_tiers()}
    assert list(tiers) == [
        "therapist points",
        "therapist spans",
        "client points",
        "client spans",
        "therapist follow-up points",
        "therapist follow-up spans",
        "client follow-up points",
    ]
    assert tiers["therapist follow-up points"] == [
        (1.5, "followup_rating_hat=5; followup_comment=Less now. Much less.")
    ]
    assert tiers["therapist follow-up spans"] == [
        (0.0, 62.0, ""),
        (62.0, 75.5, "followup_rating_hat=2; followup_rating_intensity=1"),
        (75.5, 3605.0, ""),
    ]
    assert tiers["client follow-up points"] == [(1.75, "followup_comment=Still true.")]
    without = to_textgrid(with_followup(study).only_recording(), include_text=False).decode()
    assert "client follow-up" not in without and "Less now" not in without
    assert 'mark = "followup_rating_hat=5"' in without


def test_textgrid_import_offers_the_same_choices_as_without_followup(study) -> None:
    plain = to_textgrid(study.only_recording())
    again = to_textgrid(with_followup(study).only_recording())
    assert peers.choices(again, "textgrid") == peers.choices(plain, "textgrid")
    assert peers.moments(again, "textgrid", "therapist") == peers.moments(
        plain, "textgrid", "therapist"
    )


def _methods_study(states: dict[str, str | None], delay: int = 30) -> ExportStudy:
    study = with_followup(make_study(recall={
        "client": {"participant_code": "C05", "mode": "self", "followup": states["client"]},
        "therapist": {"participant_code": "T05", "mode": "self",
                      "followup": states["therapist"]},
    }), scales=("hat",))  # fmt: skip
    followup = {"phase": "followup", "enabled": True, "delay_days": delay, "scales": ["hat"],
                "of": "each participant's own blind moments", "in_figures": False}  # fmt: skip
    provenance = replace(study.provenance, parameters={**PARAMETERS, "followup": followup})
    return replace(study, provenance=provenance)


def test_methods_paragraph_states_the_followup_pass() -> None:
    text = paragraph(_methods_study({"client": "done", "therapist": "opened"}))
    assert (
        "In a follow-up pass scheduled 30 days after they had finished their recall, "
        "participants rated their own blind-phase moments again on Helpful Aspects of Therapy "
        "(1-9), without seeing their first rating, and could add a comment; 1 of 2 "
        "participants completed it. The follow-up ratings are reported beside the first "
        "ratings and are not part of any agreement figure."
    ) in text
    assert text.index("In a follow-up pass") > text.index("time-unit kappa")
    day = paragraph(_methods_study({"client": "done", "therapist": "done"}, delay=0))
    assert "scheduled as soon as they had finished their recall" in day
    assert "; 2 of 2 participants completed it." in day
    # no follow-up pass: no sentence
    assert "follow-up" not in paragraph(make_study())
