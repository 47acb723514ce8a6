"""The long-format moment table shared by the CSV and XLSX exports (one row per moment).

Both formats list the same columns in the same order so a researcher can switch between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from ipr.exports.data import ExportMoment, ExportStudy, RecordingContext, format_timecode

LIST_SEPARATOR = ";"


@dataclass(frozen=True)
class Column:
    """One column: its header, its kind ("text", "int", "ms", "flag") and what it holds."""

    name: str
    kind: str
    description: str
    free_text: bool = False


BASE_COLUMNS: tuple[Column, ...] = (
    Column("study", "text", "Study name."),
    Column("dyad", "text", "Dyad code."),
    Column("session", "text", "Session label of the recording."),
    Column("recording_id", "int", "Recording identifier in the app."),
    Column("lane", "text", "`therapist` or `client`: whose recall the moment is."),
    Column("participant", "text", "Pseudonymous participant code (e.g. T05, C05)."),
    Column("moment_id", "int", "Moment identifier in the app."),
    Column(
        "start_ms", "int", "Moment time (a point) or span start, ms from the playable copy's start."
    ),
    Column("end_ms", "int", "Span end in ms; empty for a point moment."),
    Column("start_tc", "ms", "start_ms as HH:MM:SS.mmm (CSV) or an Excel time (XLSX)."),
    Column("end_tc", "ms", "end_ms as HH:MM:SS.mmm or an Excel time; empty for a point."),
    Column("peaks_ms", "text", "Peaks of a span in ms, separated by ';'."),
    Column("text", "text", "What the participant said happened / experienced.", free_text=True),
    Column("codes", "text", "The participant's codes (codebook keys), separated by ';'."),
)

TAIL_COLUMNS: tuple[Column, ...] = (
    Column(
        "coder",
        "text",
        "The researcher whose codes and note this row holds (a moment coded by several "
        "researchers has one row per coder); empty when no researcher coded the moment.",
    ),
    Column("researcher_codes", "text", "Codes this coder assigned, separated by ';'."),
    Column("researcher_note", "text", "This coder's note on the moment.", free_text=True),
    Column("voice_note", "flag", "1 if the participant recorded a voice note, else 0."),
    Column(
        "imported_from",
        "text",
        "`<format>:<file name>` when the moment was imported from a file; empty when entered.",
    ),
    Column("matched_moment_id", "int", "The moment in the other lane matched with this one."),
    Column("lag_ms", "int", "Client time minus therapist time of the matched pair, in ms."),
    Column("clip", "int", "Index of the clip holding start_ms."),
)

PHASE_COLUMNS: tuple[Column, ...] = (
    Column(
        "phase",
        "text",
        "`blind` (marked before the reveal) or `response` (after it; never counted in a figure).",
    ),
    Column("responds_to_id", "int", "The other lane's moment a response answers."),
    Column(
        "corrected_at", "text", "When a researcher corrected this blind moment after the reveal."
    ),
)

INTERVIEW_COLUMNS: tuple[Column, ...] = (
    Column(
        "interview_audio_start_ms",
        "int",
        "Start of this stop's stretch of the recall interview audio, ms on the interview audio "
        "(the pause or mark at the moment); empty without an interview.",
    ),
    Column(
        "interview_audio_end_ms",
        "int",
        "End of that stretch (the next play, or the end of the audio), ms on the interview audio.",
    ),
    Column(
        "interview_transcript",
        "text",
        "What was said at this stop: the transcript's utterances whose start falls in the "
        "stretch, one per line as `[HH:MM:SS.mmm] text` (interview-audio time).",
        free_text=True,
    ),
)

RATING_PREFIX = "rating_"
PROMPT_PREFIX = "prompt_"
FOLLOWUP_PREFIX = "followup_rating_"


def columns(study: ExportStudy, *, include_text: bool = True) -> list[Column]:
    """The column list for a study: base columns, one `rating_<key>` per scale, the tail, the
    phase and interview columns, the follow-up columns when the study has a follow-up pass, and
    one `prompt_<key>` per interview prompt when the study has prompt answers."""
    ratings = [
        Column(RATING_PREFIX + s.key, "int", f"Rating on scale '{s.name}' ({s.min}–{s.max}).")
        for s in study.scales
    ]
    asked = [
        Column(
            PROMPT_PREFIX + p.key,
            "int" if p.kind == "scale" else "text",
            f"Answer to the interview prompt '{p.question}' ({p.kind}).",
            free_text=p.kind == "text",
        )
        for p in study.prompts
    ]
    every = [
        *BASE_COLUMNS,
        *ratings,
        *TAIL_COLUMNS,
        *PHASE_COLUMNS,
        *INTERVIEW_COLUMNS,
        *followup_columns(study),
        *asked,
    ]
    return [c for c in every if include_text or not c.free_text]


def followup_columns(study: ExportStudy) -> list[Column]:
    """The follow-up pass's columns (phase "followup"), only for a study that has one."""
    if study.followup_scales is None:
        return []
    names = {s.key: s for s in study.scales}
    return [
        *(
            Column(
                FOLLOWUP_PREFIX + key,
                "int",
                f"Follow-up rating on scale '{names[key].name}' ({names[key].min}–"
                f"{names[key].max}): the participant's second rating of this blind moment.",
            )
            for key in study.followup_scales
            if key in names
        ),
        Column("followup_comment", "text", "The participant's follow-up comment.", free_text=True),
        Column("followup_at", "text", "When the follow-up rating was last saved (UTC)."),
    ]


def followup_values(
    study: ExportStudy, moment: ExportMoment, *, include_text: bool = True
) -> list[tuple[str, str]]:
    """A moment's follow-up as (column, value) pairs in the table's own names and order
    (`followup_rating_<key>`…, `followup_comment`): what the EAF and TextGrid follow-up tiers
    hold. Empty when the study has no follow-up pass or the moment was not rated again; the
    comment is left out without free text, and when empty."""
    fu = moment.followup
    if study.followup_scales is None or fu is None:
        return []
    names = {s.key for s in study.scales}
    out = [
        (FOLLOWUP_PREFIX + key, str(fu.ratings[key]))
        for key in study.followup_scales
        if key in names and key in fu.ratings
    ]
    if include_text and fu.comment.strip():
        out.append(("followup_comment", fu.comment))
    return out


def join_list(values: tuple[str, ...] | tuple[int, ...]) -> str:
    return LIST_SEPARATOR.join(map(str, values)) if values else ""


def moment_values(ctx: RecordingContext, moment: ExportMoment) -> dict[str, object]:
    """Every column's value for one moment: ints stay ints, missing values are None."""
    values: dict[str, object] = {
        "study": ctx.study.name,
        "dyad": ctx.dyad.code,
        "session": ctx.recording.session_label,
        "recording_id": ctx.recording.id,
        "lane": moment.lane,
        "participant": moment.participant_code,
        "moment_id": moment.id,
        "start_ms": moment.t_ms,
        "end_ms": moment.end_ms,
        "start_tc": moment.t_ms,
        "end_tc": moment.end_ms,
        "peaks_ms": join_list(moment.peaks_ms),
        "text": moment.text,
        "codes": join_list(moment.codes),
        "coder": moment.coder,
        "researcher_codes": join_list(moment.researcher_codes),
        "researcher_note": moment.researcher_note,
        "voice_note": 1 if moment.voice_note else 0,
        "imported_from": moment.imported_from,
        "matched_moment_id": moment.matched_moment_id,
        "lag_ms": moment.lag_ms,
        "clip": ctx.recording.clip_at(moment.t_ms),
        "phase": moment.phase,
        "responds_to_id": moment.responds_to_id,
        "corrected_at": moment.corrected_at,
        "interview_audio_start_ms": moment.interview_audio_start_ms,
        "interview_audio_end_ms": moment.interview_audio_end_ms,
        "interview_transcript": transcript_text(moment),
    }
    for scale in ctx.study.scales:
        values[RATING_PREFIX + scale.key] = moment.ratings.get(scale.key)
    if ctx.study.followup_scales is not None:
        fu = moment.followup
        for key in ctx.study.followup_scales:
            values[FOLLOWUP_PREFIX + key] = fu.ratings.get(key) if fu else None
        values["followup_comment"] = fu.comment if fu else None
        values["followup_at"] = fu.at if fu else None
    for prompt in ctx.study.prompts:
        answer = moment.prompt_answers.get(prompt.key)
        if prompt.kind == "scale" and answer is not None and answer.lstrip("-").isdigit():
            values[PROMPT_PREFIX + prompt.key] = int(answer)
        else:
            values[PROMPT_PREFIX + prompt.key] = answer
    return values


def transcript_text(moment: ExportMoment) -> str:
    """The moment's interview utterances, one per line: `[HH:MM:SS.mmm] text`."""
    if not moment.interview_transcript:
        return ""
    return "\n".join(
        f"[{format_timecode(start)}] {said}" for start, _, said in moment.interview_transcript
    )


def iter_table(study: ExportStudy, cols: list[Column]) -> Iterator[list[object]]:
    """Every row's values (`moment_values`) in the order of `cols`, row by row."""
    for ctx, moment in iter_rows(study):
        values = moment_values(ctx, moment)
        yield [values[c.name] for c in cols]


def table_rows(study: ExportStudy, cols: list[Column]) -> list[list[object]]:
    """`iter_table` as a list: a bundle makes the rows once for both its CSV and its XLSX."""
    return list(iter_table(study, cols))


def iter_rows(study: ExportStudy) -> Iterator[tuple[RecordingContext, ExportMoment]]:
    """Every moment of the study in export order: recordings as given, moments by time.

    A moment coded by several researchers gives one row per coder (coders by name), each row
    holding that coder's codes and note only, so coders stay apart; count moments by moment_id.
    """
    for ctx in study.recordings():
        for moment in ctx.recording.sorted_moments():
            if not moment.codings:
                yield ctx, moment
                continue
            for coding in sorted(moment.codings, key=lambda c: c.coder):
                yield (
                    ctx,
                    replace(
                        moment,
                        coder=coding.coder,
                        researcher_codes=coding.codes,
                        researcher_note=coding.note,
                    ),
                )
