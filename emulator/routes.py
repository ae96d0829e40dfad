"""The Kraty server API (``/server/v1``): auth, body validation and the views."""
from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, g, request

from emulator.model import ApiError

MAX_QUANTITY = 10**15
MAX_KEY_LEN = 255
PROFILE_LIMIT_DEFAULT, PROFILE_LIMIT_MAX = 50, 200


def ok(data) -> Response:
    return Response(json.dumps({"data": data}, separators=(",", ":")), 200,
                    mimetype="application/json")


def error_response(err: ApiError, headers: dict | None = None) -> Response:
    return Response(error_body(err), err.status, headers=headers, mimetype="application/json")


def json_body(required: bool = True) -> dict:
    body = request.get_json(force=True, silent=True)
    if body is None and not required and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "validation_failed", "body must be a JSON object", {"body": "object"})
    return body


def _string(body: dict, field: str, errors: dict, required: bool = True, max_len=MAX_KEY_LEN):
    value = body.get(field)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        errors[field] = "required non-empty string" if required else "must be a string"
    elif len(value) > max_len:
        errors[field] = f"at most {max_len} characters"


def _positive_int(value) -> bool:
    return type(value) is int and 0 < value <= MAX_QUANTITY


def validate_change(body: dict, qty_field: str) -> dict:
    errors: dict = {}
    if not _positive_int(body.get(qty_field)):
        errors[qty_field] = f"positive integer <= {MAX_QUANTITY} required"
    _string(body, "reason", errors, max_len=1000)
    _string(body, "idempotencyKey", errors)
    _string(body, "sourceRefId", errors, required=False)
    if "allowNegative" in body and not isinstance(body["allowNegative"], bool):
        errors["allowNegative"] = "must be a boolean"
    if errors:
        raise ApiError(400, "validation_failed", "invalid request body", errors)
    return body


def normalize_contents(raw) -> list[dict]:
    """Accept ``[{currencyKey, amount} | {itemKey, quantity} | {type, key, amount|quantity}]``
    or ``{"currencies": {key: n}, "items": {key: n}}``; answer the first list form."""
    if isinstance(raw, dict):
        raw = ([{"currencyKey": k, "amount": v} for k, v in (raw.get("currencies") or {}).items()]
               + [{"itemKey": k, "quantity": v} for k, v in (raw.get("items") or {}).items()])
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "validation_failed", "contents must be a non-empty list",
                       {"contents": "non-empty list"})
    out = []
    for i, comp in enumerate(raw):
        comp = dict(comp) if isinstance(comp, dict) else {}
        kind = comp.pop("type", None)
        if "key" in comp:
            comp["itemKey" if kind == "item" else "currencyKey"] = comp.pop("key")
        if "currencyKey" in comp and isinstance(comp["currencyKey"], str):
            qty, key = comp.get("amount", comp.get("quantity")), {"currencyKey": comp["currencyKey"]}
            field = "amount"
        elif "itemKey" in comp and isinstance(comp["itemKey"], str):
            qty, key = comp.get("quantity", comp.get("amount")), {"itemKey": comp["itemKey"]}
            field = "quantity"
        else:
            raise ApiError(400, "validation_failed", "contents entry needs currencyKey or itemKey",
                           {f"contents[{i}]": "currencyKey or itemKey required"})
        if not _positive_int(qty):
            raise ApiError(400, "validation_failed", "contents quantities must be positive ints",
                           {f"contents[{i}]": f"{field} must be a positive integer"})
        out.append({**key, field: qty})
    return out


def authenticate_key(store, header: str) -> str:
    """The game id of a valid server_integration key in an ``Authorization`` header."""
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, "unauthenticated", "missing bearer API key")
    found = store.authenticate(header[7:].strip())
    if found is None:
        raise ApiError(401, "unauthenticated", "unknown API key")
    if found[1] != "server_integration":
        raise ApiError(403, "forbidden", "client_sdk keys cannot call the server API",
                       {"keyKind": found[1]})
    return found[0]


def check_player_id(player: str) -> None:
    if len(player) > MAX_KEY_LEN:
        raise ApiError(400, "validation_failed", "player id too long",
                       {"externalPlayerId": f"at most {MAX_KEY_LEN} characters"})


def error_body(err: ApiError) -> bytes:
    return json.dumps({"error": {"code": err.code, "message": err.message,
                                 "details": err.details}}).encode()


def register(app: Flask, emu) -> None:
    bp = Blueprint("kraty_server", __name__, url_prefix="/server/v1")
    store, dispatcher, stats = emu.store, emu.dispatcher, emu.stats

    @bp.before_request
    def authenticate():
        with stats.lock:
            stats.handled += 1
            stats.by_route[f"{request.method} {request.url_rule.rule}"] += 1
        g.game = authenticate_key(store, request.headers.get("Authorization", ""))
        check_player_id(request.view_args.get("player", ""))

    def change(player: str, key: str, op: str, qty_field: str):
        body = validate_change(json_body(), qty_field)
        data, events = store.apply(g.game, op, player, key, body)
        if events:
            dispatcher.emit(g.game, events)
        return ok(data)

    @bp.post("/players/<player>/wallet/<currency>/<any(credit, debit):op>")
    def wallet_change(player, currency, op):
        return change(player, currency, op, "amount")

    @bp.post("/players/<player>/inventory/<item>/<any(grant, revoke):op>")
    def inventory_change(player, item, op):
        return change(player, item, op, "quantity")

    @bp.post("/players/<player>/grants")
    def make_good(player):
        body = json_body()
        errors: dict = {}
        _string(body, "reason", errors, max_len=1000)
        _string(body, "idempotencyKey", errors)
        _string(body, "source", errors, required=False)
        _string(body, "sourceRefId", errors, required=False)
        if errors:
            raise ApiError(400, "validation_failed", "invalid request body", errors)
        contents = normalize_contents(body.get("contents"))
        data, events = store.make_good(g.game, player, contents, body)
        dispatcher.emit(g.game, events)
        return ok(data)

    @bp.get("/players/<player>")
    def profile(player):
        raw = request.args.get("limit", str(PROFILE_LIMIT_DEFAULT))
        if not raw.isdigit() or not 1 <= int(raw) <= PROFILE_LIMIT_MAX:
            raise ApiError(400, "validation_failed", "limit must be 1..200", {"limit": raw})
        return ok(store.profile(g.game, player, int(raw)))

    @bp.get("/players/<player>/export")
    def export(player):
        return ok(store.export(g.game, player))

    @bp.delete("/players/<player>")
    def delete(player):
        body = json_body(required=False)
        errors: dict = {}
        _string(body, "reason", errors, required=False, max_len=1000)
        if errors:
            raise ApiError(400, "validation_failed", "invalid request body", errors)
        data, events = store.delete(g.game, player, body.get("reason"))
        dispatcher.emit(g.game, events)
        return ok(data)

    @bp.post("/players/<player>/merge")
    def merge(player):
        body = json_body()
        errors: dict = {}
        _string(body, "into", errors)
        if errors:
            raise ApiError(400, "validation_failed", "invalid request body", errors)
        data, events = store.merge(g.game, player, body["into"])
        dispatcher.emit(g.game, events)
        return ok(data)

    @bp.post("/migrate/<any(players, wallets, inventory):kind>")
    def migrate(kind):
        body = json_body()
        return ok(store.migrate(g.game, kind, body.get("rows")))

    app.register_blueprint(bp)
