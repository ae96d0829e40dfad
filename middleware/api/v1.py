"""Our own ``/v1`` APIs, described in OpenAPI by flask-smorest: ``/openapi.json`` and a docs page ``/docs``
(Swagger UI, its assets served by the app: docs_page.py).

Their blueprints are :class:`Blueprint` (flask-smorest's, with the argument parser below), so every ``/v1``
endpoint refuses with a 400 what would otherwise reach the code and answer 500: JSON that Python cannot
decode (nested deeper than its recursion limit, integers of more than 4300 digits) and text the ledger
cannot store (NUL characters, unpaired UTF-16 surrogates) in the path, the query or the body.
"""
from __future__ import annotations

import json
from datetime import UTC

import flask_smorest
from flask import Flask, request
from flask_smorest import Api
from marshmallow import RAISE, Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser, abort

from mappers.accelbyte import is_clean_id
from middleware.storable import MESSAGE, unstorable

from . import docs_page


class Parser(FlaskParser):
    def _raw_load_json(self, req):
        try:
            data = super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise  # webargs answers these (400 "Invalid JSON body.", or an empty body read as missing)
        except (ValueError, RecursionError):  # an integer of more than 4300 digits; nesting too deep
            abort(400, messages={"json": ["Invalid JSON body: too deeply nested, or a number too long."]})
        if unstorable(data):
            abort(400, messages={"json": [MESSAGE]})
        return data

    def load_querystring(self, req, schema):
        refused = {name: [MESSAGE] for name, value in req.args.items(multi=True)
                   if unstorable(name) or unstorable(value)}
        if refused:
            abort(400, messages={"query": refused})
        return super().load_querystring(req, schema)


def _refuse_unstorable_path() -> None:
    refused = {name: [MESSAGE] for name, value in (request.view_args or {}).items() if unstorable(value)}
    if refused:
        abort(400, messages={"path": refused})


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time with a timezone, loaded in UTC; a time UTC cannot hold (year 1 at +14:00): invalid."""

    def _deserialize(self, value, attr, data, **kwargs):
        aware = super()._deserialize(value, attr, data, **kwargs)
        try:
            return aware.astimezone(UTC)
        except OverflowError:
            raise ValidationError("out of range once converted to UTC") from None


class Strict(Schema):
    """Arguments of our APIs: an unknown field is refused (422), never ignored."""

    class Meta:
        unknown = RAISE


def clean_id(value: str) -> None:
    """A player id (or another id we pass to Kraty): 1-128 printable characters without spaces."""
    if not is_clean_id(value):
        raise ValidationError("1-128 printable characters without spaces")


def check_order(data: dict, first: str, second: str) -> None:
    """Refuse a time range whose ``first`` bound is not before its ``second``."""
    if data.get(first) and data.get(second) and data[first] >= data[second]:
        raise ValidationError(f"{first} must be before {second}", first)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with :class:`Parser`, refusing unstorable path parameters too."""
    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(_refuse_unstorable_path)  # after the app's: the answer has its request id


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"description": "what went wrong, e.g. `validation_failed`"})
    message = fields.String(required=True)
    requestId = fields.String(allow_none=True, metadata={"description": "the X-Request-Id of the answer"})
    details = fields.Dict(metadata={"description": "e.g. `fields`: the problems by parameter and field"})


class Error(Schema):
    """The one error shape of our APIs (documented for every answer of an operation that is an error)."""
    error = fields.Nested(ErrorDetail, required=True)


class _Api(Api):
    ERROR_SCHEMA = Error

    def _register_error_handlers(self):
        """Errors are answered by middleware/api/errors.py, in the one shape of our APIs."""


def init_api(app: Flask, blueprints) -> Api:
    app.config.update(API_TITLE="kraty-bridge", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json", **docs_page.CONFIG)
    api = _Api(app, spec_kwargs={"info": {"description": "kraty-bridge's own APIs. Errors: "
                                          '`{"error": {"code", "message", "requestId", "details"?}}`.'}})
    api.spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer",
                                                   "description": "an API key made with `flask keys create`"})
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.register_blueprint(docs_page.bp)  # /docs/assets/: the docs page's scripts and styles, from a package
    return api
