"""WebVTT/SRT parsed back with webvtt-py, TextGrid read back with pympi."""

from __future__ import annotations

import html

import pympi
import webvtt

from ipr.exports.data import ExportMoment
from ipr.exports.textgrid import to_textgrid
from ipr.exports.vtt import to_srt, to_vtt
from tests.exports.conftest import make_study


def test_vtt_parses_with_webvtt_py(ctx):
    captions = webvtt.from_string(to_vtt(ctx).decode("utf-8"))
    assert [(c.identifier, c.start, c.end, c.voice) for c in captions] == [
        ("therapist-11", "00:00:01.500", "00:00:04.500", "T05"),
        ("client-21", "00:00:01.750", "00:00:04.750", "C05"),
        ("therapist-12", "00:01:02.000", "00:01:15.500", "T05"),
        ("client-22", "01:00:00.000", "01:00:01.000", "C05"),
    ]
    assert captions[1].text == 'C05 · insight · hat 9\nHe "got" me, finally\nI relaxed'
    assert captions[0].settings.line == "5%"
    assert captions[1].settings.line is None


def test_vtt_escapes_markup_and_cuts_point_captions_at_the_end():
    study = make_study(
        duration_ms=11_000,
        moments=(ExportMoment(1, "client", "C05", 10_000, text="a <b> & c --> d\n\n\ne"),),
    )
    text = to_vtt(study.only_recording()).decode()
    assert "<v C05>a &lt;b&gt; &amp; c --&gt; d</v>\n<v C05>e</v>" in text
    captions = webvtt.from_string(text)
    assert (captions[0].start, captions[0].end) == ("00:00:10.000", "00:00:11.000")
    # webvtt-py keeps character references as written; a browser shows them decoded.
    assert html.unescape(captions[0].text) == "C05\na <b> & c --> d\ne"


def test_vtt_without_text_shows_codes_only(ctx):
    captions = webvtt.from_string(to_vtt(ctx, include_text=False).decode())
    assert [c.text for c in captions] == [
        "T05 · stuck · hat 3",
        "C05 · insight · hat 9",
        "T05 · insight, stuck · hat 8, intensity 4",
        "C05 · intensity 2",
    ]


def test_srt_parses_with_webvtt_py(ctx, tmp_path):
    path = tmp_path / "d05.srt"
    path.write_bytes(to_srt(ctx))
    captions = webvtt.from_srt(str(path))
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:01.500", "00:00:04.500"),
        ("00:00:01.750", "00:00:04.750"),
        ("00:01:02.000", "00:01:15.500"),
        ("01:00:00.000", "01:00:01.000"),
    ]
    assert captions[0].text == "{\\an8}T05 · stuck · hat 3\nShe went quiet, I felt stuck"
    assert path.read_text(encoding="utf-8").startswith("1\n00:00:01,500 --> 00:00:04,500\n")


def test_textgrid_reads_back_in_pympi(ctx, tmp_path):
    path = tmp_path / "d05.TextGrid"
    path.write_bytes(to_textgrid(ctx))
    grid = pympi.Praat.TextGrid(str(path))
    tiers = {t.name: t for t in grid.get_tiers()}
    assert list(tiers) == ["therapist points", "therapist spans", "client points", "client spans"]
    assert tiers["therapist points"].tier_type == "TextTier"
    assert tiers["therapist points"].get_all_intervals() == [
        (1.5, "[stuck] She went quiet, I felt stuck")
    ]
    assert tiers["therapist spans"].get_all_intervals() == [
        (0.0, 62.0, ""),
        (62.0, 75.5, "[insight;stuck] =SUM(A1:A2) tried a reframe"),
        (75.5, 3605.0, ""),
    ]
    assert tiers["client points"].get_all_intervals() == [
        (1.75, '[insight] He "got" me, finally I relaxed')
    ]
    assert grid.xmax == 3605.0


def test_textgrid_moves_clashing_moments_to_extra_tiers(tmp_path):
    study = make_study(
        moments=(
            ExportMoment(1, "client", "C05", 1000, 5000, text="a"),
            ExportMoment(2, "client", "C05", 3000, 7000, text="b"),
            ExportMoment(3, "client", "C05", 5000, 6000, text="c"),
            ExportMoment(4, "client", "C05", 2000, text="p"),
            ExportMoment(5, "client", "C05", 2000, text="q"),
        ),
        pairs=(),
    )
    data = to_textgrid(study.only_recording(), include_text=True)
    path = tmp_path / "clash.TextGrid"
    path.write_bytes(data)
    grid = pympi.Praat.TextGrid(str(path))
    tiers = {t.name: t.get_all_intervals() for t in grid.get_tiers()}
    assert tiers["client points"] == [(2.0, "p")]
    assert tiers["client points 2"] == [(2.0, "q")]
    assert [i for i in tiers["client spans"] if i[2]] == [(1.0, 5.0, "a"), (5.0, 6.0, "c")]
    assert [i for i in tiers["client spans 2"] if i[2]] == [(3.0, 7.0, "b")]
    assert tiers["therapist points"] == []
