"""Small hand-made export data whose every exported value the tests can state exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipr.exports.data import (
    Clip,
    Code,
    ExportDyad,
    ExportMoment,
    ExportRecording,
    ExportStudy,
    Pair,
    RecordingContext,
    Scale,
)
from tests.conftest import CORPUS  # noqa: F401 — the exports tests' name for it
from tests.conftest import corpus as corpus_path


def make_study(**recording_changes) -> ExportStudy:
    """Study S1, dyad D05 (T05/C05), session 3: two therapist and two client moments."""
    moments = (
        ExportMoment(
            id=11,
            lane="therapist",
            participant_code="T05",
            t_ms=1500,
            text="She went quiet, I felt stuck",
            codes=("stuck",),
            ratings={"hat": 3},
            matched_moment_id=21,
            lag_ms=250,
        ),
        ExportMoment(
            id=12,
            lane="therapist",
            participant_code="T05",
            t_ms=62_000,
            end_ms=75_500,
            peaks_ms=(70_000,),
            text="=SUM(A1:A2) tried a reframe",
            codes=("insight", "stuck"),
            ratings={"hat": 8, "intensity": 4},
            researcher_codes=("insight",),
            researcher_note="classic reframe",
        ),
        ExportMoment(
            id=21,
            lane="client",
            participant_code="C05",
            t_ms=1750,
            text='He "got" me, finally\nI relaxed',
            codes=("insight",),
            ratings={"hat": 9},
            voice_note=True,
            matched_moment_id=11,
            lag_ms=250,
        ),
        ExportMoment(
            id=22,
            lane="client",
            participant_code="C05",
            t_ms=3_600_000,
            end_ms=3_601_000,
            text="-just tired",
            ratings={"intensity": 2},
        ),
    )
    recording = ExportRecording(
        id=7,
        session_label="session 3",
        media_filename="d05-s3.mp4",
        duration_ms=3_605_000,
        fps=25.0,
        clips=(Clip(1, 0, 60_000), Clip(2, 60_000, 3_605_000)),
        moments=moments,
        pairs=(Pair(11, 21, 250),),
        figures={"matched": 1, "kappa": 0.5, "chance_kappa": float("nan")},
    )
    for key, value in recording_changes.items():
        recording = _replace(recording, key, value)
    return ExportStudy(
        name="S1",
        codebook=(
            Code("insight", "Insight", "#1b9e77", "i"),
            Code("stuck", "Feeling stuck", "#d95f02", "s"),
        ),
        scales=(
            Scale("hat", "Helpful Aspects of Therapy", 1, 9, {1: "extremely hindering"}),
            Scale("intensity", "Intensity", 1, 5),
        ),
        dyads=(ExportDyad("D05", "T05", "C05", (recording,)),),
    )


def _replace(recording: ExportRecording, key: str, value) -> ExportRecording:
    from dataclasses import replace

    return replace(recording, **{key: value})


@pytest.fixture
def study() -> ExportStudy:
    return make_study()


@pytest.fixture
def ctx(study: ExportStudy) -> RecordingContext:
    return study.only_recording()


@pytest.fixture
def corpus() -> Path:
    return corpus_path()
