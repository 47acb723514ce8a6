"""Analysis against ground truth: scene cuts, motion energy, silences, sprite and waveform."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.media import Region, analyze_audio, compute_motion_energy
from ipr.media.analysis import detect_cuts

FPS_TESTVIDEO = 30000 / 1001
# PySceneDetect's ContentDetector golden (SOURCES.md), the true cuts of testvideo.mp4.
CONTENT_GOLDEN = (30, 180, 394)


@pytest.mark.corpus
def test_testvideo_cuts(corpus: Path, ingested) -> None:
    result, _ = ingested(corpus / "scene_cuts/pyscenedetect/testvideo.mp4")
    frames = [round(t / 1000 * FPS_TESTVIDEO) for t in result.scene_cuts_ms]
    for expected in CONTENT_GOLDEN:
        assert any(abs(f - expected) <= 1 for f in frames), (expected, frames)
    # Frame 211 is the picture fading in after the black that the cut at 180 led into: one
    # transition, already a scene at 180 (ContentDetector does not report it either).
    assert frames == [30, 180, 394]


@pytest.mark.corpus
def test_a_uniform_change_of_colour_is_no_cut(corpus: Path, ingested) -> None:
    # counter.mp4: at 1.0 s the flat background turns from grey-blue to red-brown, the burnt-in
    # text stays (ContentDetector, HashDetector and ThresholdDetector report no cut).
    result, _ = ingested(corpus / "scene_cuts/pyscenedetect/counter.mp4")
    assert len(result.scene_scores) == 30
    assert result.scene_scores[10] > 8.0  # a large change of level ...
    assert result.scene_cuts_ms == []  # ... but no new picture


@pytest.mark.corpus
def test_vfr_cuts_in_playable_time(corpus: Path, ingested) -> None:
    result, _ = ingested(corpus / "scene_cuts/pyscenedetect/goldeneye-vfr-drop3.mp4")
    assert len(result.scene_cuts_ms) == 2
    for got, want in zip(result.scene_cuts_ms, (3754, 8759), strict=True):
        assert abs(got - want) <= 60


@pytest.mark.corpus
def test_fades_are_not_cuts(corpus: Path, ingested) -> None:
    result, _ = ingested(corpus / "scene_cuts/pyscenedetect/fades.mp4")
    assert result.scene_cuts_ms == []
    assert len(result.scene_scores) == 250


def test_motion_only_on_the_left(left_moves: Path, ingested) -> None:
    result, out = ingested(left_moves)
    me = result.motion_energy
    assert me["rate_hz"] == 25.0
    assert len(me["left"]) == len(me["right"]) == 100
    assert max(me["right"]) == 0.0
    assert min(me["left"][1:]) > 0.02  # testsrc2 moves only parts of its half
    saved = json.loads((out / "analysis.json").read_text())
    assert saved["motion_energy"]["right"] == me["right"]


def test_motion_energy_rerun_with_other_regions(left_moves: Path, ingested) -> None:
    _, out = ingested(left_moves)
    regions = [Region("top_right", 0.5, 0.0, 0.5, 0.5), Region("left_quarter", 0, 0, 0.25, 1)]
    me = compute_motion_energy(out / "playable.mp4", regions)
    assert max(me.series["top_right"]) == 0.0
    assert min(me.series["left_quarter"][1:]) > 0.01


@pytest.mark.corpus
def test_chaplin_two_people_move(corpus: Path, ingested) -> None:
    result, _ = ingested(corpus / "people/moviepy_chaplin.mp4")
    left, right = result.motion_energy["left"], result.motion_energy["right"]
    assert len(left) == len(right) == 241
    for series in (left, right):
        assert sum(1 for v in series if v > 0.01) > 100
        assert max(series) < 0.9


def test_tone_pauses_found_to_the_frame(tone_with_pauses: Path, ingested) -> None:
    result, out = ingested(tone_with_pauses)
    assert len(result.silences_ms) == 2
    for (a, b), (ea, eb) in zip(result.silences_ms, ((2000, 3000), (4500, 5000)), strict=True):
        assert abs(a - ea) <= 20 and abs(b - eb) <= 20
    levels = result.waveform["levels"]
    assert [lv["ms_per_peak"] for lv in levels] == [20, 100, 500, 2500]
    assert len(levels[1]["peaks"]) in (60, 61)  # AAC may add a few ms of padding
    assert levels[1]["peaks"][25] == 0.0
    assert levels[1]["peaks"][10] > 0.1  # lavfi sine: amplitude 1/8
    assert json.loads((out / "waveform.json").read_text()) == result.waveform


def test_sprite_geometry(tone_with_pauses: Path, ingested) -> None:
    result, out = ingested(tone_with_pauses)
    sprite = result.sprite
    assert (sprite["tile_width"], sprite["tile_height"]) == (160, 120)
    assert sprite["interval_ms"] == 1000 and sprite["count"] == 6
    image = cv2.imread(str(out / "sprite.jpg"))
    assert image.shape == (sprite["rows"] * 120, sprite["columns"] * 160, 3)


def _textgrid_pauses(path: Path) -> list[tuple[int, int]]:
    tier = path.read_text(encoding="utf-8").split("item [2]")[0]
    rows = re.findall(r'xmin = ([\d.]+)\s*\n\s*xmax = ([\d.]+)\s*\n\s*text = "([^"]*)"', tier)
    return [(round(float(a) * 1000), round(float(b) * 1000)) for a, b, t in rows if t in "#"]


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


@pytest.mark.corpus
def test_silences_against_sppas_textgrids(corpus: Path) -> None:
    """Pauses >= 250 ms; a match is IoU >= 0.5. Measured: English 6/6 found, 6/6 true; French
    4/6 found, 4/4 true (the two extra lie in the unannotated `gpf_0` lead-in, see docs/media.md).
    """
    folder = corpus / "audio/silence_ground_truth"
    counts = {}
    for wav in sorted(folder.glob("*.wav")):
        truth = [p for p in _textgrid_pauses(wav.with_suffix(".TextGrid")) if p[1] - p[0] >= 250]
        found = analyze_audio(wav).silences_ms
        hits_det = sum(any(_iou(d, g) >= 0.5 for g in truth) for d in found)
        hits_gt = sum(any(_iou(d, g) >= 0.5 for d in found) for g in truth)
        counts[wav.stem] = (hits_det, len(found), hits_gt, len(truth))
    english = counts["sppas_ENG_M15_ENG_T02"]
    assert english == (6, 6, 6, 6)
    hits_det, n_det, hits_gt, n_gt = (sum(c[i] for c in counts.values()) for i in range(4))
    assert hits_gt / n_gt == 1.0
    assert hits_det / n_det >= 0.8  # 10/12; target 0.9 not reached: see docs/media.md


def _cuts_by_definition(scores, fps_num, fps_den, means, shapes) -> list[int]:
    """detect_cuts spelled out frame by frame, as docs/media.md describes it."""
    from ipr.media import analysis as a

    fps = fps_num / fps_den
    half = max(1, round(a.CUT_WINDOW_MS / 1000 * fps))
    freeze_frames = max(2, round(a.FREEZE_MIN_MS / 1000 * fps))
    min_gap = max(1, round(a.MIN_SCENE_MS / 1000 * fps))
    cuts: list[int] = []
    frozen_run = 0
    hard_before = False  # the frame before the current frame was a hard cut
    hold_entered_by_cut = False
    for i in range(1, len(scores)):
        s = scores[i]
        around = np.concatenate([scores[max(1, i - half) : i], scores[i + 1 : i + 1 + half]])
        base = float(np.median(around)) if len(around) else 0.0
        hard = s >= a.CUT_MIN_SCORE and s >= a.CUT_RATIO * max(base, 0.5)
        hard = hard and shapes[i] >= a.CUT_SHAPE_FRACTION * s
        returns = frozen_run >= freeze_frames and s >= a.FREEZE_END_SCORE
        if (hard or (returns and not hold_entered_by_cut)) and (
            not cuts or i - cuts[-1] >= min_gap
        ):
            cuts.append(i)
        held = s <= a.FREEZE_MAX_SCORE and means[i] <= a.BLACK_MAX_MEAN
        if held and frozen_run == 0:
            hold_entered_by_cut = hard_before
        frozen_run = frozen_run + 1 if held else 0
        hard_before = hard
    return cuts


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    rate=st.sampled_from([(25, 1), (30000, 1001), (5, 1), (1, 1)]),
)
def test_vectorised_cut_detection_matches_its_definition(seed, n, rate) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.exponential(2, n)
    scores = np.where(rng.random(n) < 0.05, rng.uniform(5, 60, n), scores)
    scores = np.where(rng.random(n) < 0.3, 0.0, scores)  # held pictures
    means = np.where(rng.random(n) < 0.5, 10.0, 100.0)  # some of them black
    shapes = scores * rng.choice([0.1, 0.5, 1.0], n)  # some changes are of level only
    got = detect_cuts(scores, *rate, means, shapes)
    assert got == _cuts_by_definition(scores, *rate, means, shapes)


@pytest.mark.corpus
def test_vfr_repeated_frames_are_missing_samples_not_zeros(corpus: Path, ingested) -> None:
    """goldeneye-vfr-drop3 drops every third frame: on the 24000/1001 grid every third sample
    is a repeat, so it is missing (None), counted and explained."""
    result, _ = ingested(corpus / "scene_cuts/pyscenedetect/goldeneye-vfr-drop3.mp4")
    me = result.motion_energy
    assert len(me["left"]) == 239
    assert me["missing"] == 79
    assert me["missing_reason"] == "repeated frames (variable frame rate or dropped frames)"
    assert [i for i, v in enumerate(me["left"][:12]) if v is None] == [2, 5, 8, 11]
    assert [v is None for v in me["left"]] == [v is None for v in me["right"]]


def test_threshold_and_background_region(left_moves: Path, ingested) -> None:
    _, out = ingested(left_moves)
    regions = [Region("therapist", 0, 0, 0.5, 1), Region("background", 0, 0, 0.25, 1)]
    low = compute_motion_energy(out / "playable.mp4", regions, threshold=2)
    high = compute_motion_energy(out / "playable.mp4", regions, threshold=120)
    assert low.threshold == 2 and high.threshold == 120
    assert sum(low.series["background"][1:]) > sum(high.series["background"][1:])
    # the person's share is what moved beyond the background's share (never below 0)
    raw = compute_motion_energy(out / "playable.mp4", regions[:1], threshold=2)
    series = (low.series["therapist"], low.series["background"], raw.series["therapist"])
    for t, b, r in zip(*series, strict=True):
        assert t == pytest.approx(max(0.0, r - b), abs=2e-4)
    assert low.missing == 0
