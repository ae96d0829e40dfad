"""Error answers: AccelByte's ErrorEntity on /platform paths, ``{"error": {...}}`` on our own."""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from mappers.accelbyte import error_entity

log = logging.getLogger(__name__)

# AccelByte error codes we answer with (see docs/api.md)
UNAUTHORIZED = 20001
VALIDATION = 20002
FORBIDDEN = 20013
UNPARSEABLE = 20019
NOT_FOUND = 20008
UNSUPPORTED_MEDIA = 20025
TOO_LARGE = 20026
UNAVAILABLE = 20000


class ApiError(Exception):
    def __init__(self, status: int, code: int | str, message: str, variables: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.variables = status, code, message, variables
        self.headers = headers or {}


def _platform() -> bool:
    return request.path.startswith("/platform/")


def error_response(status: int, code, message: str, variables: dict | None = None):
    if _platform():
        body = error_entity(int(code) if str(code).isdigit() else UNAVAILABLE, message, variables)
    else:
        body = {"error": {"code": str(code), "message": message, "requestId": g.get("request_id")}}
        if variables:
            body["error"]["details"] = variables
    response = jsonify(body)
    response.status_code = status
    return response


HTTP_CODES = {400: UNPARSEABLE, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND, 405: VALIDATION,
              413: TOO_LARGE, 415: UNSUPPORTED_MEDIA}
HTTP_NAMES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
              422: "validation_failed"}


def register(app: Flask) -> None:
    from middleware.ops.base import OpsError  # the ops service's refusals (the console shows its own pages)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = error_response(exc.status, exc.code, exc.message, exc.variables)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(OpsError)
    def _ops_error(exc: OpsError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, UNAVAILABLE) if _platform() else HTTP_NAMES.get(status, f"http_{status}")
        messages = (getattr(exc, "data", None) or {}).get("messages")  # webargs' field errors (flask-smorest)
        if messages:
            return error_response(status, code, "the request does not validate", {"fields": messages})
        response = error_response(status, code, exc.description or exc.name)
        allow = dict(exc.get_headers()).get("Allow")  # a 405 says which methods the path takes (RFC 9110)
        if allow:
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(RedisError)
    def _redis_down(exc):  # only where a request cannot do without the queue; ingest records and answers
        log.error("redis unavailable: %s", exc.__class__.__name__)
        response = error_response(503, UNAVAILABLE if _platform() else "queue_unavailable",
                                  "the job queue (Redis) is unavailable; try again")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)  # no pooled connection free within KB_DATABASE_POOL_TIMEOUT
    def _database_down(exc):
        log.error("database unavailable: %s", exc.__class__.__name__)
        response = error_response(503, UNAVAILABLE if _platform() else "database_unavailable",
                                  "the ledger database is unavailable; try again")
        response.headers["Retry-After"] = "5"
        return response
