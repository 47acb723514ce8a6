"""Database rows → `ipr.exports.data.ExportStudy`, for a recording, a dyad or a whole study.

The exporters are pure functions of plain data; this module is the one place that reads the
rows they need, so the UI, the API and the CLI export exactly the same thing. Only participant
codes leave the database (never names, e-mails or upload file names), only moments that are not
deleted, and pairs and figures are the ones the worker stored at the study's tolerance
(`ipr.figures`, blind-phase moments only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, NamedTuple

from sqlalchemy import Text, cast, insert, select
from sqlalchemy.orm import Session, selectinload

from ipr import audit, collector, followup, jobs, prompts, recall
from ipr import figures as figures_layer
from ipr import interview as interview_domain
from ipr.errors import IPRError, NotFound, ValidationError
from ipr.exports import FORMATS, ImportedMoment, ImportValidationError, import_csv, to_bundle
from ipr.exports.csv_ import iter_csv
from ipr.exports.data import (
    Clip,
    Code,
    Coding,
    ExportDataError,
    ExportDyad,
    ExportError,
    ExportMoment,
    ExportRecording,
    ExportStudy,
    FollowUpRating,
    InterviewMedia,
    Pair,
    Prompt,
    Provenance,
    Scale,
    safe_name,
)
from ipr.exports.imports import ImportTooLarge as ImportTooManyRows
from ipr.exports.imports import ImportUnreadable as ImportUnreadableFile
from ipr.exports.imports import eaf_tier_names
from ipr.exports.json_ import iter_json
from ipr.exports.moment_clips import (
    DEFAULT_POST_ROLL_MS,
    DEFAULT_PRE_ROLL_MS,
    ZIP_DATE,
    write_moment_clips,
)
from ipr.exports.motion_series import MOTION_FORMATS
from ipr.exports.peers import HEAD_BYTES, import_eaf_lane
from ipr.exports.peers import Choice as PeerChoice
from ipr.exports.peers import choices as peer_choices
from ipr.exports.peers import detect as detect_format
from ipr.exports.peers import moments as peer_moments
from ipr.media.errors import MediaError
from ipr.models import (
    Dyad,
    FollowUp,
    InterviewAudio,
    InterviewUtterance,
    Job,
    Moment,
    MomentRevision,
    Participant,
    PromptAnswer,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    Study,
    User,
    VoiceNote,
    utcnow,
)
from ipr.models import (
    FollowUpRating as FollowUpRow,
)
from ipr.motion import MotionSettings
from ipr.storage import Storage
from ipr.synchrony import surrogate_baseline, synchrony

# Figures copied from the stored figure set (ipr.figures) into every export
# (docs/exports.md, figures).
FIGURE_FIELDS = (
    "tolerance_ms",
    "n_therapist",
    "n_client",
    "n_pairs",
    "co_marking_rate",
    "therapist_matched_share",
    "client_matched_share",
    "therapist_first",
    "client_first",
    "simultaneous",
    "lag_median_ms",
    "abs_lag_median_ms",
    "abs_lag_iqr_ms",
    "abs_lag_mad_ms",
)


def media_filename(dyad: Dyad, recording: Recording) -> str:
    """A pseudonymous name for the playable copy: the upload's own name may identify someone."""
    return f"{safe_name(dyad.code)}_{safe_name(recording.session_label)}.mp4"


def study_for_recording(
    db: Session, recording: Recording, *, exported_at: dt.datetime
) -> ExportStudy:
    """A study holding only this recording (what per-recording formats need)."""
    return _build(db, recording.dyad.study, [(recording.dyad, [recording])], exported_at)


def study_for_dyad(db: Session, dyad: Dyad, *, exported_at: dt.datetime) -> ExportStudy:
    return _build(db, dyad.study, [(dyad, _ready(dyad.recordings))], exported_at)


def study_for_study(db: Session, study: Study, *, exported_at: dt.datetime) -> ExportStudy:
    """The whole study in a fixed number of statements, whatever its size."""
    dyads = db.scalars(
        select(Dyad)
        .where(Dyad.study_id == study.id)
        .order_by(Dyad.code)
        .options(
            selectinload(Dyad.participants),
            selectinload(Dyad.recordings).selectinload(Recording.clips),
        )
    ).all()
    return _build(db, study, [(d, _ready(d.recordings)) for d in dyads], exported_at)


def _ready(recordings: Iterable[Recording]) -> list[Recording]:
    """Only processed recordings can hold recall moments; the others would be empty rows."""
    return [r for r in recordings if r.status == "ready"]


def code_keys(study: Study) -> dict[int, str]:
    """Code id → the key used in exports and imports: the code's name (unique in a study)."""
    return {c.id: c.name for c in study.codes}


class _M(NamedTuple):
    """One live moment as the export reads it (JSON columns decoded once, see _Decoded)."""

    id: int
    t_ms: int
    end_ms: int | None
    peaks_ms: tuple[int, ...]
    text: str
    codes: tuple[str, ...]
    ratings: Any
    role: str
    participant_code: str
    phase: str
    responds_to_id: int | None
    corrected_at: dt.datetime | None
    import_source: str | None
    rs_id: int


@dataclass
class _Rows:
    """Everything the export reads, fetched once for all its recordings."""

    moments: dict[int, list[_M]]
    notes: dict[int, tuple[tuple[str, ...], str]]
    voiced: set[int]
    stored: dict[int, figures_layer.Stored]
    codings: dict[int, tuple[Coding, ...]]
    sessions: dict[int, list[tuple[int, str, str, str, str]]]
    said: dict[int, tuple[tuple[int, int | None, str], ...]] = field(default_factory=dict)
    interviews: dict[int, dict[str, InterviewMedia]] = field(default_factory=dict)
    """recording id → lane → its interview audio (as exported)."""
    stops: dict[int, tuple[int, int]] = field(default_factory=dict)
    """moment id → its segment of the interview audio (audio_start_ms, audio_end_ms)."""
    followups: dict[int, FollowUpRating] = field(default_factory=dict)
    answered: dict[int, dict[str, str]] = field(default_factory=dict)
    """moment id → prompt key → the answer as stored."""
    asked: frozenset[str] = frozenset()
    """Every prompt key answered anywhere in the study (its prompt columns)."""


class _Decoded:
    """JSON column values decoded once per distinct text (moments share few shapes: "[]",
    "[3]", '{"hat": 7}'), then mapped; a driver that already decoded them is passed through."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.seen: dict[str, Any] = {}

    def __call__(self, raw: Any) -> Any:
        if not isinstance(raw, str):
            return self.make(raw)
        hit = self.seen.get(raw)
        if hit is None:
            hit = self.seen[raw] = self.make(json.loads(raw))
        return hit


def _fetch(
    db: Session, study: Study, rec_ids: list[int], keys: dict[int, str], scale_keys: set[str]
) -> _Rows:
    """Moments, researcher layers, voice notes, recall sessions and stored figures: a fixed
    number of statements, whatever the number of recordings."""
    moments: dict[int, list[_M]] = defaultdict(list)
    if not rec_ids:
        return _Rows(moments, {}, set(), {}, {}, {})
    live = (
        select(Moment.id)
        .join(RecallSession, Moment.recall_session_id == RecallSession.id)
        .where(RecallSession.recording_id.in_(rec_ids), Moment.deleted_at.is_(None))
    )
    peaks = _Decoded(lambda v: tuple(v or ()))
    codes = _Decoded(lambda v: _codes(v, keys))
    ratings = _Decoded(
        lambda v: MappingProxyType({k: r for k, r in (v or {}).items() if k in scale_keys})
    )
    for row in db.execute(
        select(
            Moment.id, Moment.t_ms, Moment.end_ms, cast(Moment.peaks_ms, Text),
            Moment.text, cast(Moment.codes, Text), cast(Moment.ratings, Text),
            RecallSession.recording_id, Participant.role, Participant.code,
            Moment.phase, Moment.responds_to_id, Moment.corrected_at, Moment.import_source,
            RecallSession.id,
        )
        .join(RecallSession, Moment.recall_session_id == RecallSession.id)
        .join(Participant, Participant.id == RecallSession.participant_id)
        .where(RecallSession.recording_id.in_(rec_ids), Moment.deleted_at.is_(None))
        .order_by(RecallSession.recording_id, Moment.t_ms, Moment.id)
    ):  # fmt: skip
        mid, t, end, p, text, c, r, rec_id, role, code, phase, answers, fixed, source, rs = row
        moments[rec_id].append(
            _M(mid, t, end, peaks(p), text, codes(c), ratings(r), role, code, phase, answers,
               fixed, source, rs)
        )  # fmt: skip
    notes = _researcher_layer(db, live, keys)
    codings = _codings(db, live, keys)
    voiced = set(db.scalars(select(VoiceNote.moment_id).where(VoiceNote.moment_id.in_(live))))
    sessions: dict[int, list[tuple[int, str, str, str, str]]] = defaultdict(list)
    for rs_id, rec_id, role, code, mode, status in db.execute(
        select(
            RecallSession.id, RecallSession.recording_id, Participant.role, Participant.code,
            RecallSession.mode, RecallSession.status,
        )
        .join(Participant, Participant.id == RecallSession.participant_id)
        .where(RecallSession.recording_id.in_(rec_ids))
    ):  # fmt: skip
        sessions[rec_id].append((rs_id, role, code, mode, status))
    stored = figures_layer.read_sets(db, study, rec_ids)
    said: dict[int, list[tuple[int, int | None, str]]] = defaultdict(list)
    for mid, start, end, words in db.execute(
        select(
            InterviewUtterance.moment_id, InterviewUtterance.start_ms,
            InterviewUtterance.end_ms, InterviewUtterance.text,
        )
        .where(InterviewUtterance.moment_id.in_(live))
        .order_by(InterviewUtterance.start_ms, InterviewUtterance.id)
    ):  # fmt: skip
        said[mid].append((start, end, words))
    transcripts = {mid: tuple(rows) for mid, rows in said.items()}
    # one statement for the study's prompt answers: the exported moments' answers, and every
    # key ever answered in the study (its prompt columns, also in a one-recording export)
    exported = {m.id for ms in moments.values() for m in ms}
    answered: dict[int, dict[str, str]] = defaultdict(dict)
    asked: set[str] = set()
    for mid, key, value in db.execute(
        select(PromptAnswer.moment_id, PromptAnswer.prompt_key, PromptAnswer.value)
        .where(PromptAnswer.study_id == study.id)
        .order_by(PromptAnswer.moment_id, PromptAnswer.id)
    ):
        asked.add(key)
        if mid in exported:
            answered[mid][key] = value
    interviews, stops = _interviews(db, rec_ids, transcripts)
    return _Rows(
        moments, notes, voiced, stored, codings, sessions, transcripts, interviews, stops,
        followups=followup_ratings(db, study, live, scale_keys),
        answered=answered,
        asked=frozenset(asked),
    )  # fmt: skip


def interview_filename(
    dyad_code: str, session_label: str, participant_code: str, storage_name: str
) -> str:
    """A pseudonymous name for a participant's interview audio in exports and bundles."""
    ext = storage_name.rpartition(".")[2]
    parts = (dyad_code, session_label, participant_code)
    return "_".join(safe_name(p) for p in parts) + f"_interview.{ext}"


def _interviews(
    db: Session, rec_ids: list[int], said: dict[int, tuple[tuple[int, int | None, str], ...]]
) -> tuple[dict[int, dict[str, InterviewMedia]], dict[int, tuple[int, int]]]:
    """Each recall interview's audio per recording and lane, and every stop's segment of it
    (``ipr.interview.segments``): one statement, whatever the number of recordings."""
    media: dict[int, dict[str, InterviewMedia]] = defaultdict(dict)
    stops: dict[int, tuple[int, int]] = {}
    for rec_id, role, code, label, dyad_code, events, duration, name in db.execute(
        select(
            RecallSession.recording_id, Participant.role, Participant.code,
            Recording.session_label, Dyad.code, InterviewAudio.events,
            InterviewAudio.duration_ms, InterviewAudio.storage_name,
        )
        .join(RecallSession, RecallSession.id == InterviewAudio.recall_session_id)
        .join(Participant, Participant.id == RecallSession.participant_id)
        .join(Recording, Recording.id == RecallSession.recording_id)
        .join(Dyad, Dyad.id == Recording.dyad_id)
        .where(RecallSession.recording_id.in_(rec_ids))
    ):  # fmt: skip
        events = json.loads(events) if isinstance(events, str) else (events or [])
        segs = interview_domain.segments(events, duration)
        for seg in segs:
            stops[seg.moment_id] = (seg.audio_start_ms, seg.audio_end_ms)
        media[rec_id][role] = InterviewMedia(
            media_filename=interview_filename(dyad_code, label, code, name),
            duration_ms=duration,
            time_origin_ms=interview_domain.time_origin(events),
            segments=len(segs),
            utterances=sum(len(said.get(s.moment_id, ())) for s in segs),
        )
    return dict(media), stops


def followup_ratings(
    db: Session, study: Study, moment_ids: Any, scale_keys: set[str]
) -> dict[int, Any]:
    """The follow-up pass's rating of each moment (ipr.followup), beside the first one; no
    statement at all for a study that never had a follow-up setting."""
    if study.followup is None:
        return {}
    return {
        r.moment_id: FollowUpRating(
            ratings={k: v for k, v in (r.ratings or {}).items() if k in scale_keys},
            comment=r.comment or "",
            at=r.updated_at.isoformat(timespec="seconds") + "Z",
        )
        for r in db.scalars(select(FollowUpRow).where(FollowUpRow.moment_id.in_(moment_ids)))
    }


def followup_states(
    db: Session, study: Study, rec_ids: list[int], now: dt.datetime
) -> dict[int, str | None]:
    """Recall session id → its follow-up's state at the export's time (``followup.state``:
    scheduled, due, opened, done); no statement for a study that never had a follow-up
    setting."""
    if study.followup is None or not rec_ids:
        return {}
    naive = now.astimezone(dt.UTC).replace(tzinfo=None)
    return {
        fu.recall_session_id: followup.state(fu, now=naive)
        for fu in db.scalars(
            select(FollowUp)
            .join(RecallSession, RecallSession.id == FollowUp.recall_session_id)
            .where(RecallSession.recording_id.in_(rec_ids))
        )
    }


def followup_scales(study: Study, found: dict[int, Any]) -> tuple[str, ...] | None:
    """The re-rated scales' keys when the study has a follow-up pass on, or the export holds
    follow-up ratings from one that was turned off; None otherwise (no follow-up columns)."""
    if not followup.settings(study).enabled and not found:
        return None
    return tuple(s.key for s in followup.scales(study))


def followup_parameters(study: Study, scales: tuple[str, ...] | None) -> dict[str, Any]:
    """The follow-up pass as the provenance names it (phase "followup", never in a figure)."""
    if scales is None:
        return {}
    conf = followup.settings(study)
    return {
        "followup": {
            "phase": "followup",
            "enabled": conf.enabled,
            "delay_days": conf.delay_days,
            "scales": list(scales),
            "of": "each participant's own blind moments",
            "in_figures": False,
        }
    }


def _build(
    db: Session,
    study: Study,
    dyads: Sequence[tuple[Dyad, Sequence[Recording]]],
    exported_at: dt.datetime,
) -> ExportStudy:
    keys = code_keys(study)
    scale_keys = {s.key for s in study.scales}
    rows = _fetch(db, study, [rec.id for _, recs in dyads for rec in recs], keys, scale_keys)
    fu_scales = followup_scales(study, rows.followups)
    # each lane's follow-up state in the provenance (and the Methods' n of N), only for a study
    # whose exports carry the follow-up
    states = (
        followup_states(db, study, [rec.id for _, recs in dyads for rec in recs], exported_at)
        if fu_scales is not None
        else None
    )
    out = []
    for dyad, recordings in dyads:
        therapist, client = dyad.participant("therapist"), dyad.participant("client")
        out.append(
            ExportDyad(
                code=dyad.code,
                therapist_code=therapist.code if therapist else "",
                client_code=client.code if client else "",
                recordings=tuple(
                    _recording(dyad, rec, rows, keys, scale_keys, states) for rec in recordings
                ),
            )
        )
    return ExportStudy(
        name=study.name,
        codebook=study_codebook(study),
        scales=tuple(
            Scale(
                key=s.key,
                name=s.name,
                min=s.min_value,
                max=s.max_value,
                labels={int(k): v for k, v in (s.labels or {}).items() if str(k).isdigit()},
            )
            for s in study.scales
        ),
        dyads=tuple(out),
        prompts=_prompts(study, rows.asked),
        exported_at=exported_at,
        provenance=Provenance(
            parameters={**figure_parameters(study), **followup_parameters(study, fu_scales)},
            instructions=study.instructions or "",
            language=study.language or "",
        ),
        followup_scales=fu_scales,
    )


def _prompts(study: Study, keys: frozenset[str]) -> tuple[Prompt, ...]:
    """The interview prompts an export has a column for: none while the study has no prompt
    answers (so exports of studies without interviews keep their columns), else the sheet's
    prompts and any answered prompt since removed from the sheet."""
    if not keys:
        return ()
    out = [Prompt(key, question, kind) for key, question, kind in prompts.export_prompts(study)]
    out += [Prompt(key, key, "text") for key in sorted(keys - {p.key for p in out})]
    return tuple(out)


def _recording(
    dyad: Dyad,
    rec: Recording,
    rows: _Rows,
    keys: dict[int, str],
    scale_keys: set[str],
    followup_states: dict[int, str | None] | None = None,
) -> ExportRecording:
    """One recording with the pairs and figures the worker stored (blind-phase moments only;
    none while they were never computed)."""
    duration = rec.duration_ms or 0
    stored = rows.stored.get(rec.id)
    data = stored.data if stored is not None and stored.data else {}
    pairs = [
        Pair(p["therapist_moment_id"], p["client_moment_id"], p["lag_ms"])
        for p in data.get("pairs", ())
    ]
    partner: dict[int, tuple[int, int]] = {}
    for p in pairs:
        partner[p.therapist_moment_id] = (p.client_moment_id, p.lag_ms)
        partner[p.client_moment_id] = (p.therapist_moment_id, p.lag_ms)
    moments = []
    no_note: tuple[tuple[str, ...], str] = ((), "")
    for m in rows.moments.get(rec.id, ()):
        mid = m.id
        match = partner.get(mid)
        r_codes, r_note = rows.notes.get(mid, no_note)
        moments.append(
            ExportMoment(
                id=mid,
                lane=m.role,
                participant_code=m.participant_code,
                t_ms=m.t_ms,
                end_ms=m.end_ms,
                peaks_ms=m.peaks_ms,
                text=m.text or "",
                codes=m.codes,
                ratings=m.ratings,
                researcher_codes=r_codes,
                researcher_note=r_note,
                codings=rows.codings.get(mid, ()),
                imported_from=m.import_source or "",
                voice_note=mid in rows.voiced,
                interview_transcript=rows.said.get(mid, ()),
                interview_audio_start_ms=rows.stops[mid][0] if mid in rows.stops else None,
                interview_audio_end_ms=rows.stops[mid][1] if mid in rows.stops else None,
                prompt_answers=rows.answered.get(mid, {}),
                matched_moment_id=match[0] if match else None,
                lag_ms=match[1] if match else None,
                phase=m.phase,
                responds_to_id=m.responds_to_id,
                corrected_at=m.corrected_at.isoformat(timespec="seconds") + "Z"
                if m.corrected_at
                else None,
                followup=rows.followups.get(mid),
            )
        )
    return ExportRecording(
        id=rec.id,
        session_label=rec.session_label,
        media_filename=media_filename(dyad, rec),
        duration_ms=duration,
        fps=round(rec.fps, 6) if rec.fps else None,
        clips=tuple(Clip(c.index, c.start_ms, c.end_ms) for c in rec.clips),
        moments=tuple(moments),
        pairs=tuple(pairs),
        figures=_figures(data),
        recall=_recall_info(rec, rows, followup_states),
        coder_agreement=_coders(data.get("coders")),
        interviews=rows.interviews.get(rec.id, {}),
    )


def _coders(found: dict[str, Any] | None) -> dict[str, Any]:
    """The stored agreement between coders; empty when no researcher coded anything."""
    return found if found and found.get("comparisons") else {}


def _recall_info(
    rec: Recording, rows: _Rows, followups: dict[int, str | None] | None = None
) -> dict[str, dict[str, Any]]:
    """Per lane: who, in which recall mode, how far, and how many moments (provenance); with
    ``followups`` (a study whose exports carry the follow-up) also the follow-up's state
    (scheduled, due, opened, done; None: none scheduled)."""
    counts: dict[int, int] = defaultdict(int)
    imported: dict[int, int] = defaultdict(int)
    sources: dict[int, set[str]] = defaultdict(set)
    for m in rows.moments.get(rec.id, ()):
        counts[m.rs_id] += 1
        if m.import_source:
            imported[m.rs_id] += 1
            sources[m.rs_id].add(m.import_source)
    out: dict[str, dict[str, Any]] = {}
    for rs_id, role, code, mode, status in rows.sessions.get(rec.id, ()):
        out[role] = {
            "participant_code": code,
            "mode": mode,
            "status": status,
            "moments": counts[rs_id],
            "imported_moments": imported[rs_id],
            "import_sources": sorted(sources[rs_id]),
        }
        if followups is not None:
            out[role]["followup"] = followups.get(rs_id)
    return dict(sorted(out.items()))


def _codes(code_ids: Iterable[int] | None, keys: dict[int, str]) -> tuple[str, ...]:
    """Codebook keys in codebook order; a code deleted from the codebook is left out."""
    order = {cid: i for i, cid in enumerate(keys)}
    known = sorted({c for c in code_ids or () if c in keys}, key=order.__getitem__)
    return tuple(keys[c] for c in known)


def _researcher_layer(
    db: Session, moment_ids: Any, keys: dict[int, str]
) -> dict[int, tuple[tuple[str, ...], str]]:
    """Every researcher's codes (merged) and notes (joined, oldest annotator first) per moment."""
    codes: dict[int, set[int]] = defaultdict(set)
    notes: dict[int, list[str]] = defaultdict(list)
    for row in db.execute(
        select(
            ResearcherAnnotation.moment_id, ResearcherAnnotation.codes, ResearcherAnnotation.note
        )
        .where(ResearcherAnnotation.moment_id.in_(moment_ids))
        .order_by(ResearcherAnnotation.id)
    ):
        codes[row.moment_id].update(row.codes or ())
        if row.note and row.note.strip():
            notes[row.moment_id].append(row.note.strip())
    return {
        mid: (_codes(codes[mid], keys), "\n\n".join(notes[mid])) for mid in set(codes) | set(notes)
    }


def _codings(db: Session, moment_ids: Any, keys: dict[int, str]) -> dict[int, tuple[Coding, ...]]:
    """Each researcher's own layer per moment, coder = the account's e-mail (as the timeline)."""
    found: dict[int, list[Coding]] = defaultdict(list)
    for row, email in db.execute(
        select(ResearcherAnnotation, User.email)
        .outerjoin(User, User.id == ResearcherAnnotation.user_id)
        .where(ResearcherAnnotation.moment_id.in_(moment_ids))
        .order_by(ResearcherAnnotation.id)
    ):
        note = (row.note or "").strip()
        if not row.codes and not note:
            continue
        coder = email or "(removed account)"
        found[row.moment_id].append(Coding(coder, _codes(row.codes, keys), note))
    return {mid: tuple(sorted(c, key=lambda x: x.coder)) for mid, c in found.items()}


def _figures(data: dict[str, Any]) -> dict[str, float | None]:
    """The stored figures every export carries (docs/exports.md): an undefined one is None
    (null), never left out."""
    out: dict[str, Any] = {name: data.get(name) for name in FIGURE_FIELDS}
    kappa = data.get("kappa") or {}
    chance = data.get("chance") or {}
    out["kappa"] = kappa.get("kappa")
    out["kappa_observed"] = kappa.get("observed")
    out["kappa_expected"] = kappa.get("expected")
    out["kappa_bin_ms"] = kappa.get("bin_ms")
    out["kappa_n_bins"] = kappa.get("n_bins")
    out["chance_expected_rate"] = chance.get("expected_rate")
    out["chance_sd_rate"] = chance.get("sd_rate")
    out["chance_p_value"] = chance.get("p_value")
    out["chance_n_shifts"] = chance.get("n_shifts")
    out["chance_seed"] = chance.get("seed")
    return {
        k: v if v is None or isinstance(v, int) or math.isfinite(v) else None
        for k, v in out.items()
    }


def figure_parameters(study: Study) -> dict[str, dict[str, Any]]:
    """Every parameter of every figure the app reports (those the worker computes with,
    `ipr.figures.params_for`), as exports and Methods cite them."""
    params = figures_layer.params_for(study.alignment_tolerance_ms, study.motion_settings)
    sync = inspect.signature(synchrony).parameters
    surr = inspect.signature(surrogate_baseline).parameters
    ms = MotionSettings.of(study.motion_settings)
    stored_sync = params["synchrony"]
    return {
        "matching": {"tolerance_ms": params["tolerance_ms"]},
        "chance_baseline": {"n_shifts": params["n_shifts"], "seed": params["seed"]},
        "time_unit_kappa": {"bin_ms": params["bin_ms"]},
        "coder_agreement": {"tolerance_ms": params["tolerance_ms"], "bin_ms": params["bin_ms"]},
        "synchrony": {
            "window_s": stored_sync["window_s"],
            "step_s": stored_sync["step_s"],
            "max_lag_s": stored_sync["max_lag_s"],
            **{k: sync[k].default for k in ("fisher_z", "absolute")},
        },
        "motion": {"threshold": ms.threshold, "smoothing_s": ms.smoothing_s},
        "synchrony_surrogates": {
            "n": stored_sync["n_surrogates"],
            "seed": stored_sync["seed"],
            "segment_s": stored_sync["segment_s"],
            "statistic": surr["statistic"].default,
        },
        "phase": {"figures_from": params["phase"]},
    }


# --- producing an export file -----------------------------------------------------------------

EXPORT_FORMATS = (*FORMATS, "zip", *MOTION_FORMATS)
"""Every `--format` / `export.<fmt>`: the pure exporters' formats, and `zip` (moment clips)."""

_EXTENSIONS = {"textgrid": "TextGrid", "bundle": "zip", "methods": "md"}
ZIP_TYPE = "application/zip"


class ExportRequestError(ValidationError):
    """The export cannot be made as asked (unknown format, nothing to export, bad roll)."""

    code = "export_invalid"


class ExportFailed(IPRError):
    """A moment clip could not be cut; the playable copy may be damaged (process it again)."""

    status = 500
    code = "export_failed"


@dataclass(frozen=True)
class ExportResult:
    """A finished export: bytes in memory, or a temporary file the caller sends and removes."""

    filename: str
    media_type: str
    content: bytes | None = None
    path: Path | None = None
    chunks: Iterable[bytes] | None = None  # streamed as made (a study's CSV)
    keep: bool = False  # a prepared file from the export cache: send it, do not remove it


class ExportPending(Exception):
    """Moment clips are being prepared by a worker; ask again shortly."""

    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"moment clips are being prepared (job {job_id}, {status})")
        self.job_id = job_id
        self.status = status


def _target(obj: Study | Dyad | Recording) -> tuple[str, Study]:
    if isinstance(obj, Recording):
        return "recording", obj.dyad.study
    if isinstance(obj, Dyad):
        return "dyad", obj.study
    return "study", obj


def export_stem(obj: Study | Dyad | Recording) -> str:
    """A pseudonymous file name stem: dyad code and session label, or the study name."""
    if isinstance(obj, Recording):
        return f"{safe_name(obj.dyad.code)}_{safe_name(obj.session_label)}"
    if isinstance(obj, Dyad):
        return f"dyad_{safe_name(obj.code)}"
    return f"study_{safe_name(obj.name)}"


def export_data(
    db: Session, obj: Study | Dyad | Recording, exported_at: dt.datetime
) -> ExportStudy:
    if isinstance(obj, Recording):
        return study_for_recording(db, obj, exported_at=exported_at)
    if isinstance(obj, Dyad):
        return study_for_dyad(db, obj, exported_at=exported_at)
    return study_for_study(db, obj, exported_at=exported_at)


def export(
    db: Session,
    storage: Storage,
    obj: Study | Dyad | Recording,
    fmt: str,
    *,
    include_text: bool = True,
    pre_roll_ms: int = DEFAULT_PRE_ROLL_MS,
    post_roll_ms: int = DEFAULT_POST_ROLL_MS,
    keyframe_slack_ms: int = 0,
    user: User | None = None,
    actor: str | None = None,
    ip: str | None = None,
    tmp_dir: Path | None = None,
    queue: Any | None = None,
    stream: bool = False,
) -> ExportResult:
    """Make one export of a recording, dyad or study and add its audit event to the session.

    A per-recording format (eaf, vtt, …) of a dyad or study gives a ZIP with one file per
    recording; `zip` gives the moment clips. The caller commits (the audit event with it).
    With a ``queue`` (the web process), moment clips are cut by a worker: the first request
    queues the job and raises ExportPending; once made, the same request gets the prepared file.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportRequestError(
            f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.",
            field="format",
        )
    scope, study = _target(obj)
    if isinstance(obj, Recording) and obj.status != "ready":
        raise ExportRequestError("This recording is not ready yet: nothing to export.")
    # A study's export data and files are a million objects: no cyclic collection walks them
    # over and over while they are made (ipr.collector).
    with collector.paused():
        data = export_data(db, obj, dt.datetime.now(dt.UTC).replace(microsecond=0))
    stem = export_stem(obj)
    if fmt in MOTION_FORMATS:
        result = _motion_export(db, storage, obj, fmt, stem)
    elif fmt == "zip" and queue is not None:
        params = {
            "scope": scope, "obj_id": obj.id, "include_text": include_text,
            "pre_roll_ms": pre_roll_ms, "post_roll_ms": post_roll_ms,
            "keyframe_slack_ms": keyframe_slack_ms,
        }  # fmt: skip
        key = clips_key(data, params)
        prepared = storage.export_cache(key)
        if not prepared.is_file():
            job = _queue_clips(db, queue, study.id, {**params, "key": key})
            audit.record(
                db, "export_requested", user=user, actor=actor, study_id=study.id,
                obj=(scope, obj.id), ip=ip, details={"format": fmt, "job": job.id},
            )  # fmt: skip
            db.commit()
            raise ExportPending(job.id, job.status)
        result = ExportResult(f"{stem}_moment_clips.zip", ZIP_TYPE, path=prepared, keep=True)
    elif fmt == "zip":
        result = _moment_clips(
            db, storage, data, stem, include_text=include_text, pre_roll_ms=pre_roll_ms,
            post_roll_ms=post_roll_ms, keyframe_slack_ms=keyframe_slack_ms, tmp_dir=tmp_dir,
        )  # fmt: skip
    else:
        exporter, fmt_scope, media_type = FORMATS[fmt]
        ext = _EXTENSIONS.get(fmt, fmt)
        if fmt in ("csv", "json") and stream:
            make = iter_csv if fmt == "csv" else iter_json
            chunks = collector.paused_each(make(data, include_text=include_text))
            result = ExportResult(f"{stem}.{ext}", media_type, chunks=chunks)
        elif fmt == "bundle":
            with collector.paused():
                png = _kept_figures(db, storage, data)
                content = to_bundle(data, include_text=include_text, png=png)
            if include_text and _has_interviews(data):
                path = _add_interview_audio(db, storage, data, content, tmp_dir)
                result = ExportResult(f"{stem}.{ext}", media_type, path=path)
            else:
                result = ExportResult(f"{stem}.{ext}", media_type, content)
        elif fmt_scope == "study":
            with collector.paused():
                content = exporter(data, include_text=include_text)
            result = ExportResult(f"{stem}.{ext}", media_type, content)
        elif scope == "recording":
            content = exporter(data.only_recording(), include_text=include_text)
            result = ExportResult(f"{stem}.{ext}", media_type, content)
        else:
            result = ExportResult(
                f"{stem}_{fmt}.zip", ZIP_TYPE, _per_recording_zip(data, fmt, ext, include_text)
            )
    details = {"format": fmt, "scope": scope, "include_text": include_text}
    if fmt == "zip":
        details.update(
            pre_roll_ms=pre_roll_ms, post_roll_ms=post_roll_ms, keyframe_slack_ms=keyframe_slack_ms
        )
    audit.record(
        db, "export", user=user, actor=actor, study_id=study.id, obj=(scope, obj.id), ip=ip,
        details=details,
    )  # fmt: skip
    return result


def _kept_figures(db: Session, storage: Storage, data: ExportStudy) -> Any:
    """The bundle's PNG figures from the ones the worker drew (``ipr.figure_files``); one
    statement for the recordings' storage keys."""
    from ipr.figure_files import Figures

    ids = [ctx.recording.id for ctx in data.recordings()]
    found = db.execute(select(Recording.id, Recording.storage_key).where(Recording.id.in_(ids)))
    keys = {rec_id: key for rec_id, key in found}
    return Figures(storage, keys).png


def _has_interviews(data: ExportStudy) -> bool:
    return any(ctx.recording.interviews for ctx in data.recordings())


def _add_interview_audio(
    db: Session, storage: Storage, data: ExportStudy, bundle: bytes, tmp_dir: Path | None
) -> Path:
    """The bundle with each participant's recall interview audio beside its recording's EAF
    (copied from disk into a temporary file, never held in memory). Only researchers export
    bundles; a bundle without free text carries no audio (the caller checks)."""
    from ipr.exports.bundle import recording_folders

    ids = [ctx.recording.id for ctx in data.recordings()]
    found = {
        (rec_id, role): (key, name)
        for rec_id, role, key, name in db.execute(
            select(
                RecallSession.recording_id, Participant.role, Recording.storage_key,
                InterviewAudio.storage_name,
            )
            .join(RecallSession, RecallSession.id == InterviewAudio.recall_session_id)
            .join(Participant, Participant.id == RecallSession.participant_id)
            .join(Recording, Recording.id == RecallSession.recording_id)
            .where(RecallSession.recording_id.in_(ids))
        )
    }  # fmt: skip
    handle, name = tempfile.mkstemp(prefix="ipr-bundle-", suffix=".zip", dir=tmp_dir)
    os.close(handle)
    path = Path(name)
    try:
        path.write_bytes(bundle)
        with zipfile.ZipFile(path, "a") as archive:
            for ctx, folder in recording_folders(data):
                for lane, media in sorted(ctx.recording.interviews.items()):
                    key, stored = found[(ctx.recording.id, lane)]
                    info = zipfile.ZipInfo(f"{folder}/{media.media_filename}", date_time=ZIP_DATE)
                    info.compress_type = zipfile.ZIP_STORED  # audio does not deflate
                    info.external_attr = 0o644 << 16
                    source = storage.interview_path(key, stored)
                    if not source.is_file():
                        raise ExportFailed(
                            f"The interview audio of {ctx.dyad.code} "
                            f"{ctx.recording.session_label} ({lane}) is missing from storage."
                        )
                    with source.open("rb") as src, archive.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, 1024 * 1024)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _motion_export(
    db: Session, storage: Storage, obj: Study | Dyad | Recording, fmt: str, stem: str
) -> ExportResult:
    """Motion-energy series / synchrony of one recording, or a ZIP of every ready one."""
    from ipr.exports.motion_series import MOTION_FORMATS, make

    suffix, media_type = MOTION_FORMATS[fmt]

    def one(rec: Recording) -> bytes | None:
        path = storage.derived(rec.storage_key, "analysis.json")
        if rec.status != "ready" or not path.is_file():
            return None
        me = json.loads(path.read_text(encoding="utf-8")).get("motion_energy") or {}
        if not me:
            return None
        figures = None
        if fmt == "synchrony_csv":  # the worker's stored figures (requests compute nothing)
            tolerance = rec.dyad.study.alignment_tolerance_ms
            stored = figures_layer.read(db, rec, tolerance, tolerance)
            figures = (stored.data or {}).get("synchrony") or {
                "error": "the synchrony is being computed; ask again shortly"
            }
        return make(fmt, me, figures)

    if isinstance(obj, Recording):
        content = one(obj)
        if content is None:
            raise ExportRequestError("This recording has no motion-energy analysis (no video).")
        return ExportResult(f"{stem}_{suffix}", media_type, content)
    recs = obj.recordings if isinstance(obj, Dyad) else [r for d in obj.dyads for r in d.recordings]
    buffer = io.BytesIO()
    written = 0
    with zipfile.ZipFile(buffer, "w") as archive:
        for rec in recs:
            content = one(rec)
            if content is None:
                continue
            name = f"{safe_name(rec.dyad.code)}_{safe_name(rec.session_label)}_{rec.id}_{suffix}"
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
            written += 1
    if not written:
        raise ExportRequestError("There is no recording with motion energy to export here yet.")
    return ExportResult(f"{stem}_{fmt}.zip", ZIP_TYPE, buffer.getvalue())


def clips_key(data: ExportStudy, params: dict[str, Any]) -> str:
    """Names a moment-clips ZIP by everything it is made from: any edit makes a new one."""
    parts: list[Any] = [sorted(params.items())]
    for ctx in data.recordings():
        rec = ctx.recording
        parts.append([rec.id, rec.media_filename, rec.duration_ms, [
            [m.id, m.lane, m.participant_code, m.t_ms, m.end_ms, list(m.peaks_ms), m.text,
             list(m.codes), sorted(m.ratings.items())]
            for m in rec.moments
        ]])  # fmt: skip
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _queue_clips(db: Session, queue: Any, study_id: int, params: dict[str, Any]) -> Job:
    """The job preparing these clips: one already on its way, or a new one."""
    for job in db.scalars(
        select(Job).where(
            Job.kind == "moment_clips",
            Job.study_id == study_id,
            Job.status.in_(("queued", "running")),
        )
    ):
        if job.params.get("key") == params["key"]:
            return job
    return jobs.enqueue(db, queue, "moment_clips", study_id=study_id, params=params)


@jobs.handler("moment_clips")
def moment_clips_job(ctx: jobs.Context) -> None:
    """Worker: cut the clips of one export into the export cache (moved into place whole)."""
    db, params = ctx.db, ctx.job.params
    model = {"recording": Recording, "dyad": Dyad, "study": Study}[params["scope"]]
    obj = db.get(model, params["obj_id"])
    if obj is None:
        return
    storage = Storage(ctx.config["RECORDINGS_DIR"])
    data = export_data(db, obj, dt.datetime.now(dt.UTC).replace(microsecond=0))
    target = storage.export_cache(params["key"])
    target.parent.mkdir(parents=True, exist_ok=True)
    ctx.report("cutting clips", 0.0)
    result = _moment_clips(
        db, storage, data, export_stem(obj), include_text=params["include_text"],
        pre_roll_ms=params["pre_roll_ms"], post_roll_ms=params["post_roll_ms"],
        keyframe_slack_ms=params["keyframe_slack_ms"], tmp_dir=target.parent,
    )  # fmt: skip
    assert result.path is not None
    os.replace(result.path, target)


def _per_recording_zip(data: ExportStudy, fmt: str, ext: str, include_text: bool) -> bytes:
    exporter = FORMATS[fmt][0]
    contexts = list(data.recordings())
    if not contexts:
        raise ExportRequestError("There is no processed recording to export here yet.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        seen: set[str] = set()
        for ctx in contexts:
            name = f"{safe_name(ctx.dyad.code)}_{safe_name(ctx.recording.session_label)}"
            if name in seen:
                name = f"{name}_{ctx.recording.id}"
            seen.add(name)
            info = zipfile.ZipInfo(f"{name}.{ext}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if fmt == "png" else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, exporter(ctx, include_text=include_text))
    return buffer.getvalue()


def _moment_clips(
    db: Session,
    storage: Storage,
    data: ExportStudy,
    stem: str,
    *,
    include_text: bool,
    pre_roll_ms: int,
    post_roll_ms: int,
    keyframe_slack_ms: int,
    tmp_dir: Path | None,
) -> ExportResult:
    ids = [ctx.recording.id for ctx in data.recordings()]
    rows = db.execute(select(Recording.id, Recording.storage_key).where(Recording.id.in_(ids)))
    keys = {rec_id: key for rec_id, key in rows}
    pairs = []
    for ctx in data.recordings():
        if not ctx.recording.moments:
            continue
        playable = storage.derived(keys[ctx.recording.id], "playable.mp4")
        if not playable.is_file():
            raise ExportRequestError(
                f"The playable copy of {ctx.dyad.code} {ctx.recording.session_label} is missing; "
                "process the recording again before exporting clips."
            )
        pairs.append((ctx, playable))
    handle, name = tempfile.mkstemp(prefix="ipr-clips-", suffix=".zip", dir=tmp_dir)
    os.close(handle)
    path = Path(name)
    try:
        write_moment_clips(
            pairs, path, pre_roll_ms=pre_roll_ms, post_roll_ms=post_roll_ms,
            keyframe_slack_ms=keyframe_slack_ms, include_text=include_text,
        )  # fmt: skip
    except ExportDataError as exc:
        path.unlink(missing_ok=True)
        raise ExportRequestError(str(exc)) from None
    except MediaError as exc:
        path.unlink(missing_ok=True)
        raise ExportFailed(f"{exc.message} ({exc.code})") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ExportResult(f"{stem}_moment_clips.zip", ZIP_TYPE, path=path)


# --- imports: moments from a CSV or an ELAN tier into one participant's lane --------------------


class ImportProblems(ValidationError):
    """The file cannot be imported; `problems` names each CSV line or EAF annotation."""

    code = "import_invalid"

    def __init__(self, problems: list[str]) -> None:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"Nothing was imported. {len(problems)} problem(s): {shown}{more}")
        self.problems = problems


def import_source(fmt: str, filename: str) -> str:
    """ "csv:name.csv": the format and the file's bare name (no folders), at most 255 chars."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "unnamed"
    return f"{fmt}:{name}"[:255]


class ImportUnreadable(ImportProblems):
    """The file cannot be parsed at all (encoding, quoting, a cell over the field limit)."""

    status = 400
    code = "import_unreadable"


class ImportTooLarge(ImportProblems):
    """The file is over the import size or row limit (IPR_IMPORT_MAX_BYTES / _ROWS)."""

    status = 413
    code = "import_too_large"


def study_codebook(study: Study) -> tuple[Code, ...]:
    return tuple(
        Code(
            key=c.name,
            name=c.name,
            colour=c.colour,
            shortcut=c.shortcut or "",
            description=c.description or "",
        )
        for c in study.codes
    )


def study_scales(study: Study) -> tuple[Scale, ...]:
    return tuple(
        Scale(key=s.key, name=s.name, min=s.min_value, max=s.max_value) for s in study.scales
    )


def read_import(
    study: Study,
    data: bytes | IO[bytes],
    kind: str,
    *,
    tier: str = "",
    source_lane: str = "",
    max_rows: int | None = None,
) -> list[ImportedMoment]:
    """Parse and check a file against the study's codebook and scales; every problem at once.

    ``data`` may be the upload's file object: a CSV is read row by row and refused as soon as
    it holds more than ``max_rows`` moments, so memory is bounded by the row limit.
    """
    codebook, scales = study_codebook(study), study_scales(study)
    try:
        if kind == "csv":
            found = import_csv(data, codebook=codebook, scales=scales, max_rows=max_rows)
        elif kind == "eaf":
            tiers = eaf_tier_names(data)
            if not tier:
                if len(tiers) != 1:
                    raise ImportProblems(
                        [f"choose the tier to import; this file has: {', '.join(tiers) or 'none'}"]
                    )
                tier = tiers[0]
            found = import_eaf_lane(data, tier, codebook=codebook, scales=scales, max_rows=max_rows)
        elif kind in ("textgrid", "boris", "boris-table"):
            raw = data if isinstance(data, bytes) else _read_all(data)
            found = peer_moments(raw, kind, tier, codebook=codebook, scales=scales)
            if max_rows is not None and len(found) > max_rows:
                raise ImportTooLarge(
                    [f"the file holds more than {max_rows} moments, the most one import may add "
                     "(setting IPR_IMPORT_MAX_ROWS); split it into smaller files"]
                )  # fmt: skip
        else:
            raise ImportProblems(
                [f"unknown file kind {kind!r}: use csv, eaf, textgrid, boris or boris-table"]
            )
    except ImportUnreadableFile as exc:
        raise ImportUnreadable(list(exc.problems)) from None
    except ImportTooManyRows as exc:
        raise ImportTooLarge(list(exc.problems)) from None
    except ImportValidationError as exc:
        raise ImportProblems(list(exc.problems)) from None
    except ExportError as exc:
        raise ImportProblems([str(exc)]) from None
    if source_lane:
        found = [m for m in found if m.lane in (None, source_lane)]
    lanes = {m.lane for m in found if m.lane}
    if len(lanes) > 1:
        raise ImportProblems(
            ["the file holds moments of both lanes; choose which lane's moments to import"]
        )
    return found


def _read_all(stream: IO[bytes]) -> bytes:
    """The whole upload (its size was checked against IPR_IMPORT_MAX_BYTES before)."""
    stream.seek(0)
    return stream.read()


def import_kind(data: bytes | IO[bytes], filename: str) -> str:
    """The import kind of a file by its first 64 KiB and its name, or ImportProblems naming the
    format it recognised and why it stops (subtitles, a BORIS time budget, …)."""
    if isinstance(data, bytes):
        head = data[:HEAD_BYTES]
    else:
        data.seek(0)
        head = data.read(HEAD_BYTES)
        data.seek(0)
    try:
        return detect_format(head, filename)
    except ImportValidationError as exc:
        raise ImportProblems(list(exc.problems)) from None


def preview_import(data: bytes, kind: str) -> list[PeerChoice]:
    """What each tier / lane / BORIS subject of the file would import as; nothing is written."""
    try:
        return peer_choices(data, kind)
    except ImportValidationError as exc:
        raise ImportProblems(list(exc.problems)) from None
    except ExportError as exc:
        raise ImportProblems([str(exc)]) from None


IMPORT_BATCH = 1000  # rows per INSERT statement
REVISION_FIELDS = ("t_ms", "end_ms", "peaks_ms", "text", "codes", "ratings")  # recall._revision


def import_moments(
    db: Session,
    recording: Recording,
    participant: Participant,
    moments: Sequence[ImportedMoment],
    *,
    user: User,
    fmt: str,
    ip: str | None = None,
    filename: str = "",
) -> RecallSession:
    """Add the moments to the participant's recall session of this recording, all or none.

    Every moment is checked first; then the session (if new), the moments, their revisions,
    the researcher's codes and one ``moments_imported`` audit event are written in ONE
    transaction and committed once, so a refused or killed import leaves nothing behind.
    A participant without a session gets a researcher-led one (as after an interview on
    paper); the researcher is recorded as having entered every moment, and each moment keeps
    the file it came from (`import_source`, exported as provenance).
    """
    if recording.status != "ready":
        raise ValidationError("The recording is not ready yet.")
    if participant.dyad_id != recording.dyad_id:
        raise NotFound()
    rs = db.scalar(
        select(RecallSession).where(
            RecallSession.recording_id == recording.id,
            RecallSession.participant_id == participant.id,
        )
    )
    if rs is not None and rs.status == "submitted":
        raise ValidationError(
            f"{participant.code} has finished this recall; reopen it before importing."
        )
    try:
        if rs is None:
            rs, _ = recall.create_session(
                db, recording, participant, "researcher", user, days=1, ip=ip
            )
        rows = _checked_rows(db, rs, recording, moments)
        _insert_moments(db, rs, rows, user, source=import_source(fmt, filename))
        if rows and rs.recording.revealed_at is None:  # blind moments: the figures change
            figures_layer.mark_stale(db, recording.id, recording.study_id)
        audit.record(
            db, "moments_imported", user=user, study_id=recording.study_id,
            obj=("recall_session", rs.id), ip=ip,
            details={"format": fmt, "count": len(rows), "participant": participant.code},
        )  # fmt: skip
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return rs


def _checked_rows(
    db: Session, rs: RecallSession, recording: Recording, moments: Sequence[ImportedMoment]
) -> list[tuple[ImportedMoment, dict[str, Any], list[int]]]:
    """(moment, clean fields, researcher code ids) for every moment, or every problem at once."""
    ids = {c.name: c.id for c in recording.dyad.study.codes}
    rows, problems = [], []
    for m in moments:
        fields = {
            "t_ms": m.t_ms,
            "end_ms": m.end_ms,
            "peaks_ms": list(m.peaks_ms),
            "text": m.text,
            "codes": [ids[c] for c in m.codes],
            "ratings": dict(m.ratings),
        }
        where = m.source or "moment"
        try:
            fields = recall.clean_moment(db, rs, fields, partial=False)
        except ValidationError as exc:
            problems.append(f"{where}: {exc.message}")
            continue
        if len(m.researcher_note) > recall.MAX_TEXT:
            problems.append(f"{where}: a note has at most {recall.MAX_TEXT} characters")
            continue
        rows.append((m, fields, sorted({ids[c] for c in m.researcher_codes})))
    if problems:
        raise ImportProblems(problems)
    return rows


def _insert_moments(
    db: Session,
    rs: RecallSession,
    rows: list[tuple[ImportedMoment, dict[str, Any], list[int]]],
    user: User,
    *,
    source: str | None = None,
) -> None:
    """The moments with their first revision and the researcher's layer, as bulk inserts.

    Plain multi-row INSERTs (ids back through RETURNING), never one unit of work per row: the
    rows are already checked, and the caller commits them all at once.
    """
    phase = "response" if rs.recording.revealed_at is not None else "blind"
    now = utcnow()
    for first in range(0, len(rows), IMPORT_BATCH):
        batch = rows[first : first + IMPORT_BATCH]
        values = [
            {
                "study_id": rs.study_id, "recall_session_id": rs.id, "entered_by_id": user.id,
                "phase": phase, "version": 1, "created_at": now, "updated_at": now,
                "import_source": source,
                **{"end_ms": None, "text": "", "peaks_ms": [], "codes": [], "ratings": {}},
                **fields,
            }
            for _, fields, _ in batch
        ]  # fmt: skip
        ids = db.scalars(
            insert(Moment).returning(Moment.id, sort_by_parameter_order=True), values
        ).all()
        db.execute(
            insert(MomentRevision),
            [
                {
                    "study_id": rs.study_id, "moment_id": mid, "version": 1, "action": "create",
                    "changed_by_id": user.id, "changed_at": now,
                    "data": {k: v[k] for k in REVISION_FIELDS},
                }
                for mid, v in zip(ids, values, strict=True)
            ],
        )  # fmt: skip
        notes = [
            {
                "study_id": rs.study_id, "moment_id": mid, "user_id": user.id, "codes": codes,
                "note": m.researcher_note, "updated_at": now,
            }
            for mid, (m, _, codes) in zip(ids, batch, strict=True)
            if codes or m.researcher_note
        ]  # fmt: skip
        if notes:
            db.execute(insert(ResearcherAnnotation), notes)
    if rows and rs.status == "invited":
        rs.status = "in_progress"
        rs.started_at = utcnow()
