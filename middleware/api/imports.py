"""``POST /v1/imports``: past purchases recorded as orders granted elsewhere (docs/migration.md).

Needs an ``admin`` key (that may touch the game). Up to 1,000 rows a call, each with its own result; a row
already present is skipped, so the same call can be repeated safely. A request that is malformed as a whole
(no rows, more than 1,000, an unknown game or format) answers 422 in our one error shape and writes nothing.
"""
from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from middleware.api import auth
from middleware.imports.purchases import import_rows
from middleware.imports.rows import FORMATS, MAX_ROWS
from middleware.services import services

from middleware.api.fulfilments import check_namespace
from middleware.api.v1 import Blueprint, Strict

blp = Blueprint("imports", __name__, url_prefix="/v1/imports",
                description="Past purchases from a studio's previous system. Needs an `admin` key.")


class ImportRequest(Strict):
    namespace = fields.String(required=True, validate=validate.Length(1, 64), metadata={"description": "the game"})
    format = fields.String(load_default="plain", validate=validate.OneOf(FORMATS),
                           metadata={"description": "`plain` (kraty-bridge's columns) or `revenuecat` (RevenueCat's "
                                                    "transactions export columns)"})
    dryRun = fields.Boolean(load_default=False, metadata={"description": "check every row; write nothing"})
    # each row is taken as it comes: one that is not an object of the format's columns (even null) fails alone,
    # with its reason, and never takes out the batch
    rows = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(1, MAX_ROWS),
                       metadata={"description": f"1-{MAX_ROWS} rows, each an object in the format's columns"})


class RowResult(Schema):
    row = fields.Integer(metadata={"description": "1-based position in `rows`"})
    status = fields.String(metadata={"description": "`applied`, `skipped` (already present) or `failed`"})
    transactionId = fields.String(allow_none=True)
    orderId = fields.String(metadata={"description": "the order (applied, or the one already present)"})
    reason = fields.String(metadata={"description": "why it was skipped or failed"})


class ImportResult(Schema):
    dryRun = fields.Boolean()
    applied = fields.Integer()
    skipped = fields.Integer()
    failed = fields.Integer()
    results = fields.List(fields.Nested(RowResult))


@blp.before_request
def _authenticate():
    """401 / 403 before anything about the body is said (the body is validated before the view runs)."""
    auth.require("admin")


@blp.route("", methods=["POST"])
@blp.arguments(ImportRequest)
@blp.response(200, ImportResult)
@blp.doc(security=[{"apiKey": []}])
def post_import(body):
    """Record past purchases as orders granted elsewhere (Kraty is not called); a result per row."""
    check_namespace(body["namespace"])
    auth.require("admin", body["namespace"])
    game = services().catalog.game(body["namespace"])
    results = [r.as_dict() for r in import_rows(services(), game, enumerate(body["rows"], start=1), body["format"],
                                                dry_run=body["dryRun"], actor=f"key:{g.api_key.name}")]
    counts = {status: sum(1 for r in results if r["status"] == status) for status in ("applied", "skipped", "failed")}
    return {"dryRun": body["dryRun"], **counts, "results": results}
