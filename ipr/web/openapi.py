"""The OpenAPI 3.1 description of /api/v1; each capability adds its paths here."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}

PARTICIPANT = {
    "type": "object",
    "required": ["id", "code", "role", "dyad_id"],
    "properties": {
        "id": {"type": "integer"},
        "code": {"type": "string"},
        "role": {"enum": ["therapist", "client"]},
        "dyad_id": {"type": "integer"},
    },
}

DYAD = {
    "type": "object",
    "required": ["id", "study_id", "code", "therapist", "client"],
    "properties": {
        "id": {"type": "integer"},
        "study_id": {"type": "integer"},
        "code": {"type": "string"},
        "notes": {"type": "string"},
        "therapist": {"$ref": "#/components/schemas/Participant"},
        "client": {"$ref": "#/components/schemas/Participant"},
    },
}

STUDY = {
    "type": "object",
    "required": ["id", "name", "role", "codebook", "scales"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "role": {"enum": ["owner", "editor", "viewer"]},
        "alignment_tolerance_ms": {"type": "integer"},
        "segmentation": {
            "type": "object",
            "properties": {
                "strategy": {"enum": ["fixed", "scenes", "silences"]},
                "fixed_ms": {"type": "integer"},
                "min_ms": {"type": "integer"},
                "max_ms": {"type": "integer"},
            },
        },
        "instructions": {"type": "string"},
        "language": {"enum": ["en", "nb"]},
        "participants_can_code": {"type": "boolean"},
        "allow_early_reveal": {"type": "boolean"},
        "codebook": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "colour"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "colour": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
                    "shortcut": {"type": ["string", "null"]},
                    "description": {"type": "string"},
                },
            },
        },
        "scales": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "key", "name", "min", "max"],
                "properties": {
                    "id": {"type": "integer"},
                    "key": {"type": "string"},
                    "name": {"type": "string"},
                    "min": {"type": "integer"},
                    "max": {"type": "integer"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "required": {"type": "boolean"},
                },
            },
        },
    },
}

STUDY_WRITE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "alignment_tolerance_ms": {"type": "integer", "minimum": 0, "maximum": 600000},
        "segmentation_strategy": {"enum": ["fixed", "scenes", "silences"]},
        "segment_fixed_ms": {"type": "integer"},
        "segment_min_ms": {"type": "integer"},
        "segment_max_ms": {"type": "integer"},
        "instructions": {"type": "string"},
        "language": {"enum": ["en", "nb"]},
        "participants_can_code": {"type": "boolean"},
        "allow_early_reveal": {"type": "boolean"},
        "resume_after_save": {"type": "boolean"},
    },
    "additionalProperties": False,
}


CLIP = {
    "type": "object",
    "required": ["index", "start_ms", "end_ms", "url"],
    "properties": {
        "index": {"type": "integer"},
        "start_ms": {"type": "integer"},
        "end_ms": {"type": "integer"},
        "url": {"type": "string"},
    },
}

RECORDING = {
    "type": "object",
    "required": ["id", "status", "error", "duration_ms", "width", "height", "fps", "has_audio",
                 "media_url", "clips", "analysis"],
    "properties": {
        "id": {"type": "integer"},
        "dyad_id": {"type": "integer"},
        "study_id": {"type": "integer"},
        "session_label": {"type": "string"},
        "original_name": {"type": "string"},
        "size_bytes": {"type": ["integer", "null"]},
        "sha256": {"type": ["string", "null"]},
        "status": {"enum": ["queued", "processing", "ready", "failed"]},
        "error": {"type": ["string", "null"], "description": "Why processing failed, for people"},
        "error_code": {"type": ["string", "null"]},
        "stage": {"type": ["string", "null"]},
        "progress": {"type": ["number", "null"]},
        "duration_ms": {"type": ["integer", "null"]},
        "width": {"type": ["integer", "null"]},
        "height": {"type": ["integer", "null"]},
        "fps": {"type": ["number", "null"]},
        "has_audio": {"type": ["boolean", "null"]},
        "media_url": {"type": ["string", "null"]},
        "clips": {"type": "array", "items": CLIP},
        "analysis": {
            "type": ["object", "null"],
            "properties": {
                "scene_cuts_ms": {"type": "array", "items": {"type": "integer"}},
                "silences_ms": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "integer"}},
                },
                "motion_energy": {
                    "type": "object",
                    "properties": {
                        "rate_hz": {"type": "number"},
                        "left": {"type": "array", "items": {"type": "number"}},
                        "right": {"type": "array", "items": {"type": "number"}},
                    },
                },
            },
        },
    },
}  # fmt: skip

MOMENT = {
    "type": "object",
    "required": [
        "id",
        "t_ms",
        "end_ms",
        "peaks_ms",
        "text",
        "codes",
        "ratings",
        "version",
        "phase",
    ],
    "properties": {
        "id": {"type": "integer"},
        "t_ms": {"type": "integer"},
        "end_ms": {"type": ["integer", "null"]},
        "peaks_ms": {"type": "array", "items": {"type": "integer"}},
        "text": {"type": "string"},
        "codes": {"type": "array", "items": {"type": "integer"}},
        "ratings": {"type": "object", "additionalProperties": {"type": "integer"}},
        "version": {"type": "integer"},
        "responds_to_id": {
            "type": ["integer", "null"],
            "description": "The other participant's moment this response answers",
        },
        "phase": {
            "enum": ["blind", "response"],
            "description": "blind: marked before the reveal (frozen at it); response: after it",
        },
        "corrected_at": {
            "type": ["string", "null"],
            "description": "When a researcher corrected this blind moment after the reveal",
        },
        "voice_url": {"type": ["string", "null"]},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}

MOMENT_WRITE = {
    "type": "object",
    "properties": {
        "t_ms": {"type": "integer", "minimum": 0},
        "end_ms": {"type": ["integer", "null"], "minimum": 0},
        "peaks_ms": {"type": "array", "items": {"type": "integer"}},
        "text": {"type": "string", "maxLength": 10000},
        "codes": {"type": "array", "items": {"type": "integer"}},
        "ratings": {"type": "object", "additionalProperties": {"type": "integer"}},
        "responds_to_id": {"type": ["integer", "null"]},
        "version": {"type": "integer", "description": "PATCH: the version you last saw"},
    },
}

RECALL_SESSION = {
    "type": "object",
    "required": ["id", "recording_id", "participant_id", "mode", "status", "url"],
    "properties": {
        "id": {"type": "integer"},
        "recording_id": {"type": "integer"},
        "participant_id": {"type": "integer"},
        "participant_code": {"type": "string"},
        "role": {"enum": ["therapist", "client"]},
        "mode": {"enum": ["self", "researcher"]},
        "status": {"enum": ["invited", "in_progress", "submitted"]},
        "url": {"type": ["string", "null"], "description": "The personal link (once) or page"},
        "token": {
            "type": "string",
            "description": "The invitation token: in the create answer only",
        },
        "expires_at": {"type": ["string", "null"]},
        "revoked": {"type": "boolean"},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "No valid token",
        403: "Your role in this study is read-only",
        404: "Not found, or not yours",
        413: "Larger than this server accepts (IPR_UPLOAD_MAX_BYTES)",
        422: "Invalid request",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    return _rate_limited_writes(_document())


def _rate_limited_writes(doc: dict[str, Any]) -> dict[str, Any]:
    """Every write may answer 429: writes per minute are limited per user and per link."""
    for item in doc["paths"].values():
        for method in ("post", "put", "patch", "delete"):
            if method in item:
                item[method]["responses"].setdefault(
                    "429", _json(_ref("Error"), "Too many writes in a minute (Retry-After)")
                )
    return doc


def _document() -> dict[str, Any]:
    from ipr.web.api_imports import import_paths  # late, for the same reason
    from ipr.web.api_interview import interview_paths  # late, for the same reason
    from ipr.web.api_prompts import prompt_paths  # late, for the same reason
    from ipr.web.exports import export_paths  # late, for the same reason
    from ipr.web.timeline import timeline_paths  # late: it imports ipr.web.api, which imports us

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IPR annotator API",
            "version": "1",
            "description": "Researchers authenticate with 'Authorization: Bearer <token>' from "
            "`flask --app app ipr token EMAIL`. No token: 401. An object outside your studies: "
            "404, indistinguishable from a missing one. All times are integer milliseconds. "
            "A recording's media_url and clip urls (paths on this server) accept the same "
            "Bearer token, with Range requests.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": ERROR,
                "Study": STUDY,
                "StudyWrite": STUDY_WRITE,
                "Dyad": DYAD,
                "Participant": PARTICIPANT,
                "Recording": RECORDING,
                "Moment": MOMENT,
                "MomentWrite": MOMENT_WRITE,
                "RecallSession": RECALL_SESSION,
            },
        },
        "paths": {
            **recording_paths(),
            **recall_paths(),
            **timeline_paths(),
            **export_paths(),
            **import_paths(),
            **interview_paths(),
            **prompt_paths(),
            "/studies": {
                "get": {
                    "summary": "Studies you are a member of",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "studies": {"type": "array", "items": _ref("Study")}
                                },
                            }
                        ),
                        **_errors(401),
                    },
                },
                "post": {
                    "summary": "Create a study (you become its owner)",
                    "requestBody": _body({**STUDY_WRITE, "required": ["name"]}),
                    "responses": {"201": _json(_ref("Study"), "Created"), **_errors(401, 422)},
                },
            },
            "/studies/{study_id}": {
                "parameters": [_id("study_id")],
                "get": {
                    "summary": "One study",
                    "responses": {"200": _json(_ref("Study")), **_errors(401, 404)},
                },
                "patch": {
                    "summary": "Change a study's settings (editor or owner)",
                    "requestBody": _body(_ref("StudyWrite")),
                    "responses": {"200": _json(_ref("Study")), **_errors(401, 403, 404, 422)},
                },
            },
            "/studies/{study_id}/dyads": {
                "parameters": [_id("study_id")],
                "get": {
                    "summary": "The study's dyads",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"dyads": {"type": "array", "items": _ref("Dyad")}},
                            }
                        ),
                        **_errors(401, 404),
                    },
                },
                "post": {
                    "summary": "Create a dyad with its therapist and client (codes T<n>/C<n>)",
                    "requestBody": _body(
                        {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "therapist_code": {"type": "string"},
                                "client_code": {"type": "string"},
                            },
                        }
                    ),
                    "responses": {
                        "201": _json(_ref("Dyad"), "Created"),
                        **_errors(401, 403, 404, 422),
                    },
                },
            },
            "/dyads/{dyad_id}": {
                "parameters": [_id("dyad_id")],
                "get": {
                    "summary": "One dyad",
                    "responses": {"200": _json(_ref("Dyad")), **_errors(401, 404)},
                },
                "delete": {
                    "summary": "Delete a dyad with its participants, recordings, moments and files",
                    "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404)},
                },
                "patch": {
                    "summary": "Change a dyad's code or notes",
                    "requestBody": _body(
                        {
                            "type": "object",
                            "properties": {"code": {"type": "string"}, "notes": {"type": "string"}},
                        }
                    ),
                    "responses": {"200": _json(_ref("Dyad")), **_errors(401, 403, 404, 422)},
                },
            },
            "/studies/{study_id}/participants": {
                "parameters": [_id("study_id")],
                "get": {
                    "summary": "The study's participants (pseudonymous codes only)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "participants": {"type": "array", "items": _ref("Participant")}
                                },
                            }
                        ),
                        **_errors(401, 404),
                    },
                },
            },
            "/participants/{participant_id}": {
                "parameters": [_id("participant_id")],
                "get": {
                    "summary": "One participant",
                    "responses": {"200": _json(_ref("Participant")), **_errors(401, 404)},
                },
                "patch": {
                    "summary": "Change a participant's code",
                    "requestBody": _body(
                        {"type": "object", "properties": {"code": {"type": "string"}}}
                    ),
                    "responses": {
                        "200": _json(_ref("Participant")),
                        **_errors(401, 403, 404, 422),
                    },
                },
            },
        },
    }


def _list(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": _ref(item)}}}


def recording_paths() -> dict[str, Any]:
    return {
        "/dyads/{dyad_id}/recordings": {
            "parameters": [_id("dyad_id")],
            "get": {
                "summary": "The dyad's session recordings",
                "responses": {"200": _json(_list("recordings", "Recording")), **_errors(401, 404)},
            },
            "post": {
                "summary": "Upload a whole file (multipart: file, session_label); processing is "
                "queued. Browsers use the resumable tus endpoint /dyads/{dyad_id}/uploads.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file", "session_label"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "session_label": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("Recording"), "Queued"),
                    **_errors(401, 403, 404, 413, 422),
                },
            },
        },
        "/recordings/{recording_id}": {
            "parameters": [_id("recording_id")],
            "get": {
                "summary": "A recording: status, facts, clips and analysis",
                "responses": {"200": _json(_ref("Recording")), **_errors(401, 404)},
            },
            "delete": {
                "summary": "Delete a recording with every derived file and row",
                "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404)},
            },
        },
    }


def recall_paths() -> dict[str, Any]:
    moment_id = _id("moment_id")
    participant_note = (
        " Participants send a device token from POST /recall/devices (or, for a link without a "
        "PIN, the invitation token itself) as the Bearer token and reach only their own recall "
        "session; a PIN-protected invitation token alone answers 401 pin_required. Researchers "
        "may read any and write researcher-led ones. Writes beyond the per-minute limit answer "
        "429 (Retry-After); a session at its moment limit answers 400 limit_reached."
    )
    return {
        "/recordings/{recording_id}/recall-sessions": {
            "parameters": [_id("recording_id")],
            "get": {
                "summary": "The recording's recall sessions (no tokens)",
                "responses": {
                    "200": _json(_list("recall_sessions", "RecallSession")),
                    **_errors(401, 404),
                },
            },
            "post": {
                "summary": "Start recall for one participant; a self-guided one gets its link "
                "and token in this answer only",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["participant_id"],
                        "properties": {
                            "participant_id": {"type": "integer"},
                            "mode": {"enum": ["self", "researcher"]},
                            "pin": {"type": "string", "pattern": "^[0-9]{4,8}$"},
                        },
                    }
                ),
                "responses": {
                    "201": _json(_ref("RecallSession"), "Created"),
                    **_errors(401, 403, 404, 422),
                },
            },
        },
        "/recordings/{recording_id}/reveal": {
            "parameters": [_id("recording_id")],
            "post": {
                "summary": "Let each participant see the other's moments (audited; only after "
                "both have finished unless the study allows earlier)",
                "responses": {
                    "200": _json({"type": "object"}),
                    **_errors(401, 403, 404, 422),
                },
            },
        },
        "/recall/devices": {
            "post": {
                "summary": "Exchange the invitation token (Bearer) and, when the link has one, "
                "its PIN for a device token (shown once). Wrong PINs are counted per invitation "
                "and per address with growing waits (429, Retry-After) and lock the invitation "
                "after a number of failures until a researcher unlocks it. Stop, revoke and a "
                "new link end every device token.",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"pin": {"type": "string"}}}
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "properties": {
                                "device_token": {"type": "string"},
                                "recall_session_id": {"type": "integer"},
                            },
                        },
                        "Created",
                    ),
                    "429": _json(_ref("Error"), "Wait, or locked after too many wrong PINs"),
                    **_errors(401, 422),
                },
            },
        },
        "/recall-sessions/{rs_id}/moments": {
            "parameters": [_id("rs_id")],
            "get": {
                "summary": "Your own moments (and the other's, once revealed)." + participant_note,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "moments": {"type": "array", "items": _ref("Moment")},
                                "revealed": {
                                    "type": ["array", "null"],
                                    "items": _ref("Moment"),
                                },
                            },
                        }
                    ),
                    **_errors(401, 404),
                },
            },
            "post": {
                "summary": "Mark a moment. Send an Idempotency-Key header: a retry with the same "
                "key returns the first moment (200) instead of a duplicate." + participant_note,
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
                ],
                "requestBody": _body({**MOMENT_WRITE, "required": ["t_ms"]}),
                "responses": {
                    "200": _json(_ref("Moment"), "Already saved (a retry)"),
                    "201": _json(_ref("Moment"), "Created"),
                    "409": _json(
                        _ref("Error"), "Finished before the reveal: locked until reopened"
                    ),
                    **_errors(401, 404, 422),
                },
            },
        },
        "/recall-sessions/{rs_id}/moments/{moment_id}": {
            "parameters": [_id("rs_id"), moment_id],
            "patch": {
                "summary": "Change a moment; a stale version answers 409 with the current one",
                "requestBody": _body(_ref("MomentWrite")),
                "responses": {
                    "200": _json(_ref("Moment")),
                    "409": _json(
                        {
                            "type": "object",
                            "properties": {"error": {"type": "object"}, "moment": _ref("Moment")},
                        },
                        "Changed elsewhere, locked, or a blind moment frozen by the reveal",
                    ),
                    **_errors(401, 404, 422),
                },
            },
            "delete": {
                "summary": "Delete a moment (kept in the edit history, gone from every view)",
                "responses": {
                    "204": {"description": "Deleted"},
                    "409": _json(_ref("Error"), "Locked, or a blind moment frozen by the reveal"),
                    **_errors(401, 404),
                },
            },
        },
    }
