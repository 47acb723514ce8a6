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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "No valid token",
        403: "Your role in this study is read-only",
        404: "Not found, or not yours",
        422: "Invalid request",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IPR annotator API",
            "version": "1",
            "description": "Researchers authenticate with 'Authorization: Bearer <token>' from "
            "`flask --app app ipr token EMAIL`. No token: 401. An object outside your studies: "
            "404, indistinguishable from a missing one. All times are integer milliseconds.",
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
            },
        },
        "paths": {
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
