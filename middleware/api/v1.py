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
from werkzeug.routing import UnicodeConverter

from mappers.accelbyte import is_clean_id
from middleware.ledger.storable import MESSAGE, unstorable

from middleware.api import docs_page


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


def printable(value: str) -> None:
    if not value.isprintable():
        raise ValidationError("printable characters only")


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


def clean_id_parameter(name: str) -> dict:
    """A path parameter that is an id (clean_id), for ``Blueprint.route(parameters=[...])``."""
    return {"in": "path", "name": name, "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": CLEAN_ID_PATTERN}}


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


# What the description can say of the text the parser refuses, in the regex syntax JSON Schema tools share
# (ECMA 262, Python, Rust): no NUL. Unpaired surrogates are not Unicode text, so no JSON Schema string holds
# them; that they are refused too is in the description of every string.
STORABLE_PATTERN = r"^[^\x00]*$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"  # printable(): no control characters (Latin-1's included)
NOT_BLANK_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"  # not_blank(): something besides whitespace
JWS_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"  # three base64url segments
# An id (clean_id): printable, no whitespace. The pattern leaves out ASCII's and Latin-1's control characters
# and all whitespace; the other characters Python does not call printable (format and unassigned code points)
# no portable pattern can name.
CLEAN_ID_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f]{1,128}$"


def storable_text(self, field, ret, **kwargs) -> dict:
    """apispec: a string argument says as a pattern what the parser refuses (NUL; an id: whitespace and control
    characters too; printable text: control characters; a reason: only blanks)."""
    if not isinstance(field, fields.String) or {"pattern", "enum", "format"} & set(ret):
        return {}
    if clean_id in field.validators:
        return {"pattern": CLEAN_ID_PATTERN, "minLength": 1, "maxLength": 128}
    if printable in field.validators:
        return {"pattern": PRINTABLE_PATTERN}
    if not_blank in field.validators:
        return {"pattern": NOT_BLANK_PATTERN}
    return {"pattern": STORABLE_PATTERN}


def catalog_values(catalog):
    """apispec: an argument naming a game (``namespace``) or a Google Play app (``packageName``) lists the
    catalog's (the API refuses any other): this deployment's description says which."""
    choices = {"namespace": sorted(catalog.games),
               "packageName": sorted(game.google_play.package_name for game in catalog.google_play_games())}

    def attribute(self, field, ret, **kwargs) -> dict:
        if isinstance(field, fields.String) and isinstance(field.parent, Strict) and choices.get(field.name):
            return {"enum": choices[field.name]}
        return {}
    return attribute


def storable_path_parameter(converter) -> dict:
    return {"type": "string", "minLength": 1, "pattern": STORABLE_PATTERN}


def init_api(app: Flask, blueprints) -> Api:
    app.config.update(API_TITLE="kraty-bridge", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json", **docs_page.CONFIG)
    api = _Api(app, spec_kwargs={"info": {"description": "kraty-bridge's own APIs. Errors: "
                                          '`{"error": {"code", "message", "requestId", "details"?}}`.'}})
    api.spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer",
                                                   "description": "an API key made with `flask keys create`"})
    api.ma_plugin.converter.add_attribute_function(catalog_values(app.extensions["kraty_bridge"].catalog))
    api.ma_plugin.converter.add_attribute_function(storable_text)
    api.register_converter(UnicodeConverter, storable_path_parameter)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.register_blueprint(docs_page.bp)  # /docs/assets/: the docs page's scripts and styles, from a package
    return api
