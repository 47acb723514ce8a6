"""The machinery of /api/v1's one source of truth: flask-smorest blueprints, marshmallow schemas.

Every API route is registered on an :class:`ApiBlueprint`. Its request schema (documented with
``bp.input``, loaded with :func:`read`) validates the input, its response schema
(``bp.response``) serialises the output, and both generate the OpenAPI document served at
``/api/v1/openapi.json``. The schemas live in ``ipr.web.schemas``; docs/api.md says how to add
a route. Written here by hand, because no schema can say them: the document's ``info`` text
and Bearer security scheme, the ``/api/v1`` server prefix, and the 429 every write may answer
(the rate limit sits in ``token_required``/``recall_caller``, not in a schema).

Errors keep the app's one shape, ``{"error": {"code", "message", "field"?}}``: a request that
breaks its schema raises ``ipr.errors.ValidationError`` (422), which the app's handler renders
(``ipr.web.context``). flask-smorest's own error handler is not installed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import flask_smorest
from flask import Flask, Response, current_app, make_response
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict

from ipr.errors import ValidationError
from ipr.web.context import db
from ipr.web.schemas import ErrorSchema

PREFIX = "/api/v1"
JSON_OBJECT = "Send a JSON object with Content-Type: application/json."

DESCRIPTION = (
    "Researchers authenticate with 'Authorization: Bearer <token>' from "
    "`flask --app app ipr token EMAIL`. No token: 401. An object outside your studies: "
    "404, indistinguishable from a missing one. All times are integer milliseconds. "
    "A recording's media_url and clip urls (paths on this server) accept the same "
    "Bearer token, with Range requests. Invalid input: 422 with "
    '{"error": {"code": "invalid", "message", "field"}} naming the first field at fault.'
)

ERROR_TEXT = {
    400: "Malformed request",
    401: "No valid token",
    403: "Your role in this study is read-only",
    404: "Not found, or not yours",
    409: "Conflict",
    413: "Larger than this server accepts (IPR_UPLOAD_MAX_BYTES)",
    422: "Invalid request",
    429: "Too many writes in a minute (Retry-After)",
}


def _first_error(messages: Any, path: str = "") -> tuple[str, str]:
    """The first (field, message) of marshmallow's nested error messages."""
    if isinstance(messages, Mapping):
        key, value = next(iter(messages.items()))
        if key == "_schema" or (path and key in ("key", "value")):  # a Dict's key or value
            return _first_error(value, path)
        name = f"{path}.{key}" if path else str(key)
        return _first_error(value, name)
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], path)
    return path, str(messages)


class Parser(FlaskParser):
    """webargs' Flask parser, failing with the app's own 422 instead of flask-smorest's."""

    def load_json(self, req: Any, schema: Schema) -> Any:
        data = req.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError(JSON_OBJECT)
        return data

    def load_files(self, req: Any, schema: Schema) -> Any:
        """The whole multipart body, files and fields: ``location="files"`` documents one
        multipart/form-data request body with both."""
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)

    def handle_error(self, error: SchemaError, req: Any, schema: Schema, **_: Any) -> Any:
        messages = error.messages
        if isinstance(messages, dict) and len(messages) == 1:  # webargs: {location: {...}}
            (location,) = messages
            if location in self.__location_map__:
                messages = messages[location]
        field, message = _first_error(messages)
        if not field or message.startswith("Send "):
            raise ValidationError(message, field=field or None)
        raise ValidationError(f"{field}: {message}", field=field)


class ApiBlueprint(flask_smorest.Blueprint):
    """A blueprint whose routes are documented from their schemas (see the module docstring)."""

    ARGUMENTS_PARSER = Parser()

    def input(self, schema: type[Schema], location: str = "json", **kw: Any) -> Any:
        """Document ``schema`` as the route's request (body, query or headers), as
        ``arguments`` does, without parsing it: the view calls :func:`read` after its token
        and permission checks, so an outsider gets 404 (a viewer 403), never a 422 that tells
        the object exists."""

        def decorate(view: Any) -> Any:
            probe = self.arguments(schema, location=location, **kw)(lambda *a, **k: None)
            found = probe._apidoc["arguments"]
            doc = view.__dict__.setdefault("_apidoc", {}).setdefault("arguments", {})
            doc.setdefault("parameters", []).extend(found["parameters"])
            doc.setdefault("responses", {}).update(found["responses"])
            return view

        return decorate

    def errors(self, *codes: int, **texts: str) -> Callable[[Any], Any]:
        """Document the error answers a route gives (the ``Error`` shape), e.g. 401, 404.
        ``texts`` override a code's description: ``errors(401, c409="Not researcher-led")``."""

        def decorate(view: Any) -> Any:
            for code in codes:
                text = texts.get(f"c{code}", ERROR_TEXT[code])
                view = self.alt_response(code, schema=ErrorSchema, description=text)(view)
            return view

        return decorate


def read(schema: type[Schema], location: str = "json") -> dict[str, Any]:
    """The request's ``location`` loaded by ``schema`` (documented with ``bp.input``); a
    request that breaks it raises ``ValidationError`` (422)."""
    return ApiBlueprint.ARGUMENTS_PARSER.parse(schema, location=location)


class Api(flask_smorest.Api):
    """flask-smorest's Api without its error handler (the app renders every error itself) and
    without a catch-all ``default`` response (each route lists the answers it gives)."""

    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ErrorSchema  # the 422 that @arguments documents has the app's shape

    def _register_error_handlers(self) -> None:
        pass

    def _register_pagination_header(self) -> None:
        pass  # no paginated route; it would add an unused PaginationMetadata schema


def init_app(app: Flask, blueprints: list[ApiBlueprint]) -> Api:
    app.config.update(API_TITLE="IPR annotator API", API_VERSION="1", OPENAPI_VERSION="3.1.0")
    api = Api(app, spec_kwargs={"info": {"description": DESCRIPTION}})
    app.cli.commands.pop("openapi", None)  # its raw spec lacks what openapi_document() adds
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for bp in blueprints:
        api.register_blueprint(bp)
    app.extensions["ipr_api"] = api
    return api


def openapi_document() -> dict[str, Any]:
    """The generated document, with the parts no schema can say (see the module docstring)."""
    doc = copy.deepcopy(current_app.extensions["ipr_api"].spec.to_dict())  # shares apispec's
    doc["servers"] = [{"url": PREFIX}]
    doc["security"] = [{"bearer": []}]
    doc["paths"] = {path.removeprefix(PREFIX): item for path, item in doc["paths"].items()}
    for item in doc["paths"].values():
        for method in ("post", "put", "patch", "delete"):
            if method in item:
                item[method].setdefault("responses", {}).setdefault(
                    "429", _error_response(ERROR_TEXT[429])
                )  # every write may be rate-limited (per user and per link)
    return doc


def problems(exc: Any) -> Response:
    """422 listing every problem of a file (an import, an interview's events or transcript)."""
    db().rollback()
    error = {"code": exc.code, "message": exc.message, "problems": exc.problems}
    return make_response(ErrorSchema().dump({"error": error}), 422)


def _error_response(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
