"""AccelByte-compatible fulfilment API for third-party storefronts (Platform Fulfillment V2/V3)."""
from __future__ import annotations

import json

from flask import Blueprint, g, jsonify, request
from marshmallow import ValidationError

from mappers import accelbyte as ab
from mappers import accelbyte_results as results
from middleware.services import services

from middleware.api import fulfil_orders as orders
from middleware.api.settle import NotSettled
from middleware.api.errors import FORBIDDEN, NOT_FOUND, UNAUTHORIZED, UNPARSEABLE, UNSUPPORTED_MEDIA, VALIDATION, ApiError

bp = Blueprint("accelbyte", __name__)

USER = "/namespaces/<namespace>/users/<user_id>/fulfillments"
# one instance for every request: a schema keeps nothing between loads, and making one (with its nested item
# schema) costs five times the load itself
FULFIL_REQUEST = ab.FulfillmentRequestSchema()


def _authenticate(namespace: str):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    storefront = services().storefronts.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if storefront is None:
        raise ApiError(401, UNAUTHORIZED, "unauthorized access: a valid storefront bearer token is required")
    # asked first, and answered alike for every namespace the token may not use: whether the namespace
    # exists is not revealed
    if not storefront.may_access(namespace):
        raise ApiError(403, FORBIDDEN, "insufficient permissions")
    game = services().catalog.game(namespace)
    if game is None:  # configured for the storefront but gone from the catalog
        raise ApiError(404, NOT_FOUND, f"Namespace [{namespace}] does not exist", {"namespace": namespace})
    g.storefront = storefront
    return game


def _check_ids(**ids: str) -> None:
    for name, value in ids.items():
        if not ab.is_clean_id(value):
            raise ApiError(400, VALIDATION, f"{name}: must be 1-{ab.MAX_ID} printable characters without spaces",
                           {"field": name})


def _json_body():
    mimetype = request.mimetype
    if mimetype != "application/json":
        raise ApiError(415, UNSUPPORTED_MEDIA, "Content-Type must be application/json")
    try:
        return json.loads(request.get_data(cache=True), parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, UNPARSEABLE, "unable to parse request body: malformed JSON") from None


def _not_json(constant: str):
    """Python's json module accepts NaN and Infinity; JSON (and PostgreSQL's json type) does not."""
    raise ValueError(f"{constant} is not JSON")


def _load(schema, body):
    try:
        return schema.load(body)
    except ValidationError as exc:
        problems = ab.flatten_errors(exc.messages)
        raise ApiError(400, VALIDATION, "validation error: " + "; ".join(problems)) from None


def _fulfil_answer(result: dict, version: int):
    status = 409 if version == 2 and result["state"] == "FULFILL_FAILED" else 200
    return jsonify(result), status


def _fulfil(namespace, user_id, transaction_id, version):
    game = _authenticate(namespace)
    _check_ids(userId=user_id, transactionId=transaction_id)
    body = _json_body()
    loaded = _load(FULFIL_REQUEST, body)
    lines = ab.order_lines(loaded["items"], body["items"])
    result = orders.fulfil(game, g.storefront.name, user_id, transaction_id, lines, request.get_data(cache=True))
    return _fulfil_answer(result, version)


def _no_body() -> None:
    """Retry/revoke: an empty body, sent as application/json or with no content type at all."""
    data = request.get_data(cache=True)
    if data.strip() not in (b"", b"{}", b"null"):
        raise ApiError(400, VALIDATION, "this request takes no body")


@bp.put(f"/platform/v2/admin{USER}/<transaction_id>")
def fulfil_v2(namespace, user_id, transaction_id):
    return _fulfil(namespace, user_id, transaction_id, 2)


@bp.put(f"/platform/v3/admin{USER}/<transaction_id>")
def fulfil_v3(namespace, user_id, transaction_id):
    if transaction_id == "bulk":
        return bulk_v3(namespace, user_id)
    return _fulfil(namespace, user_id, transaction_id, 3)


def _retry(namespace, user_id, transaction_id, version):
    game = _authenticate(namespace)
    _check_ids(userId=user_id, transactionId=transaction_id)
    _no_body()
    return _fulfil_answer(orders.retry(game, g.storefront.name, user_id, transaction_id), version)


@bp.put(f"/platform/v2/admin{USER}/<transaction_id>/retry")
def retry_v2(namespace, user_id, transaction_id):
    return _retry(namespace, user_id, transaction_id, 2)


@bp.put(f"/platform/v3/admin{USER}/<transaction_id>/retry")
def retry_v3(namespace, user_id, transaction_id):
    return _retry(namespace, user_id, transaction_id, 3)


def _revoke(namespace, user_id, transaction_id, version):
    game = _authenticate(namespace)
    _check_ids(userId=user_id, transactionId=transaction_id)
    _no_body()
    result = orders.revoke(game, g.storefront.name, user_id, transaction_id)
    status = 409 if version == 2 and result["state"] == "REVOKE_FAILED" else 200
    return jsonify(result), status


@bp.put(f"/platform/v2/admin{USER}/<transaction_id>/revoke")
def revoke_v2(namespace, user_id, transaction_id):
    return _revoke(namespace, user_id, transaction_id, 2)


@bp.put(f"/platform/v3/admin{USER}/<transaction_id>/revoke")
def revoke_v3(namespace, user_id, transaction_id):
    return _revoke(namespace, user_id, transaction_id, 3)


def bulk_v3(namespace, user_id):
    game = _authenticate(namespace)
    _check_ids(userId=user_id)
    body = _json_body()
    if not isinstance(body, list) or not 1 <= len(body) <= orders.MAX_BULK:
        raise ApiError(400, VALIDATION, f"validation error: body must be a list of 1 to {orders.MAX_BULK} entries")
    loaded = _load(ab.BulkEntrySchema(many=True), body)
    ids = [entry["transactionId"] for entry in loaded]
    if len(set(ids)) != len(ids):
        raise ApiError(400, VALIDATION, "validation error: a transactionId appears twice in the bulk request")
    out, unsettled = [], []
    for entry, raw in zip(loaded, body):
        lines = ab.order_lines(entry["items"], raw["items"])
        raw_body = json.dumps(raw, separators=(",", ":"), sort_keys=True).encode()
        try:
            out.append(orders.fulfil(game, g.storefront.name, user_id, entry["transactionId"], lines, raw_body))
        except NotSettled as exc:  # the others go on; the whole answer is then "not settled yet"
            unsettled.append(exc)
        except ApiError as exc:  # refused as a single PUT would be: nothing stored, nothing will be granted
            out.append(results.refused_entry(namespace, user_id, entry["transactionId"], lines, exc.code,
                                             exc.message))
    if unsettled:
        raise NotSettled([t for exc in unsettled for t in exc.transaction_ids],
                         "; ".join(exc.reason for exc in unsettled if exc.reason) or None,
                         max(exc.retry_after for exc in unsettled))
    return jsonify(out), 200


@bp.get("/platform/v2/admin/namespaces/<namespace>/fulfillments")
def query_v2(namespace):
    game = _authenticate(namespace)
    rows, paging = orders.query(game, g.storefront.name, request.args)
    return jsonify({"data": [results.fulfilment_info(f, game) for f in rows], "paging": paging}), 200
