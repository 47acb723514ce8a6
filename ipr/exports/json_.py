"""JSON export: everything in the data model, under a versioned schema (`schema_v1.json`).

Analysis scripts rely on the shape, so any change to it bumps `SCHEMA_VERSION` and ships a new
schema file; the document names its schema so old files stay readable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from importlib import resources

from ipr.exports import provenance
from ipr.exports.data import ExportDyad, ExportMoment, ExportRecording, ExportStudy

FORMAT_NAME = "ipr-annotator-export"
SCHEMA_VERSION = 1


def schema() -> dict:
    """The JSON Schema (draft 2020-12) that every document of this version validates against."""
    text = resources.files("ipr.exports").joinpath("schema_v1.json").read_text("utf-8")
    return json.loads(text)


def _number(value: float) -> float | int | None:
    """JSON has no NaN or infinity: an undefined figure (e.g. kappa of an empty lane) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _followup(moment: ExportMoment, include_text: bool) -> dict | None:
    fu = moment.followup
    if fu is None:
        return None
    return {
        "phase": "followup",
        "ratings": dict(sorted(fu.ratings.items())),
        "comment": fu.comment if include_text else None,
        "at": fu.at,
    }


def _moment(
    moment: ExportMoment, include_text: bool, kinds: dict[str, str], followup: bool = False
) -> dict:
    extra = {"followup": _followup(moment, include_text)} if followup else {}
    return {
        "id": moment.id,
        "lane": moment.lane,
        "participant_code": moment.participant_code,
        "t_ms": moment.t_ms,
        "end_ms": moment.end_ms,
        "peaks_ms": list(moment.peaks_ms),
        "text": moment.text if include_text else None,
        "codes": list(moment.codes),
        "ratings": dict(sorted(moment.ratings.items())),
        "researcher_codes": list(moment.researcher_codes),
        "researcher_note": moment.researcher_note if include_text else None,
        "codings": [
            {
                "coder": c.coder,
                "codes": list(c.codes),
                "note": c.note if include_text else None,
            }
            for c in sorted(moment.codings, key=lambda c: c.coder)
        ],
        "voice_note": moment.voice_note,
        "imported_from": moment.imported_from or None,
        "matched_moment_id": moment.matched_moment_id,
        "lag_ms": moment.lag_ms,
        "phase": moment.phase,
        "responds_to_id": moment.responds_to_id,
        "corrected_at": moment.corrected_at,
        "interview_transcript": [
            {"start_ms": start, "end_ms": end, "text": said if include_text else None}
            for start, end, said in moment.interview_transcript
        ],
        "interview_audio_start_ms": moment.interview_audio_start_ms,
        "interview_audio_end_ms": moment.interview_audio_end_ms,
        **extra,
        **_answers(moment, kinds, include_text),
    }


def _answers(moment: ExportMoment, kinds: dict[str, str], include_text: bool) -> dict:
    """`prompt_answers` when the study has prompts: a rating as its number, a free-text answer
    null when texts are left out (absent otherwise, so older documents keep their shape)."""
    if not kinds:
        return {}
    out: dict[str, object] = {}
    for key, value in sorted(moment.prompt_answers.items()):
        kind = kinds.get(key, "text")
        if kind == "scale" and value.lstrip("-").isdigit():
            out[key] = int(value)
        else:
            out[key] = value if include_text or kind != "text" else None
    return {"prompt_answers": out}


def _recording(
    recording: ExportRecording, include_text: bool, kinds: dict[str, str], followup: bool = False
) -> dict:
    return {
        "id": recording.id,
        "session_label": recording.session_label,
        "media_filename": recording.media_filename,
        "duration_ms": recording.duration_ms,
        "fps": recording.fps,
        "clips": [
            {"index": c.index, "start_ms": c.start_ms, "end_ms": c.end_ms} for c in recording.clips
        ],
        "moments": [_moment(m, include_text, kinds, followup) for m in recording.sorted_moments()],
        "pairs": [
            {
                "therapist_moment_id": p.therapist_moment_id,
                "client_moment_id": p.client_moment_id,
                "lag_ms": p.lag_ms,
            }
            for p in recording.pairs
        ],
        "figures": {k: _number(v) for k, v in sorted(recording.figures.items())},
        "interviews": {
            lane: {
                "media_filename": media.media_filename,
                "duration_ms": media.duration_ms,
                "time_origin_ms": media.time_origin_ms,
            }
            for lane, media in sorted(recording.interviews.items())
        },
    }


def _dyad(d: ExportDyad, include_text: bool, kinds: dict[str, str], followup: bool = False) -> dict:
    return {
        "code": d.code,
        "therapist_code": d.therapist_code,
        "client_code": d.client_code,
        "recordings": [_recording(r, include_text, kinds, followup) for r in d.recordings],
    }


def to_document(data: ExportStudy, *, include_text: bool = True) -> dict:
    """The export as plain JSON-ready data (what `to_json` serialises)."""
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "include_text": include_text,
        "provenance": provenance.document(data),
        "study": {
            "name": data.name,
            "codebook": [
                {
                    "key": c.key,
                    "name": c.name,
                    "colour": c.colour,
                    "shortcut": c.shortcut,
                    "description": c.description,
                }
                for c in data.codebook
            ],
            "scales": provenance.scales(data),
            **(
                {
                    "prompts": [
                        {"key": p.key, "question": p.question, "kind": p.kind} for p in data.prompts
                    ]
                }
                if data.prompts
                else {}
            ),
            "dyads": [
                _dyad(d, include_text, _kinds(data), data.followup_scales is not None)
                for d in data.dyads
            ],
        },
    }


def _kinds(data: ExportStudy) -> dict[str, str]:
    return {p.key: p.kind for p in data.prompts}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def iter_json(data: ExportStudy, *, include_text: bool = True) -> Iterator[bytes]:
    """`to_json`'s bytes in chunks, one dyad at a time (a study's export is streamed)."""
    head = to_document(replace(data, dyads=()), include_text=include_text)
    head["provenance"] = provenance.document(data)  # of every recording, not of the empty head
    text = _dumps(head)
    assert text.endswith('"dyads":[]}}')
    yield text[: -len("]}}")].encode()
    for i, dyad in enumerate(data.dyads):
        fu = data.followup_scales is not None
        yield (("," if i else "") + _dumps(_dyad(dyad, include_text, _kinds(data), fu))).encode()
    yield b"]}}\n"


def to_json(data: ExportStudy, *, include_text: bool = True) -> bytes:
    """The whole export as compact UTF-8 JSON with a stable key order.

    Compact because Python's indenting encoder is ten times slower on a large study; any JSON
    viewer or `python -m json.tool` pretty-prints it. Written a dyad at a time (`iter_json`, the
    same bytes), so a large study's document never exists as one tree of Python objects.
    """
    return b"".join(iter_json(data, include_text=include_text))
