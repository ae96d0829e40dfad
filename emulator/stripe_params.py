"""Stripe's API conventions, for the fake Stripe API (emulator/stripe_*.py): its error objects, ids like Stripe's,
request parameters checked as Stripe checks them, list objects with cursor pagination, and which account sees
an object."""
from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_letters + string.digits
PAGE_PARAMS = ("limit", "starting_after", "ending_before")   # a list call's cursor pagination


class StripeError(Exception):
    """A Stripe error answer: ``{"error": {"type", "code", "message", "param"}}``."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_
        self.code, self.param, self.headers = code, param, headers or {}

    def body(self) -> dict:
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def new_id(prefix: str, size: int = 24, livemode: bool | None = None) -> str:
    mode = "" if livemode is None else ("live_" if livemode else "test_")
    return f"{prefix}_{mode}{''.join(secrets.choice(ALPHABET) for _ in range(size))}"


def missing(kind: str, object_id: str, param: str, obj: dict | None = None) -> StripeError:
    """Stripe's 404; ``obj`` is the same id in the other mode, which Stripe points out."""
    message = f"No such {kind}: '{object_id}'"
    if obj is not None:
        used, other = ("test", "live") if obj["livemode"] else ("live", "test")
        message += (f"; a similar object exists in {other} mode, but a {used} mode key was used "
                    "to make this request.")
    return StripeError(404, message, code="resource_missing", param=param)


def bad(message: str, param: str | None = None) -> StripeError:
    return StripeError(400, message, code="parameter_invalid", param=param)


def _check_fields(body, allowed: set, what: str) -> dict:
    if not isinstance(body, dict):
        raise bad(f"{what} must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise StripeError(400, f"Received unknown parameter: {unknown[0]}",
                          code="parameter_unknown", param=unknown[0])
    return body


def _typed(body: dict, key: str, type_: type, default=None, choices=None):
    value = body.get(key, default)
    wrong = not isinstance(value, type_) or type(value) is bool and type_ is not bool
    if value is not None and wrong:
        raise bad(f"{key} must be of type {type_.__name__}", key)
    if choices and value not in choices:
        raise bad(f"{key} must be one of {', '.join(choices)}", key)
    return value


def _metadata(body: dict, key: str = "metadata") -> dict:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise bad(f"{key} must be an object", key)
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _amount(body: dict, key: str, default=None) -> int:
    value = body.get(key, default)
    if type(value) is not int or value < 0:
        raise bad(f"{key} must be an integer >= 0", key)
    return value


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return 10
    try:
        limit = int(raw)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {raw}", code="parameter_invalid_integer",
                          param="limit")
    if not 1 <= limit <= 100:
        bound = "greater than or equal to 1" if limit < 1 else "less than or equal to 100"
        raise StripeError(400, f"This value must be {bound}.", code="parameter_invalid_integer",
                          param="limit")
    return limit


def list_object(items: list[dict], url: str, params: dict, kind: str) -> dict:
    """One page of a Stripe list, cursor-paginated by object id."""
    limit = parse_limit(params.get("limit"))
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise StripeError(400, "You may only specify one of these parameters: ending_before, "
                          "starting_after.", param="starting_after")
    cursor = after or before
    if cursor:
        index = next((i for i, item in enumerate(items) if item["id"] == cursor), None)
        if index is None:
            raise StripeError(400, f"No such {kind}: '{cursor}'", code="resource_missing",
                              param="starting_after" if after else "ending_before")
        if after:
            rest = items[index + 1:]
            page, has_more = rest[:limit], len(rest) > limit
        else:
            rest = items[:index]
            page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def visible(obj: dict, mode: str | None, account: str | None = None) -> bool:
    """Test-mode keys see test objects, live-mode keys live ones; other configured keys see all. A connected
    account's objects only on that account (``account``: the request's Stripe-Account)."""
    return obj.get("account") == account and (mode is None or obj["livemode"] == (mode == "live"))
