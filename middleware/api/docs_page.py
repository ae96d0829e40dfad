"""The ``/docs`` page's assets, served by the app from the pinned ``swagger-ui-bundle`` package (no CDN).

flask-smorest renders ``/docs`` (Swagger UI) with ``<script>`` and ``<link>`` tags under
``OPENAPI_SWAGGER_UI_URL``; that URL is this blueprint's ``/docs/assets/``, so the page works with no
internet access. Swagger UI's online validator badge (an image from validator.swagger.io) is turned off.
"""
from __future__ import annotations

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs/assets/"
# flask-smorest's Swagger UI settings (app.config)
CONFIG = {
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": ASSETS_URL,
    "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
}
MAX_AGE = 86_400  # the files change only with the package's version

bp = Blueprint("docs_assets", __name__)


@bp.get(f"{ASSETS_URL}<path:name>")
def asset(name: str):
    """A file of Swagger UI's distribution (swagger-ui-bundle.js, swagger-ui.css...); 404 for anything else."""
    return send_from_directory(str(swagger_ui_path), name, max_age=MAX_AGE)
