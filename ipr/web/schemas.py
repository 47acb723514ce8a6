"""The request and response shapes of /api/v1, once: marshmallow schemas.

Request schemas (``…In``) validate what a route reads; response schemas serialise what it
answers, from model objects or the domain's own dicts; both generate the OpenAPI document
(``ipr.web.openapi``). The domain still checks every value it is given (it also serves the
pages); a schema adds the types, required fields and enums a client can read in the document.

Fields that are computed rather than read from an attribute use :func:`computed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import g, url_for
from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, RAISE, Schema, post_dump, validate
from marshmallow import fields as f

from ipr import interview, interview_takes, prompts, recall, recordings
from ipr import timeline_service as ts
from ipr.access import role_in
from ipr.exports.moment_clips import (
    APP_KEYFRAME_SLACK_MS,
    DEFAULT_POST_ROLL_MS,
    DEFAULT_PRE_ROLL_MS,
    MAX_ROLL_MS,
)
from ipr.web import recall_admin
from ipr.web.context import db, storage

ROLES = ["therapist", "client"]
LANGUAGES = ["en", "nb"]
SEGMENTATION = ["fixed", "scenes", "silences"]
SEGMENT_RANGE = {"minimum": 1000, "maximum": 4 * 3600 * 1000}


def computed(field: f.Field, get: Callable[[Any], Any]) -> f.Field:
    """``field`` (its type documents the value) filled by ``get(obj)`` instead of an attribute."""
    field.get_value = lambda obj, attr, accessor=None, default=None: get(obj)  # type: ignore[method-assign]
    return field


class File(Upload):
    """An uploaded file (multipart); one sent without a file name counts as missing."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not getattr(value, "filename", None):
            raise self.make_error("required")
        return value


def _iso_z(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


class Whole(f.Integer):
    """An integer in a JSON body, also sent as a whole float (``1000.0``, as Python writes a
    float); never a string, a bool or a fraction (as the domain's own checks)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _ms(**kw: Any) -> Whole:
    return Whole(validate=validate.Range(min=0), **kw)


def _ints(**kw: Any) -> f.List:
    return f.List(f.Integer(), **kw)


def _whole_list(**kw: Any) -> f.List:
    return f.List(Whole(), **kw)


class In(Schema):
    """A JSON request body: keys the route does not read are ignored, as they always were."""

    class Meta:
        unknown = EXCLUDE


class Multipart(Schema):
    """A multipart/form-data body (``location="files"``): its file and form fields; other
    fields are ignored."""

    class Meta:
        unknown = EXCLUDE


def _file(missing: str) -> File:
    """The body's required file; ``missing`` says how to send it."""
    return File(required=True, error_messages={"required": missing})


# --- errors -------------------------------------------------------------------------------------


class ErrorBody(Schema):
    code = f.String(required=True, metadata={"description": "Stable, for programs"})
    message = f.String(required=True, metadata={"description": "For people"})
    field = f.String(metadata={"description": "The request field at fault"})
    problems = f.List(f.Raw(), metadata={"description": "Imports: every problem found in the file"})
    offset = f.Integer(metadata={"description": "Interview chunks: the byte to resume from"})


class ErrorSchema(Schema):
    error = f.Nested(ErrorBody, required=True)


# --- studies, dyads, participants ---------------------------------------------------------------


class Code(Schema):
    id = f.Integer(required=True)
    name = f.String(required=True)
    colour = f.String(required=True, validate=validate.Regexp("^#[0-9a-f]{6}$"))
    shortcut = f.String(allow_none=True)
    description = f.String()


class Scale(Schema):
    id = f.Integer(required=True)
    key = f.String(required=True)
    name = f.String(required=True)
    min = f.Integer(required=True, attribute="min_value")
    max = f.Integer(required=True, attribute="max_value")
    labels = f.Dict(keys=f.String(), values=f.String())
    required = f.Boolean()


class Segmentation(Schema):
    strategy = f.String(
        attribute="segmentation_strategy", validate=validate.OneOf(["fixed", "scenes", "silences"])
    )
    fixed_ms = f.Integer(attribute="segment_fixed_ms")
    min_ms = f.Integer(attribute="segment_min_ms")
    max_ms = f.Integer(attribute="segment_max_ms")


class StudySchema(Schema):
    id = f.Integer(required=True)
    name = f.String(required=True)
    description = f.String()
    role = computed(
        f.String(required=True, validate=validate.OneOf(["owner", "editor", "viewer"])),
        lambda study: role_in(db(), g.api_user, study.id),
    )
    alignment_tolerance_ms = f.Integer()
    segmentation = computed(f.Nested(Segmentation), lambda study: study)
    instructions = f.String()
    language = f.String(validate=validate.OneOf(LANGUAGES))
    participants_can_code = f.Boolean()
    allow_early_reveal = f.Boolean()
    codebook = f.List(f.Nested(Code), required=True, attribute="codes")
    scales = f.List(f.Nested(Scale), required=True)


class StudyIn(Schema):
    """A study's settings; an unknown key is refused (a typo would otherwise change nothing).

    Types here; ranges, lengths and choices are documented here and checked by
    ``studies.update_study`` (the settings page's rule and messages)."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "Unknown study setting."}
    name = f.String(metadata={"minLength": 1, "maxLength": 200})
    description = f.String(metadata={"maxLength": 5000})
    alignment_tolerance_ms = Whole(metadata={"minimum": 0, "maximum": 600_000})
    segmentation_strategy = f.String(metadata={"enum": SEGMENTATION})
    segment_fixed_ms = Whole(metadata=SEGMENT_RANGE)
    segment_min_ms = Whole(metadata=SEGMENT_RANGE)
    segment_max_ms = Whole(metadata=SEGMENT_RANGE)
    instructions = f.String(metadata={"maxLength": 20000})
    language = f.String(metadata={"enum": LANGUAGES})
    participants_can_code = f.Boolean()
    allow_early_reveal = f.Boolean()
    resume_after_save = f.Boolean()
    require_2fa = f.Boolean()


class StudyCreateIn(StudyIn):
    name = f.String(required=True, metadata={"minLength": 1, "maxLength": 200})


class StudyList(Schema):
    studies = f.List(f.Nested(StudySchema), required=True)


class ParticipantSchema(Schema):
    id = f.Integer(required=True)
    code = f.String(required=True)
    role = f.String(required=True, validate=validate.OneOf(ROLES))
    dyad_id = f.Integer(required=True)


class ParticipantList(Schema):
    participants = f.List(f.Nested(ParticipantSchema), required=True)


class ParticipantIn(In):
    code = f.String()


def _participant(role: str) -> f.Field:
    """The dyad's participant in ``role`` (null before one is added)."""
    return computed(
        f.Nested(ParticipantSchema, required=True, allow_none=True),
        lambda dyad: dyad.participant(role),
    )


class DyadSchema(Schema):
    id = f.Integer(required=True)
    study_id = f.Integer(required=True)
    code = f.String(required=True)
    notes = f.String()
    therapist = _participant("therapist")
    client = _participant("client")


class DyadList(Schema):
    dyads = f.List(f.Nested(DyadSchema), required=True)


class DyadCreateIn(In):
    code = f.String(
        metadata={"description": "Default: the next free code in the study's pattern (04 after 03)"}
    )
    therapist_code = f.String(allow_none=True)
    client_code = f.String(allow_none=True)


class DyadIn(In):
    code = f.String()
    notes = f.String()


# --- recordings ---------------------------------------------------------------------------------

LIVE = ("queued", "processing")


def _live_job(rec: Any) -> Any:
    """The processing job of a queued or processing recording (looked up once a request)."""
    if rec.status not in LIVE:
        return None
    jobs = g.setdefault("api_live_jobs", {})
    if rec.id not in jobs:
        jobs[rec.id] = recordings.latest_job(db(), rec)
    return jobs[rec.id]


def _analysis(rec: Any) -> dict[str, Any] | None:
    if rec.status != "ready":
        return None
    info = rec.media_info or {}
    stored = recordings.analysis(storage(), rec)
    return {
        "scene_cuts_ms": stored.get("scene_cuts_ms", info.get("scene_cuts_ms", [])),
        "silences_ms": stored.get("silences_ms", info.get("silences_ms", [])),
        "motion_energy": stored.get("motion_energy", {"rate_hz": 0, "left": [], "right": []}),
    }


class Clip(Schema):
    index = f.Integer(required=True)
    start_ms = f.Integer(required=True)
    end_ms = f.Integer(required=True)
    url = computed(
        f.String(required=True, metadata={"description": "Accepts the Bearer token, Range too"}),
        lambda c: url_for("media.clip", recording_id=c.recording_id, index=c.index, ext="mp4"),
    )


class Analysis(Schema):
    scene_cuts_ms = _ints()
    silences_ms = f.List(f.List(f.Integer()))
    motion_energy = f.Dict(
        metadata={
            "description": "rate_hz, one series per region (left, right, or drawn therapist, "
            "client, background) with null for missing samples, threshold, missing"
        }
    )


class RecordingSchema(Schema):
    id = f.Integer(required=True)
    dyad_id = f.Integer()
    study_id = f.Integer()
    session_label = f.String()
    original_name = f.String()
    size_bytes = f.Integer(allow_none=True)
    sha256 = f.String(allow_none=True)
    status = f.String(
        required=True, validate=validate.OneOf(["queued", "processing", "ready", "failed"])
    )
    error = f.String(
        required=True, allow_none=True, metadata={"description": "Why processing failed"}
    )
    error_code = f.String(allow_none=True)
    stage = computed(f.String(allow_none=True), lambda r: getattr(_live_job(r), "stage", None))
    progress = computed(f.Float(allow_none=True), lambda r: getattr(_live_job(r), "progress", None))
    duration_ms = f.Integer(required=True, allow_none=True)
    width = f.Integer(required=True, allow_none=True)
    height = f.Integer(required=True, allow_none=True)
    fps = computed(
        f.Float(required=True, allow_none=True), lambda r: round(r.fps, 6) if r.fps else None
    )
    has_audio = f.Boolean(required=True, allow_none=True)
    media_url = computed(
        f.String(
            required=True,
            allow_none=True,
            metadata={"description": "The playable copy; accepts the Bearer token, Range too"},
        ),
        lambda r: (
            url_for("media.derived", recording_id=r.id, name="playable.mp4")
            if r.status == "ready"
            else None
        ),
    )
    clips = computed(
        f.List(f.Nested(Clip), required=True), lambda r: r.clips if r.status == "ready" else []
    )
    analysis = computed(f.Nested(Analysis, required=True, allow_none=True), _analysis)


class RecordingList(Schema):
    recordings = f.List(f.Nested(RecordingSchema), required=True)


class RecordingUploadIn(Multipart):
    """The whole file and its session label."""

    file = _file("Send the recording as multipart/form-data field 'file'.")
    session_label = f.String(load_default="")


# --- recall -------------------------------------------------------------------------------------


def _recall_url(rs: Any) -> str | None:
    if rs.mode == "self":
        token = getattr(rs, "new_token", None)  # IPR_BASE_URL when set
        return recall_admin.invitation_url(token) if token else None
    return url_for("recall.page", rs_id=rs.id, _external=True)


class RecallSessionSchema(Schema):
    id = f.Integer(required=True)
    recording_id = f.Integer(required=True)
    participant_id = f.Integer(required=True)
    participant_code = computed(f.String(), lambda rs: rs.participant.code)
    role = computed(f.String(validate=validate.OneOf(ROLES)), lambda rs: rs.participant.role)
    mode = f.String(required=True, validate=validate.OneOf(["self", "researcher"]))
    status = f.String(
        required=True, validate=validate.OneOf(["invited", "in_progress", "submitted"])
    )
    url = computed(
        f.String(
            required=True,
            allow_none=True,
            metadata={"description": "The personal link (in the create answer only) or page"},
        ),
        _recall_url,
    )
    expires_at = computed(f.String(allow_none=True), lambda rs: _iso_z(rs.token_expires_at))
    revoked = computed(f.Boolean(), lambda rs: rs.revoked_at is not None)


class WithToken:
    """A recall session with its new invitation token, for the one answer that shows it."""

    def __init__(self, rs: Any, token: str | None) -> None:
        self._rs, self.new_token = rs, token

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rs, name)


class NewRecallSession(RecallSessionSchema):
    """The create answer: a self-guided session's link and token, shown here only."""

    token = f.String(
        attribute="new_token", metadata={"description": "The invitation token: here only"}
    )

    @post_dump
    def _no_token_no_key(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("token") is None:  # a researcher-led session has no invitation token
            data.pop("token", None)
        return data


class RecallSessionList(Schema):
    recall_sessions = f.List(f.Nested(RecallSessionSchema), required=True)


class RecallSessionIn(In):
    participant_id = Whole(required=True)
    mode = f.String(load_default="self", validate=validate.OneOf(["self", "researcher"]))
    pin = f.String(allow_none=True, validate=validate.Regexp("^[0-9]{4,8}$"))


class IdempotencyHeader(Schema):
    idempotency_key = f.String(
        data_key="Idempotency-Key",
        metadata={"description": "A retry with the same key returns the first moment"},
    )


class Revealed(Schema):
    recording_id = f.Integer(required=True)
    revealed = f.Boolean(required=True)


class DeviceIn(In):
    """Only a PIN-protected link needs a body (its PIN); it is read only then."""

    pin = f.String()


class Device(Schema):
    device_token = f.String(required=True, metadata={"description": "Shown once"})
    recall_session_id = f.Integer(required=True)


class MomentFields(Schema):
    """What every answer carrying a moment has (its participant's own words and ratings)."""

    id = f.Integer(required=True)
    t_ms = f.Integer(required=True)
    end_ms = f.Integer(required=True, allow_none=True)
    peaks_ms = f.List(f.Integer(), required=True)
    text = f.String(required=True)
    codes = f.List(f.Integer(), required=True)
    ratings = f.Dict(keys=f.String(), values=f.Integer(), required=True)


class MomentSchema(MomentFields):
    """A participant's moment (from ``recall.moment_dict``)."""

    version = f.Integer(required=True)
    responds_to_id = f.Integer(
        allow_none=True, metadata={"description": "The other participant's moment answered"}
    )
    phase = f.String(
        required=True,
        validate=validate.OneOf(["blind", "response"]),
        metadata={"description": "blind: marked before the reveal (frozen at it); response: "
                  "after it"},
    )  # fmt: skip
    corrected_at = f.String(
        allow_none=True,
        metadata={"description": "When a researcher corrected this blind moment after the reveal"},
    )
    voice_url = f.String(allow_none=True)
    created_at = f.String()
    updated_at = f.String()


class MomentList(Schema):
    moments = f.List(f.Nested(MomentSchema), required=True)
    revealed = f.List(
        f.Nested(MomentSchema),
        allow_none=True,
        metadata={"description": "The other participant's moments once revealed (participants)"},
    )


class MomentIn(Schema):
    """A moment's fields; the domain checks them against the study (codes, scales, limits)."""

    class Meta:
        unknown = RAISE

    t_ms = _ms()
    end_ms = _ms(allow_none=True)
    peaks_ms = _whole_list(allow_none=True)
    text = f.String(
        allow_none=True, metadata={"description": "At most IPR_MOMENT_TEXT_MAX characters"}
    )
    codes = _whole_list(allow_none=True)
    ratings = f.Dict(
        keys=f.String(),
        values=f.Integer(strict=True, allow_none=True),
        allow_none=True,
        metadata={"description": "Scale key to value; null clears a rating"},
    )
    responds_to_id = Whole(allow_none=True)
    version = Whole(metadata={"description": "PATCH: the version you last saw"})


class MomentCreateIn(MomentIn):
    t_ms = _ms(required=True)


class StaleMoment(ErrorSchema):
    moment = f.Nested(MomentSchema, required=True, metadata={"description": "The current one"})


# --- imports ------------------------------------------------------------------------------------


class ImportIn(Multipart):
    """As the Import page's form."""

    file = _file("Send a CSV or ELAN (.eaf) file as the field 'file'.")
    participant_id = f.Integer(
        required=True,
        error_messages={
            "required": "Send participant_id: whose lane receives the moments.",
            "invalid": "Send participant_id: whose lane receives the moments.",
        },
    )
    tier = f.String(load_default="")
    source_lane = f.String(load_default="", validate=validate.OneOf(["", *ROLES]))


class Imported(Schema):
    recall_session_id = f.Integer(required=True)
    participant_id = f.Integer(required=True)
    format = f.String(validate=validate.OneOf(["csv", "eaf", "textgrid", "boris", "boris-table"]))
    imported = f.Integer(required=True)


# --- timeline -----------------------------------------------------------------------------------


class LaneMoment(MomentFields):
    codes = f.List(f.Integer(), required=True, metadata={"description": "Code ids"})
    version = f.Integer()
    phase = f.String(
        validate=validate.OneOf(["blind", "response"]),
        metadata={"description": "response: written after the reveal; never in a figure"},
    )
    responds_to_id = f.Integer(allow_none=True)
    corrected_at = f.String(allow_none=True)


class Coding(Schema):
    """A researcher's codes and note on one participant moment."""

    id = f.Integer()
    moment_id = f.Integer()
    lane = f.String(validate=validate.OneOf(ROLES))
    t_ms = f.Integer()
    end_ms = f.Integer(allow_none=True)
    codes = f.List(f.Integer())
    note = f.String()
    coder = f.String()


class Lanes(Schema):
    therapist = f.List(f.Nested(LaneMoment))
    client = f.List(f.Nested(LaneMoment))
    researcher = f.List(f.Nested(Coding))


class Pair(Schema):
    therapist_moment_id = f.Integer()
    client_moment_id = f.Integer()
    lag_ms = f.Integer(
        metadata={"description": "client t_ms − therapist t_ms (> 0: therapist first)"}
    )


class Unmatched(Schema):
    therapist = _ints()
    client = _ints()


class TimelineSchema(Schema):
    """From ``timeline_service.Timeline.to_dict``."""

    recording_id = f.Integer(required=True)
    duration_ms = f.Integer(required=True)
    tolerance_ms = f.Integer(required=True)
    participants = f.Dict(
        metadata={"description": "Per role: the participant's code and the recall session's "
                  "status (invited, in_progress, submitted; null when not invited)"}
    )  # fmt: skip
    lanes = f.Nested(Lanes, required=True)
    pairs = f.List(f.Nested(Pair), required=True)
    unmatched = f.Nested(Unmatched, required=True)
    figures_status = f.Dict(
        allow_none=True,
        metadata={"description": "How current the stored figures are: state (fresh, updating: "
                  "shown from an older version of the moments while the worker recomputes, "
                  "computing: none stored yet, failed), moments_version they were computed "
                  "from, current_version, computed_at, error, app_version, params (every "
                  "parameter used)"},
    )  # fmt: skip
    figures = f.Dict(
        allow_none=True,
        metadata={"description": "Stored figures (null while computing), from blind-phase "
                  "moments only: agreement (docs/timeline.md), synchrony and coders"},
    )  # fmt: skip


class TimelineQuery(Schema):
    """The range is documented, not enforced here: the study's own tolerance is always
    accepted, even outside it (``timeline_service.parse_tolerance`` decides)."""

    tolerance_ms = f.Integer(
        metadata={
            "minimum": 0,
            "maximum": ts.MAX_TOLERANCE_MS,
            "multipleOf": ts.TOLERANCE_STEP_MS,
            "description": "Largest gap between two moments that may pair; default: the "
            "study's alignment tolerance (always accepted). Other values: 0–60,000 ms in 100 ms "
            "steps, computed by the worker (the answer says computing until then)",
        },
    )


# --- the recall interview (ipr.interview) -------------------------------------------------------


class Segment(Schema):
    moment_id = f.Integer(required=True)
    audio_start_ms = f.Integer(required=True, validate=validate.Range(min=0))
    audio_end_ms = f.Integer(required=True, validate=validate.Range(min=0))


class Interview(Schema):
    audio_url = f.String(required=True)
    duration_ms = f.Integer(required=True, validate=validate.Range(min=0))
    format = f.String()
    segments = f.List(f.Nested(Segment), required=True)


class Utterance(Schema):
    start_ms = f.Integer(required=True, validate=validate.Range(min=0))
    end_ms = f.Integer(required=True, allow_none=True)
    text = f.String(required=True)


class Transcript(Schema):
    moment_id = f.Integer(required=True)
    utterances = f.List(f.Nested(Utterance), required=True)


def _interview(rs: Any) -> dict[str, Any] | None:
    url = lambda: url_for("api_interview.interview_audio", rs_id=rs.id)  # noqa: E731
    return interview.interview_dict(db(), rs, url)


def _transcripts(rs: Any) -> list[dict[str, Any]]:
    ids = [m.id for m in recall.own_moments(db(), rs)]
    said = interview.transcripts(db(), ids)
    return [{"moment_id": m, "utterances": said[m]} for m in ids if m in said]


class RecallSessionDetail(RecallSessionSchema):
    """One recall session with its interview and each moment's transcript."""

    interview = computed(f.Nested(Interview, required=True, allow_none=True), _interview)
    transcripts = computed(f.List(f.Nested(Transcript), required=True), _transcripts)


class InterviewAudioIn(Multipart):
    """The audio and the player events."""

    file = _file("Send the interview audio as the multipart field 'file'.")
    events = f.String(
        load_default=None,
        metadata={"description": 'A JSON list of {"type": "play"|"pause"|"seek"|"mark", '
                  '"video_ms", "audio_ms", "moment_id"?} in interview-audio order'},
    )  # fmt: skip


class Take(Schema):
    """An interview recording in progress (``ipr.interview_takes``)."""

    take = f.String(required=True)
    offset = f.Integer(required=True, validate=validate.Range(min=0))
    status = f.String(required=True, validate=validate.OneOf(list(interview_takes.STATES)))
    events = f.Integer()
    error = f.String(allow_none=True)
    job_id = f.Integer(allow_none=True)


class TakeList(Schema):
    takes = f.List(f.Nested(Take), required=True)


class TakeOffset(Schema):
    offset = f.Integer(required=True, metadata={"description": "The take's new length"})


class TakeEventCount(Schema):
    events = f.Integer(required=True)


class TakeEventsIn(In):
    """Checked by ``interview_takes.check_events``, and fully when the take is attached."""

    events = f.List(
        f.Dict(), allow_none=True,
        metadata={"description": '[{"type": "play"|"pause"|"seek"|"mark"|"stop", "video_ms", '
                  '"audio_ms", "moment_id"?}]'},
    )  # fmt: skip


class UploadOffsetHeader(Schema):
    upload_offset = f.Integer(
        data_key="Upload-Offset", required=True, validate=validate.Range(min=0),
        metadata={"description": "Where this chunk starts in the take (bytes)"},
    )  # fmt: skip


class TranscriptIn(Multipart):
    file = _file(
        "Send the transcript (.vtt, .srt, .eaf or timestamped .txt) as the multipart field 'file'."
    )
    tier = f.String(
        load_default="", metadata={"description": "ELAN: the tier to read (default: the fullest)"}
    )


class TranscriptImported(Schema):
    recall_session_id = f.Integer()
    format = f.String(validate=validate.OneOf(["vtt", "srt", "text", "eaf"]))
    tier = f.String(metadata={"description": "ELAN: the tier read"})
    utterances = f.Integer(required=True)
    attached = f.Dict(
        keys=f.String(), values=f.Integer(), required=True,
        metadata={"description": "Utterances per moment id"},
    )  # fmt: skip
    unattached = f.Integer()


class TranscriptionQueued(Schema):
    recall_session_id = f.Integer(required=True)
    job_id = f.Integer(required=True)
    status = f.String(required=True)


class Distress(Schema):
    paused = f.Boolean(required=True)
    support_text = f.String(required=True)
    language = f.String()
    owner_notified = f.Boolean()
    email_job_id = f.Integer(allow_none=True)


class SupportTextIn(In):
    language = f.String(required=True, validate=validate.OneOf(LANGUAGES))
    text = f.String(required=True, metadata={"description": "Empty: the default text"})


class SupportText(Schema):
    language = f.String()
    support_text = f.String()


class Consent(Schema):
    id = f.Integer(required=True)
    participant_id = f.Integer(required=True)
    sheet_version = f.String(required=True)
    consented_on = f.String(required=True, metadata={"format": "date"})
    recorded_by_id = f.Integer(allow_none=True)
    recorded_at = f.String()


class ConsentList(Schema):
    consent = f.List(f.Nested(Consent), required=True)


class ConsentIn(In):
    """Checked by ``interview.record_consent`` (version 1–40 characters, a real date)."""

    sheet_version = f.String(required=True)
    consented_on = f.String(required=True, metadata={"format": "date"})


class Withdrawn(Schema):
    participant_id = f.Integer(required=True)
    erased = f.Dict(
        keys=f.String(), values=f.Integer(), required=True,
        metadata={"description": "Counts of what was erased"},
    )  # fmt: skip


# --- the interviewer's prompt sheet and its answers (ipr.prompts) --------------------------------


def as_sent(field: f.Field) -> f.Field:
    """``field`` (its type documents the value) loaded as sent, unchecked: the domain checks it
    and lists every problem at once (a 422 with ``error.problems``), which a schema's 422
    naming the first field at fault cannot."""
    field._deserialize = lambda value, attr, data, **kw: value  # type: ignore[method-assign]
    return field


_KEY = validate.Regexp(prompts.KEY_RE.pattern)
_PER_LANGUAGE = {"keys": f.String(), "values": f.String()}


class PromptChoice(Schema):
    value = f.String(required=True, validate=_KEY)
    label = f.Dict(**_PER_LANGUAGE, required=True, metadata={"description": "Per language"})


class Prompt(Schema):
    """One prompt of the sheet, as stored (``prompts.validate``)."""

    key = f.String(
        required=True, validate=_KEY, metadata={"description": "Its export column: prompt_<key>"}
    )
    kind = f.String(required=True, validate=validate.OneOf(list(prompts.KINDS)))
    text = f.Dict(
        **_PER_LANGUAGE, required=True,
        metadata={"description": "The question in each of the study's languages (the main "
                  f"one required; at most {prompts.MAX_QUESTION} characters)"},
    )  # fmt: skip
    scale = f.String(metadata={"description": "A scale prompt: the study's scale key"})
    choices = f.List(
        f.Nested(PromptChoice),
        metadata={"description": f"A choice prompt: 2–{prompts.MAX_CHOICES} choices; a missing "
                  "value is made from the main language's label"},
    )  # fmt: skip


class PromptSheet(Schema):
    study_id = f.Integer(required=True)
    is_default = f.Boolean(
        required=True, metadata={"description": "The Brief Structured Recall defaults"}
    )
    prompts = f.List(f.Nested(Prompt), required=True)


class PromptSheetIn(In):
    """Checked by ``prompts.validate``, which lists every problem (422 ``error.problems``)."""

    prompts = as_sent(
        f.List(
            f.Nested(Prompt), allow_none=True, load_default=None,
            metadata={"description": f"At most {prompts.MAX_PROMPTS} prompts, keys unique; "
                      "null (or absent) brings back the defaults"},
        )
    )  # fmt: skip


class PromptAnswerRow(Schema):
    prompt_key = f.String(required=True)
    value = f.String(
        required=True,
        metadata={"description": "The text, the rating's number or the choice's value"},
    )
    answered_at = f.String(required=True)
    by_id = f.Integer(allow_none=True, metadata={"description": "The researcher who noted it"})


class PromptAnswers(Schema):
    moment_id = f.Integer(required=True)
    answers = f.List(f.Nested(PromptAnswerRow), required=True)


class PromptAnswersIn(In):
    """Checked by ``prompts.save_answers``, which lists every problem (422 ``error.problems``)."""

    answers = as_sent(
        f.Dict(
            keys=f.String(), values=f.Raw(allow_none=True), load_default=None,
            metadata={"description": "Prompt key to answer: text (at most "
                      f"{prompts.MAX_TEXT_ANSWER:,} characters), a whole number on the prompt's "
                      "scale, or one of its choices' values; null or empty text clears one. "
                      "Other prompts' answers stay"},
        )
    )  # fmt: skip


# --- exports ------------------------------------------------------------------------------------

_TEXT = {"schema": {"type": "string"}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
EXPORT_MEDIA = {
    "text/csv": _TEXT,
    "application/json": {
        "schema": {
            "type": "object",
            "description": "The export document of ipr/exports/schema_v1.json: format, "
            "schema_version, include_text, provenance (software version and commit, "
            "exported_at, every figure's parameters and definition, codebook, instructions, "
            "scales, per recording the recall modes, figures with null where undefined and the "
            "agreement between coders) and study (moments with each coder's codings and "
            "imported_from)",
            "required": ["format", "schema_version", "include_text", "provenance", "study"],
        }
    },
    "application/xml": _TEXT,
    "text/plain": _TEXT,
    "text/markdown": _TEXT,
    "text/vtt": _TEXT,
    "application/x-subrip": _TEXT,
    "image/svg+xml": _TEXT,
    "image/png": _BINARY,
    "application/zip": _BINARY,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _BINARY,
}  # the exported files' own formats: documented, not marshmallow shapes (ipr/exports/)


def _roll(description: str) -> f.Integer:
    return f.Integer(
        validate=validate.Range(min=0, max=MAX_ROLL_MS), metadata={"description": description}
    )


class ExportQuery(Schema):
    """Documents and checks the options; ``ipr.web.exports`` reads them (as the page does)."""

    include_text = f.Boolean(
        load_default=True, metadata={"description": "false leaves out every free-text field"}
    )
    pre_roll_ms = _roll(f"Moment clips: time before each moment (default {DEFAULT_PRE_ROLL_MS})")
    post_roll_ms = _roll(f"Moment clips: time after each moment (default {DEFAULT_POST_ROLL_MS})")
    keyframe_slack_ms = _roll(
        "Moment clips: a clip may start up to this much earlier, on a keyframe, so it is copied "
        "instead of re-encoded (much faster); 0 gives the exact pre-roll "
        f"(default {APP_KEYFRAME_SLACK_MS})"
    )


class ExportQueued(Schema):
    status = f.String(required=True, validate=validate.OneOf(["queued", "running"]))
    job_id = f.Integer(required=True)
    retry_after_s = f.Integer()
