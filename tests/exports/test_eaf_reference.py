"""The EAF writer writes its tiers as text (a study bundle holds ~100 EAF files): every byte must
be what the lxml-built writer gave (`reference_eaf`), on data that uses every tier and every
character XML escapes."""

from __future__ import annotations

import random

import pytest

from ipr.exports.data import (
    Code,
    Coding,
    ExportDyad,
    ExportMoment,
    ExportRecording,
    ExportStudy,
    FollowUpRating,
    InterviewMedia,
    Pair,
    Prompt,
    Scale,
)
from ipr.exports.eaf import to_eaf
from ipr.exports.sample import synthetic_study
from tests.exports import reference_eaf
from tests.exports.conftest import make_study

# Text a participant or researcher may type: markup, quotes, line ends, tabs, emoji, the
# control codes XML cannot hold (dropped), and characters that need no escaping.
NASTY = (
    "plain",
    "a <b>bold</b> & \"quoted\" 'move'",
    "line one\nline two\r\nthree\rfour\ttab",
    "emoji 😀 and é ø å, ]]> end",
    "bell\x07 vt\x0b ff\x0c nul\x00 fffe\ufffe del\x7f nel\x85",
    "",
    "   ",
    "=SUM(A1) -minus +plus @at",
)


def rich_study(seed: int) -> ExportStudy:
    """Two dyads, every kind of moment: points, overlapping spans with shared peaks, codes
    outside the codebook, several coders, prompt answers, interviews, responses, follow-ups."""
    rng = random.Random(seed)
    codebook = (
        Code("insight", "Insight", "#1b9e77", "i", "a new <view> & more"),
        Code('say "no"', "Refusal", "#d95f02"),
        Code("tab\there", "Tabbed", "#7570b3"),
    )
    scales = (Scale("hat", "HAT", 1, 9), Scale("int<ens>", "Intensity", 1, 5))
    prompts = (
        Prompt("felt", "What did you feel?", "text"),
        Prompt("how", "How helpful?", "scale"),
    )
    coders = ("ana@lab.org", 'b&"o"@lab.org', "carl@lab.org")
    next_id = 1
    dyads = []
    for d in range(2):
        recordings = []
        for s in range(2):
            moments = []
            for i in range(rng.randrange(0, 40)):
                lane = rng.choice(("therapist", "client"))
                t = rng.choice((0, 5, 1000, 1000, rng.randrange(0, 60_000)))
                end = None if rng.random() < 0.4 else t + rng.choice((0, 1, 500, 5000))
                hi = t if end is None else end
                peaks = tuple(sorted(rng.sample((t, hi, (t + hi) // 2, hi), rng.randrange(0, 3))))
                codings = tuple(
                    Coding(c, tuple(rng.sample([k.key for k in codebook], rng.randrange(0, 3))),
                           rng.choice(NASTY))
                    for c in rng.sample(coders, rng.randrange(0, 3))
                )  # fmt: skip
                responds = None
                if moments and rng.random() < 0.2:
                    responds = rng.choice(moments).id
                moments.append(
                    ExportMoment(
                        id=next_id,
                        lane=lane,
                        participant_code=("T" if lane == "therapist" else "C") + f"0{d}",
                        t_ms=t,
                        end_ms=end,
                        peaks_ms=peaks if end is not None else (),
                        text=rng.choice(NASTY),
                        codes=tuple(rng.sample([*(k.key for k in codebook), "gone"], 2))
                        if rng.random() < 0.5
                        else (),
                        ratings={k.key: rng.randrange(1, 6) for k in scales if rng.random() < 0.6},
                        researcher_codes=("insight",) if rng.random() < 0.3 else (),
                        researcher_note=rng.choice(NASTY) if rng.random() < 0.3 else "",
                        codings=codings,
                        phase="response" if responds is not None or rng.random() < 0.1 else "blind",
                        responds_to_id=responds,
                        interview_transcript=tuple(
                            (1000 * k, None if k % 2 else 1000 * k + 400, rng.choice(NASTY))
                            for k in range(rng.randrange(0, 3))
                        ),
                        interview_audio_start_ms=2000 * i if lane == "client" else None,
                        interview_audio_end_ms=2000 * i + 1500 if lane == "client" else None,
                        followup=FollowUpRating({"hat": 4}, rng.choice(NASTY)) if i % 5 else None,
                        prompt_answers={"felt": rng.choice(NASTY), "how": "3"}
                        if rng.random() < 0.4
                        else {},
                    )
                )
                next_id += 1
            pairs = []
            ther = [m for m in moments if m.lane == "therapist" and m.phase == "blind"]
            cli = [m for m in moments if m.lane == "client" and m.phase == "blind"]
            for a, b in zip(ther[::3], cli[::3], strict=False):
                pairs.append(Pair(a.id, b.id, b.t_ms - a.t_ms))
            recordings.append(
                ExportRecording(
                    id=10 * d + s,
                    session_label=f"session <{s}> & more",
                    media_filename=f"d{d} s{s} ü.mp4",
                    duration_ms=70_000,
                    moments=tuple(moments),
                    pairs=tuple(pairs),
                    figures={"kappa": 0.5, "odd": float("nan")},
                    interviews={"client": InterviewMedia(f"d{d}_s{s}_C_interview.ogg", 90_000, 12)}
                    if s == 0
                    else {},
                )
            )
        dyads.append(ExportDyad(f"D<{d}>", f'T"0{d}', f"C&0{d}", tuple(recordings)))
    return ExportStudy(
        name='Study "<one>" & two',
        codebook=codebook,
        scales=scales,
        dyads=tuple(dyads),
        prompts=prompts,
        followup_scales=("hat",),
    )


@pytest.mark.parametrize("include_text", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_eaf_bytes_match_the_lxml_writer(seed: int, include_text: bool) -> None:
    study = rich_study(seed)
    for ctx in study.recordings():
        expected = reference_eaf.to_eaf(ctx, include_text=include_text)
        assert to_eaf(ctx, include_text=include_text) == expected, (seed, ctx.recording.id)


def test_eaf_bytes_match_on_the_hand_made_and_synthetic_studies() -> None:
    empty = make_study(moments=())
    for study in (make_study(), empty, synthetic_study(4, 120, seed=3)):
        for ctx in study.recordings():
            for include_text in (True, False):
                expected = reference_eaf.to_eaf(ctx, include_text=include_text)
                assert to_eaf(ctx, include_text=include_text) == expected


def test_the_rich_study_exercises_every_escape() -> None:
    """The comparison above means something: the data holds what lxml escapes and drops."""
    text = b"".join(to_eaf(ctx) for ctx in rich_study(0).recordings())
    for escaped in (
        b'&lt;b&gt;bold&lt;/b&gt; &amp; "quoted"',
        b"&#13;",
        b'TIER_ID="therapist researcher codes: b&amp;&quot;o&quot;@lab.org"',
        b'CVE_REF="cve_say &quot;no&quot;"',
        b"emoji \xf0\x9f\x98\x80",
    ):
        assert escaped in text, escaped
    assert b"\x07" not in text and b"\x00" not in text
