"""WebVTT and SRT: each lane's moments as captions that play over the video.

A point moment shows for `POINT_CAPTION_MS` (3 s, cut at the end of the recording) so it can be
read; a point at the very end shows for the last `MIN_CAPTION_MS` (1 s), ending at the end.
Therapist captions sit at the top of the picture and client captions at the bottom, so
moments that overlap in time stay readable.
"""

from __future__ import annotations

from ipr.exports import provenance
from ipr.exports.data import ExportMoment, RecordingContext, format_timecode

POINT_CAPTION_MS = 3000
MIN_CAPTION_MS = 1000
TOP_LANE = "therapist"


def caption_span(ctx: RecordingContext, moment: ExportMoment) -> tuple[int, int]:
    """Start and end of the caption: the span itself, or a few seconds for a point.

    A point caption is cut at the end of the recording; one that would then last less than
    `MIN_CAPTION_MS` (a point in the last second, or at the very end) starts earlier, so it
    still shows for `MIN_CAPTION_MS` and ends at the end."""
    if moment.end_ms is not None and moment.end_ms > moment.t_ms:
        return moment.t_ms, moment.end_ms
    start, end = moment.t_ms, moment.t_ms + POINT_CAPTION_MS
    duration = ctx.recording.duration_ms
    if duration > 0 and end > duration:
        end = max(duration, moment.t_ms)
        if end - start < MIN_CAPTION_MS:
            start = max(0, end - MIN_CAPTION_MS)
            end = max(end, start + 1)
    return start, end


def caption_lines(ctx: RecordingContext, moment: ExportMoment, include_text: bool) -> list[str]:
    """First line: participant code, codes, ratings and, for a response, what it answers; then
    the text without blank lines."""
    head = [moment.participant_code]
    if moment.codes:
        head.append(", ".join(moment.codes))
    ratings = [
        f"{s.key} {moment.ratings[s.key]}" for s in ctx.study.scales if s.key in moment.ratings
    ]
    if ratings:
        head.append(", ".join(ratings))
    if moment.phase == "response":
        other = ctx.recording.answered(moment)
        head.append(
            f"response to {other.participant_code} at {format_timecode(other.t_ms)}"
            if other is not None
            else "after the reveal"
        )
    lines = [" · ".join(head)]
    if include_text:
        lines.extend(line.strip() for line in moment.text.splitlines() if line.strip())
    return lines


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """A WebVTT file: a NOTE with the provenance, then one cue per moment, id
    `<lane>-<moment id>`, voice = participant code."""
    out = ["WEBVTT", "", "NOTE provenance (ipr.exports.provenance)"]
    # A NOTE block ends at a blank line and may not hold "-->"; provenance values are one line.
    rows = provenance.rows(ctx.study, recording_id=ctx.recording.id)
    out += [f"{key}: {value}".replace("-->", "->") for key, value in rows]
    out.append("")
    for moment in ctx.recording.sorted_moments():
        start, end = caption_span(ctx, moment)
        settings = " line:5%" if moment.lane == TOP_LANE else ""
        out.append(f"{moment.lane}-{moment.id}")
        out.append(f"{format_timecode(start)} --> {format_timecode(end)}{settings}")
        voice = _vtt_escape(moment.participant_code)
        out.extend(
            f"<v {voice}>{_vtt_escape(line)}</v>"
            for line in caption_lines(ctx, moment, include_text)
        )
        out.append("")
    return "\n".join(out).encode("utf-8")


def _srt_time(ms: int) -> str:
    return format_timecode(ms).replace(".", ",")


def to_srt(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """SubRip captions; therapist cues carry `{\\an8}` (top of the picture in VLC and mpv)."""
    out: list[str] = []
    for number, moment in enumerate(ctx.recording.sorted_moments(), start=1):
        start, end = caption_span(ctx, moment)
        lines = caption_lines(ctx, moment, include_text)
        if moment.lane == TOP_LANE:
            lines[0] = "{\\an8}" + lines[0]
        out.extend([str(number), f"{_srt_time(start)} --> {_srt_time(end)}", *lines, ""])
    return "\n".join(out).encode("utf-8")
