"""Our own ``/v1`` APIs, described in OpenAPI by flask-smorest: ``/openapi.json`` and a docs page ``/docs``."""
from __future__ import annotations

from flask import Flask
from flask_smorest import Api

REDOC = "https://cdn.jsdelivr.net/npm/redoc@2.1.5/bundles/redoc.standalone.js"


class _Api(Api):
    def _register_error_handlers(self):
        """Errors are answered by middleware/api/errors.py, in the one shape of our APIs."""


def init_api(app: Flask, blueprints) -> Api:
    app.config.update(API_TITLE="kraty-bridge", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json", OPENAPI_REDOC_PATH="docs",
                      OPENAPI_REDOC_URL=REDOC)
    api = _Api(app, spec_kwargs={"info": {"description": "kraty-bridge's own APIs. Errors: "
                                          '`{"error": {"code", "message", "requestId", "details"?}}`.'}})
    api.spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer",
                                                   "description": "an API key made with `flask keys create`"})
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    return api
