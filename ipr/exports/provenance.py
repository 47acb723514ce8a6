"""Provenance carried by every export: software, parameters, definitions, codebook, recall modes.

One document (`document`) and one flat key/value form of it (`rows`), so the JSON block, the CSV
header comments, the XLSX sheet, the EAF header properties and the bundle README say the same
thing. The definitions are the ones in docs/timeline.md, worded to paste into a methods section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ipr.exports.data import ExportStudy

DEFINITIONS: dict[str, str] = {
    "matching": (
        "Therapist and client moments are paired one-to-one by an optimal matching: the largest "
        "number of pairs, then the smallest total |lag|. Two moments may pair when the gap "
        "between them is at most the tolerance (points: |t_client - t_therapist| <= tolerance; "
        "spans: overlapping, touching or at most the tolerance apart). Exactly the tolerance "
        "apart pairs; 1 ms more does not."
    ),
    "lag_ms": (
        "Client start minus therapist start of a pair, in ms (positive: the therapist stopped "
        "first). Lag medians are of the pairs; |lag| IQR uses linear interpolation; medians "
        "are rounded half-up to whole ms."
    ),
    "co_marking_rate": (
        "Headline agreement: 2P / (n_therapist + n_client), P the number of pairs within the "
        "tolerance; the share of all moments whose partner stopped within the tolerance (Dice "
        "coefficient). null when both lanes are empty."
    ),
    "chance_baseline": (
        "The client lane is circularly shifted by s ms, s drawn uniformly from the integers "
        "0 .. duration - 1 (NumPy default_rng(seed)), n_shifts times. A shifted point moment "
        "is at (t + s) mod duration; a span keeps its length, so a span moved near the end may "
        "reach past the end (it is not cut or wrapped). Shifts near zero are drawn like any "
        "other and leave the lanes nearly aligned. For each shift the pairs of a maximum "
        "matching at the tolerance are counted; distances across the wrap point are not "
        "counted. expected_rate = mean shifted co-marking rate, sd_rate its population SD, "
        "p_value = (1 + #{shifted pairs >= observed pairs}) / (1 + n_shifts), one-sided. "
        "null with an empty lane."
    ),
    "time_unit_kappa": (
        "Cohen's kappa on time units (Bakeman & Quera's time-unit kappa): [0, duration) is cut "
        "into ceil(duration / bin_ms) bins (the last may be shorter). In each lane a bin is "
        "marked when a point moment falls in it or a span [start, end) overlaps it; a moment "
        "at the very end counts in the last bin. p_o = share of bins on which the lanes agree "
        "(both marked or both unmarked), p_T and p_C = each lane's share of marked bins, "
        "p_e = p_T p_C + (1 - p_T)(1 - p_C), kappa = (p_o - p_e) / (1 - p_e); null when "
        "p_e = 1. It ignores the tolerance, so a near miss across a bin edge is disagreement, "
        "and it depends on the bin width. It is neither ELAN's nor BORIS's agreement measure."
    ),
    "per_code": (
        "Per code: moments of each lane carrying it, and pairs in which both moments carry it."
    ),
    "coder_agreement": (
        "For two coding layers of the same lane (two researchers, or a researcher and the "
        "participant's own codes) and each code c: each layer's moments carrying c are matched "
        "as above at the tolerance; co-marking = 2 pairs / (n_a + n_b) (null when neither used "
        "c) and the time-unit kappa on those moments at bin_ms. The '(any code)' row uses the "
        "moments each layer gave any code. A researcher's layer holds the participant moments "
        "that researcher coded, at those moments' times."
    ),
    "synchrony": (
        "Nonverbal synchrony: windowed, lagged cross-correlation of the two motion-energy "
        "series as rMEA's MEAccf computes it: windows of window_s every step_s, lags "
        "-max_lag_s .. +max_lag_s in samples (positive: the right person follows the left), "
        "Pearson r per window and lag, then Fisher z (capped at +-10) and absolute values; "
        "grand_mean = mean over windows and lags. Surrogates: each person's series cut into "
        "segment_s segments put in a new random order independently (seed), n surrogates; "
        "p_value = (1 + #{surrogate >= observed}) / (1 + n)."
    ),
    "interview_segment": (
        "A stop's stretch of the recall interview audio runs from the first pause or mark at "
        "that moment (logged with both clocks: interview-audio time and video time) to the next "
        "play, or to the end of the audio. A transcript utterance belongs to the stop whose "
        "stretch contains its start (start inclusive, end exclusive); utterances between stops "
        "belong to none. Times of both are ms on the interview audio, not on the video."
    ),
    "interview_time_origin": (
        "The interview audio and the session video run together only while the video plays "
        "during the interview; at a stop the video stands still and the conversation goes on. "
        "time_origin_ms = audio_ms - video_ms of the first play event: the interview-audio time "
        "of video time 0 in that first stretch, given to ELAN as the interview medium's "
        "TIME_ORIGIN. Later stretches are shifted by the time spent at earlier stops, so each "
        "stop's own stretch is given as interview-audio times (interview_audio_start_ms, "
        "interview_audio_end_ms). null when the first play began further into the video than "
        "into the audio (ELAN takes no negative offset) or the video never played."
    ),
}


def _recordings(data: ExportStudy, recording_id: int | str | None) -> list[dict[str, Any]]:
    out = []
    for ctx in data.recordings():
        rec = ctx.recording
        if recording_id is not None and rec.id != recording_id:
            continue
        out.append(
            {
                "dyad": ctx.dyad.code,
                "session": rec.session_label,
                "recording_id": rec.id,
                "duration_ms": rec.duration_ms,
                "recall": {
                    lane: _with_interview(info, rec.interviews.get(lane))
                    for lane, info in rec.recall.items()
                },
                "figures": {k: _finite(v) for k, v in sorted(rec.figures.items())},
                "coder_agreement": dict(rec.coder_agreement),
            }
        )
    return out


def _with_interview(info: Mapping[str, Any], media: Any) -> dict[str, Any]:
    """A lane's recall info, plus its interview audio when one was attached."""
    out = dict(info)
    if media is not None:
        out["interview"] = {
            "media_filename": media.media_filename,
            "duration_ms": media.duration_ms,
            "time_origin_ms": media.time_origin_ms,
            "segments": media.segments,
            "transcript_utterances": media.utterances,
        }
    return out


def scales(data: ExportStudy) -> list[dict[str, Any]]:
    """The study's rating scales as the JSON export and the provenance write them."""
    return [
        {
            "key": s.key,
            "name": s.name,
            "min": s.min,
            "max": s.max,
            "labels": {str(k): v for k, v in sorted(s.labels.items())},
        }
        for s in data.scales
    ]


def document(data: ExportStudy, *, recording_id: int | str | None = None) -> dict[str, Any]:
    """The provenance block (JSON-ready); with `recording_id`, that recording's part only."""
    prov = data.provenance
    return {
        "software": dict(prov.software),
        "exported_at": data.exported_at.isoformat(timespec="seconds"),
        "parameters": {k: dict(v) for k, v in prov.parameters.items()},
        "definitions": dict(DEFINITIONS),
        "study": {
            "name": data.name,
            "language": prov.language,
            "instructions": prov.instructions,
            "codebook": [
                {
                    "key": c.key,
                    "name": c.name,
                    "description": c.description,
                    "shortcut": c.shortcut,
                }
                for c in data.codebook
            ],
            "scales": scales(data),
        },
        "recordings": _recordings(data, recording_id),
    }


def _value(value: Any) -> str:
    """Strings as they are (one line), everything else as JSON (null, numbers, lists)."""
    if isinstance(value, str) and "\n" not in value and "\r" not in value:
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def rows(data: ExportStudy, *, recording_id: int | str | None = None) -> list[tuple[str, str]]:
    """The document as (dotted key, value) rows, in a fixed order; for sheets and headers."""
    doc = document(data, recording_id=recording_id)
    out: list[tuple[str, str]] = [
        *((f"software.{k}", _value(v)) for k, v in doc["software"].items()),
        ("exported_at", doc["exported_at"]),
    ]
    for group, params in doc["parameters"].items():
        out += [(f"parameters.{group}.{k}", _value(v)) for k, v in params.items()]
    out += [(f"definition.{k}", v) for k, v in doc["definitions"].items()]
    study = doc["study"]
    out += [
        ("study.name", _value(study["name"])),
        ("study.language", _value(study["language"])),
        ("study.instructions", _value(study["instructions"])),
    ]
    out += [(f"codebook.{c['key']}", _value(_without(c, "key"))) for c in study["codebook"]]
    out += [(f"scale.{s['key']}", _value(_without(s, "key"))) for s in study["scales"]]
    for rec in doc["recordings"]:
        where = f"recording.{rec['dyad']}/{rec['session']}"
        out.append((f"{where}.recording_id", _value(rec["recording_id"])))
        out += [(f"{where}.recall.{lane}", _value(info)) for lane, info in rec["recall"].items()]
        out += [(f"{where}.figure.{k}", _value(v)) for k, v in rec["figures"].items()]
        if rec["coder_agreement"]:
            out.append((f"{where}.coder_agreement", _value(rec["coder_agreement"])))
    return out


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: an undefined figure is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _without(item: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != key}
