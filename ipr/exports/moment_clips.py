"""Moment clips: a ZIP with one short MP4 per moment, with pre- and post-roll, metadata stripped.

Researchers take these into a consensus meeting or a qualitative analysis tool. Entry names
carry only pseudonymous codes and the time (`<dyad>_<session>_<lane>_<HHhMMmSSs>_<id>.mp4`);
every MP4 comes from `ipr.media.clips.cut_clip`, so it is stripped like every derived file.
Entries have a fixed date and order, and the MP4s are bit-exact, so the same moments give the
same ZIP.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import zipfile
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ipr.exports import provenance
from ipr.exports.data import ExportDataError, RecordingContext, format_timecode, safe_name
from ipr.media.clips import cut_clip, video_packets

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
DEFAULT_PRE_ROLL_MS = 5000
DEFAULT_POST_ROLL_MS = 5000
MAX_ROLL_MS = 600_000
APP_KEYFRAME_SLACK_MS = 2000
"""The app's default slack: ingest puts a keyframe every 2 s, so every clip can be copied
(re-encoding ran at 0.7× realtime against 26× for copying in bench/moment_clips.py)."""
INDEX_NAME = "clips.csv"
PROVENANCE_NAME = "provenance.json"


@dataclass(frozen=True)
class PlannedClip:
    """Where one moment's clip starts and ends in the recording, and its name in the ZIP."""

    name: str
    moment_id: int
    lane: str
    participant_code: str
    t_ms: int
    end_ms: int | None
    clip_start_ms: int
    clip_end_ms: int
    text: str

    @property
    def duration_ms(self) -> int:
        return self.clip_end_ms - self.clip_start_ms


def clip_name(ctx: RecordingContext, lane: str, t_ms: int, moment_id: int) -> str:
    """`<dyad>_<session>_<lane>_<HHhMMmSSs>_<id>.mp4`: sorts by session, then lane, then time."""
    hours, rest = divmod(t_ms // 1000, 3600)
    minutes, seconds = divmod(rest, 60)
    dyad, session = safe_name(ctx.dyad.code), safe_name(ctx.recording.session_label)
    return f"{dyad}_{session}_{lane}_{hours:02d}h{minutes:02d}m{seconds:02d}s_{moment_id}.mp4"


def plan_clips(
    ctx: RecordingContext,
    *,
    pre_roll_ms: int = DEFAULT_PRE_ROLL_MS,
    post_roll_ms: int = DEFAULT_POST_ROLL_MS,
    keyframes_ms: Sequence[int] = (),
    keyframe_slack_ms: int = 0,
) -> list[PlannedClip]:
    """One clip per moment: [t − pre-roll, end + post-roll], kept inside the recording.

    With `keyframe_slack_ms` > 0 a clip may start up to that much earlier, on a keyframe, so it
    is cut by stream copy (fast, no re-encoding) instead of re-encoded; it never starts later.
    """
    for name, value in (("pre-roll", pre_roll_ms), ("post-roll", post_roll_ms)):
        if not isinstance(value, int) or not 0 <= value <= MAX_ROLL_MS:
            raise ExportDataError(f"{name} must be 0 to {MAX_ROLL_MS} ms, got {value!r}")
    if not isinstance(keyframe_slack_ms, int) or keyframe_slack_ms < 0:
        raise ExportDataError(f"keyframe slack must be ≥ 0 ms, got {keyframe_slack_ms!r}")
    duration = ctx.recording.duration_ms
    keys = sorted(keyframes_ms)
    out = []
    for m in ctx.recording.sorted_moments():
        start = max(0, m.t_ms - pre_roll_ms)
        end = min(duration, (m.end_ms if m.end_ms is not None else m.t_ms) + post_roll_ms)
        if keyframe_slack_ms and keys:
            i = bisect_right(keys, start) - 1
            if i >= 0 and start - keys[i] <= keyframe_slack_ms:
                start = keys[i]
        if end <= start:
            raise ExportDataError(
                f"moment {m.id}: at {m.t_ms} ms it lies at or after the recording's end "
                f"({duration} ms), so no clip can be cut"
            )
        out.append(
            PlannedClip(
                name=clip_name(ctx, m.lane, m.t_ms, m.id),
                moment_id=m.id,
                lane=m.lane,
                participant_code=m.participant_code,
                t_ms=m.t_ms,
                end_ms=m.end_ms,
                clip_start_ms=start,
                clip_end_ms=end,
                text=m.text,
            )
        )
    return out


def _index(planned: Iterable[PlannedClip], include_text: bool) -> bytes:
    """clips.csv: which moment each file shows and where it sits in the recording."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    head = ["file", "moment_id", "lane", "participant", "start_ms", "end_ms"]
    head += ["clip_start_ms", "clip_end_ms", "clip_start_tc"]
    writer.writerow(head + (["text"] if include_text else []))
    for p in planned:
        row = [p.name, p.moment_id, p.lane, p.participant_code, p.t_ms]
        row += ["" if p.end_ms is None else p.end_ms, p.clip_start_ms, p.clip_end_ms]
        row.append(format_timecode(p.clip_start_ms))
        if include_text:
            row.append(p.text)
        writer.writerow(row)
    return ("\ufeff" + buffer.getvalue()).encode()


def _entry(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, content)


def write_moment_clips(
    recordings: Sequence[tuple[RecordingContext, Path]],
    dst: Path,
    *,
    pre_roll_ms: int = DEFAULT_PRE_ROLL_MS,
    post_roll_ms: int = DEFAULT_POST_ROLL_MS,
    keyframe_slack_ms: int = 0,
    include_text: bool = True,
) -> list[PlannedClip]:
    """Write the ZIP of every moment of these (recording, playable copy) pairs to `dst`.

    The ZIP holds the clips (stored: MP4 does not compress further), `clips.csv` and
    `provenance.json`; the CSV's `text` column is left out with `include_text=False`.
    Returns what was written.
    """
    written: list[PlannedClip] = []
    studies = []
    with (
        tempfile.TemporaryDirectory(prefix="ipr-moment-clips-") as tmp,
        zipfile.ZipFile(dst, "w") as archive,
    ):
        for ctx, playable in recordings:
            studies.append(ctx.study)
            packets = video_packets(playable)
            keys = [t for t, key in packets if key]
            planned = plan_clips(
                ctx,
                pre_roll_ms=pre_roll_ms,
                post_roll_ms=post_roll_ms,
                keyframes_ms=keys,
                keyframe_slack_ms=keyframe_slack_ms,
            )
            for p in planned:
                part = Path(tmp) / "clip.mp4"
                cut_clip(playable, part, p.clip_start_ms, p.clip_end_ms, packets=packets)
                info = zipfile.ZipInfo(p.name, date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                with part.open("rb") as src, archive.open(info, "w") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                part.unlink()
            written.extend(planned)
        _entry(archive, INDEX_NAME, _index(written, include_text))
        if studies:
            document = provenance.document(studies[0])
            _entry(archive, PROVENANCE_NAME, json.dumps(document, indent=2).encode() + b"\n")
    return written
