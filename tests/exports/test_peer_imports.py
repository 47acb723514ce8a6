"""Peers' files in: Praat TextGrid, BORIS projects and exports, ELAN time subdivision/symbolic
tiers and TIME_ORIGIN; every corpus annotation file imports or is refused by name."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from ipr.exports import peers
from ipr.exports.data import Code
from ipr.exports.import_textgrid import read_textgrid
from ipr.exports.imports import ImportValidationError, import_eaf

FORMATS_DIR = Path(__file__).resolve().parents[2].parent / "shared/corpus/annotation_formats"

# file → ("refused", words of the message) or (kind, moments in all choices,
# (first choice name, its moments, first ms, last ms)). Counts and times are the SOURCES'
# ground truth where they give it (sample_3.0: 4788 alignable + 3990 ref annotations,
# sppas_sample.eaf: 183 + 132; BORIS goldens: see the cross-checks below).
EXPECTED: dict[str, tuple] = {
    "boris/export_observations_list_test1.tsv": ("refused", "Tab-separated table: no BORIS"),
    "boris/otx_import_test.boris": ("boris", 0, None),
    "boris/test.boris": ("boris", 91, ("offset positif / No focal subject", 2, 22425, 199960)),
    "boris/test2.boris": ("boris", 50, ("offset positif / No focal subject", 2, 22425, 199960)),
    "boris/test_check_txt_file_test_tsv.tsv": ("refused", "Tab-separated table: no BORIS"),
    "boris/test_export_aggregated_events_test_full_1.tsv": (
        "boris-table",
        18,
        ("observation #2 / No focal subject", 12, 1800, 307765),
    ),
    "boris/test_export_aggregated_events_test_full_2.tsv": (
        "refused",
        "BORIS aggregated events without a header row",
    ),
    "boris/test_export_aggregated_events_test_full_5.tsv": (
        "refused",
        "BORIS aggregated events without a header row",
    ),
    "boris/test_export_aggregated_events_test_full_with_trailing_spaces_in_modifiers.tsv": (
        "refused",
        "BORIS aggregated events without a header row",
    ),
    "boris/test_export_events_tabular.csv": (
        "boris-table",
        4,
        ("observation #1 / subject1", 3, 3300, 24475),
    ),
    "boris/test_export_events_tabular.tsv": (
        "boris-table",
        4,
        ("observation #1 / subject1", 3, 3300, 24475),
    ),
    "boris/test_time_budget1.json": ("refused", "BORIS time budget: it holds totals"),
    "boris/test_with_leading_trailing_spaces_in_modifiers.boris": (
        "boris",
        4,
        ("test1 live / No focal subject", 4, 4151, 26007),
    ),
    "boris/test_without_media_files_paths.boris": (
        "boris",
        50,
        ("offset positif / No focal subject", 2, 22425, 199960),
    ),
    "elan/EAFv2.8.xsd": ("refused", "XML schema"),
    "elan/EAFv3.0.xsd": ("refused", "XML schema"),
    "elan/sample_2.7.eaf": ("eaf", 8778, ("text", 399, 2000, 1199000)),
    "elan/sample_2.8.eaf": ("eaf", 8778, ("text", 399, 2000, 1199000)),
    "elan/sample_3.0.eaf": ("eaf", 8778, ("text", 399, 2000, 1199000)),
    "elan/sppas_sample.eaf": ("eaf", 315, ("K-Spch", 7, 280, 29480)),
    "elan/sppas_samples-pcm_M_3.eaf": ("eaf", 15, ("Transcription", 15, 0, 13773)),
    "praat/sppas_F_F_B003-P8-token.TextGrid": ("textgrid", 42, ("Tokens", 10, 0, 21347)),
    "praat/sppas_sample-utf16.TextGrid": ("textgrid", 3, ("transcription", 1, 0, 2329)),
    "praat/sppas_sample.TextGrid": ("textgrid", 6, ("transcription", 4, 0, 2329)),
    "praat/sppas_sample2.TextGrid": ("textgrid", 1, ("Tokens", 1, 0, 7461)),
    "sppas_misc/sppas_sample-irish.csv": ("refused", "CSV line 1: the header needs a start_ms"),
    "sppas_misc/sppas_sample.ctm": ("refused", "NIST CTM: this format is not imported"),
    "sppas_misc/sppas_sample.srt": ("refused", "SubRip subtitles: this format is not imported"),
    "sppas_misc/sppas_sample.stm": ("refused", "NIST STM: this format is not imported"),
    "sppas_misc/sppas_sample.sub": ("refused", "SubViewer subtitles: this format is not"),
}
for _name in ("arrows", "ids", "settings-multiple", "signature-no-newline", "timings-negative",
              "timings-omitted-hours", "timings-too-short"):  # fmt: skip
    for _ext in ("vtt", "test"):
        EXPECTED[f"webvtt/wpt/{_name}.{_ext}"] = ("refused", "WebVTT subtitles: captions")


def _read(relative: str) -> bytes:
    path = FORMATS_DIR / relative
    if not path.is_file():
        pytest.skip(f"../shared/corpus/annotation_formats/{relative} not present")
    return path.read_bytes()


@pytest.mark.corpus
def test_the_table_covers_every_corpus_annotation_file():
    if not FORMATS_DIR.is_dir():
        pytest.skip("../shared/corpus not present")
    on_disk = {str(p.relative_to(FORMATS_DIR)) for p in FORMATS_DIR.rglob("*") if p.is_file()}
    assert on_disk == set(EXPECTED)


@pytest.mark.corpus
@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_every_corpus_annotation_file_imports_or_is_refused_by_name(relative):
    data = _read(relative)
    expected = EXPECTED[relative]
    if expected[0] == "refused":
        with pytest.raises(ImportValidationError) as caught:
            peers.choices(data, peers.detect(data, relative))
        assert caught.value.problems[0].startswith(expected[1])
        return
    kind, total, first = expected
    assert peers.detect(data, relative) == kind
    found = peers.choices(data, kind)
    assert sum(len(c.moments) for c in found) == total
    if first is None:
        with pytest.raises(ImportValidationError, match="the file holds no annotations"):
            peers.moments(data, kind, "")
        return
    head = found[0]
    assert (head.name, len(head.moments), head.first_ms, head.last_ms) == first


@pytest.mark.corpus
def test_boris_project_pairs_states_as_the_boris_exports_of_it_do():
    project = peers.choices(_read("boris/test.boris"), "boris")
    by_name = {c.name: c for c in project}
    tabular = peers.choices(_read("boris/test_export_events_tabular.tsv"), "boris-table")
    aggregated = peers.choices(
        _read("boris/test_export_aggregated_events_test_full_1.tsv"), "boris-table"
    )

    def spans(choice):
        return [(m.t_ms, m.end_ms, m.codes) for m in choice.moments]

    for exported in tabular + aggregated:
        assert spans(by_name[exported.name]) == spans(exported), exported.name
    # test_export_aggregated_events_test_full_2.tsv: subject1's two states in observation #2
    assert spans(by_name["observation #2 / subject1"]) == [
        (266165, 276690, ("s",)),
        (280965, 294215, ("s",)),
    ]
    # a state never stopped makes its tier unimportable, by name
    unpaired = by_name["live not paired / No focal subject"]
    assert unpaired.problems == (
        "BORIS project: observation 'live not paired' event 12: "
        "state 's' started at 26862 ms is never stopped",
    )


@pytest.mark.corpus
def test_boris_modifiers_become_codes_or_text():
    data = _read("boris/test.boris")
    got = peers.moments(data, "boris", "modifiers / No focal subject", codebook=[])
    assert [(m.t_ms, m.end_ms, m.codes, m.text) for m in got] == [
        (8475, None, (), "[q;m1]"),
        (12350, None, (), "[q;m2]"),
        (15650, None, (), "[q;m3]"),
        (19175, 27950, (), "[r;m1]"),
        (30425, 40825, (), "[r]"),
    ]
    codebook = [Code(key="q", name="q"), Code(key="m1", name="m1")]
    got = peers.moments(data, "boris", "modifiers / No focal subject", codebook=codebook)
    assert [(m.codes, m.text) for m in got[:2]] == [(("q", "m1"), ""), (("q",), "[m2]")]
    # whitespace around modifiers is dropped; an unset modifier set ('None') is no code
    padded = _read("boris/test_with_leading_trailing_spaces_in_modifiers.boris")
    got = peers.moments(padded, "boris", "")
    assert [(m.t_ms, m.codes) for m in got] == [
        (4151, ("p", "a", "c")),
        (12663, ("p", "a")),
        (20135, ("p", "111")),
        (26007, ("p", "c")),
    ]


@pytest.mark.corpus
def test_textgrid_utf16_points_and_multiline_labels():
    tiers = read_textgrid(_read("praat/sppas_sample-utf16.TextGrid"))
    assert [(t.name, [(m.t_ms, m.end_ms, m.text) for m in t.moments]) for t in tiers] == [
        (
            "transcription",
            [(0, 2329, "une classe entière qui a bien vu comment ça s'est passé")],
        ),
        ("P-Tones", [(3883, None, "L"), (3981, None, "H*")]),
    ]
    quoted = read_textgrid(_read("praat/sppas_sample.TextGrid"))[0]
    assert [m.text for m in quoted.moments][1:] == ['"', '"a"', '""']
    multiline = read_textgrid(_read("praat/sppas_sample2.TextGrid"))[0].moments[0]
    assert multiline.text.startswith("\net\neuh\ndonc\n") and multiline.text.endswith("putain")


SHORT = """File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
2
"IntervalTier"
"therapist spans"
0
2.5
3
0
1.25
""
1.25
2.0
"[insight] a ""quoted"" word"
2.0
2.5
""
"TextTier"
"client points"
0
2.5
1
0.5
"[]"
"""


def test_textgrid_short_form_reads_like_the_long_one_in_any_encoding():
    for data in (
        SHORT.encode(),
        codecs.BOM_UTF8 + SHORT.encode(),
        codecs.BOM_UTF16_LE + SHORT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + SHORT.encode("utf-16-be"),
    ):
        assert peers.detect(data, "x.TextGrid") == "textgrid"
        found = peers.choices(data, "textgrid")
        assert [(c.name, c.lane, c.points, c.spans) for c in found] == [
            ("therapist", "therapist", 0, 1),
            ("client", "client", 1, 0),
        ]
        got = peers.moments(data, "textgrid", "therapist", codebook=[Code("insight", "I")])
        assert [(m.t_ms, m.end_ms, m.codes, m.text, m.lane) for m in got] == [
            (1250, 2000, ("insight",), 'a "quoted" word', "therapist")
        ]


def test_textgrid_that_stops_early_or_is_binary_is_refused_by_name():
    with pytest.raises(ImportValidationError) as caught:
        read_textgrid(SHORT.encode()[:-5])
    assert caught.value.problems == [
        "Praat TextGrid: the file ends where point 1 of 'client points' mark should be"
    ]
    with pytest.raises(ImportValidationError, match=r"^1 problem.*Praat TextGrid \(binary\)"):
        peers.detect(b"ooBinaryFile\x08TextGrid", "a.TextGrid")


EAF = """<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="" DATE="2024-01-01T00:00:00" FORMAT="3.0" VERSION="3.0">
 <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">
  <MEDIA_DESCRIPTOR MEDIA_URL="file:///a.mp4" MIME_TYPE="video/mp4"{origin}/>
 </HEADER>
 <TIME_ORDER>
  <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="1000"/>
  <TIME_SLOT TIME_SLOT_ID="ts2"/>
  <TIME_SLOT TIME_SLOT_ID="ts3"/>
  <TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="4000"/>
 </TIME_ORDER>
 <TIER LINGUISTIC_TYPE_REF="utt" TIER_ID="utterance">
  <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts4">
   <ANNOTATION_VALUE>one two three</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
 </TIER>
 <TIER LINGUISTIC_TYPE_REF="words" PARENT_REF="utterance" TIER_ID="words">
  <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
   <ANNOTATION_VALUE>one</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a3" TIME_SLOT_REF1="ts2" TIME_SLOT_REF2="ts3">
   <ANNOTATION_VALUE>two</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a4" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts4">
   <ANNOTATION_VALUE>three</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
 </TIER>
 <TIER LINGUISTIC_TYPE_REF="gloss" PARENT_REF="words" TIER_ID="gloss">
  <ANNOTATION><REF_ANNOTATION ANNOTATION_ID="a5" ANNOTATION_REF="a3">
   <ANNOTATION_VALUE>t</ANNOTATION_VALUE></REF_ANNOTATION></ANNOTATION>
  <ANNOTATION><REF_ANNOTATION ANNOTATION_ID="a6" ANNOTATION_REF="a3" PREVIOUS_ANNOTATION="a5">
   <ANNOTATION_VALUE>wo</ANNOTATION_VALUE></REF_ANNOTATION></ANNOTATION>
 </TIER>
 <LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="utt" TIME_ALIGNABLE="true"/>
 <LINGUISTIC_TYPE CONSTRAINTS="Time_Subdivision" LINGUISTIC_TYPE_ID="words" TIME_ALIGNABLE="true"/>
 <LINGUISTIC_TYPE CONSTRAINTS="Symbolic_Subdivision" LINGUISTIC_TYPE_ID="gloss"
   TIME_ALIGNABLE="false"/>
</ANNOTATION_DOCUMENT>
"""


def test_elan_subdivisions_get_the_times_elan_shows_and_time_origin_is_added():
    data = EAF.format(origin="").encode()
    words = import_eaf(data, "words")
    # two unaligned boundaries inside 1000–4000: ELAN spaces them evenly
    assert [(m.t_ms, m.end_ms, m.text) for m in words] == [
        (1000, 2000, "one"),
        (2000, 3000, "two"),
        (3000, 4000, "three"),
    ]
    gloss = import_eaf(data, "gloss")  # a symbolic subdivision splits its parent evenly
    assert [(m.t_ms, m.end_ms, m.text) for m in gloss] == [(2000, 2500, "t"), (2500, 3000, "wo")]
    shifted = EAF.format(origin=' TIME_ORIGIN="250"').encode()
    assert [(m.t_ms, m.end_ms) for m in import_eaf(shifted, "words")] == [
        (1250, 2250),
        (2250, 3250),
        (3250, 4250),
    ]
    assert [(m.t_ms, m.end_ms) for m in import_eaf(shifted, "gloss")] == [
        (2250, 2750),
        (2750, 3250),
    ]
    assert [(m.t_ms, m.end_ms) for m in import_eaf(shifted, "utterance")] == [(1250, 4250)]


@pytest.mark.corpus
def test_unaligned_slots_of_the_elan_sample_are_spaced_evenly():
    words = import_eaf(_read("elan/sample_3.0.eaf"), "words-timesub")
    # a410–a414: five words of one 3 s utterance (8000–11000) with no aligned boundary inside
    assert [(m.t_ms, m.end_ms, m.source) for m in words[10:15]] == [
        (8000, 8600, "annotation a410"),
        (8600, 9200, "annotation a411"),
        (9200, 9800, "annotation a412"),
        (9800, 10400, "annotation a413"),
        (10400, 11000, "annotation a414"),
    ]


def test_previewed_files_never_confirmed_are_pruned(tmp_path):
    import os

    from ipr.storage import Storage

    storage = Storage(tmp_path)
    old, fresh = storage.staged_import("a" * 32), storage.staged_import("b" * 32)
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (1_000_000, 1_000_000))
    assert storage.prune_staged_imports(3600) == 1
    assert (old.exists(), fresh.exists()) == (False, True)
    with pytest.raises(Exception, match="Not Found|not found|NotFound|"):
        storage.staged_import("../../etc/passwd")


def test_our_textgrid_keeps_responses_apart_from_the_blind_lane():
    from ipr.exports.data import ExportMoment
    from ipr.exports.textgrid import to_textgrid
    from tests.exports.conftest import make_study

    moments = (
        ExportMoment(1, "therapist", "T05", 1000, text="blind"),
        ExportMoment(2, "therapist", "T05", 2000, 2500, text="answer", phase="response",
                     responds_to_id=1),
    )  # fmt: skip
    grid = to_textgrid(make_study(moments=moments, pairs=()).only_recording())
    found = peers.choices(grid, "textgrid")
    assert [(c.name, c.lane, len(c.moments)) for c in found] == [
        ("therapist", "therapist", 1),
        ("client", "client", 0),
        ("therapist responses", None, 1),
    ]


def test_negative_or_reversed_times_are_refused_by_moment():
    grid = SHORT.replace("1.25\n2.0\n", "1.25\n-2.0\n").encode()
    with pytest.raises(ImportValidationError) as caught:
        peers.moments(grid, "textgrid", "therapist")
    assert caught.value.problems == [
        "tier 'therapist spans' interval 2: times 1250–-2000 ms are not within "
        "0 ms–2147483647 ms in order"
    ]
