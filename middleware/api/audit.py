"""``GET /v1/audit``: the audit log of ops actions (who, when, why, the order before and after).

Needs a ``viewer`` key: the people who look at orders may see who changed them and why. A key limited to
some games sees only their entries. Newest first (by entry id), keyset pagination like ``/v1/fulfilments``.
"""
from __future__ import annotations

from marshmallow import (
    RAISE,
    fields,
    validate,
    validates_schema,
)

from middleware.api import auth

from middleware import ops
from middleware.services import services

from middleware.api.errors import ApiError
from middleware.api.fulfilment_schemas import CursorPage, LogEntry, Page
from middleware.api.fulfilments import actor, check_namespace, decode_cursor, encode_cursor
from middleware.api.v1 import Blueprint, UtcDateTime, check_order

blp = Blueprint("audit", __name__, url_prefix="/v1/audit",
                description="The audit log of ops actions. Needs a `viewer` key.")
CURSOR_KIND = "audit"


class AuditArgs(Page):
    targetType = fields.String(validate=validate.OneOf(("fulfilment", "delivery", "sink", "player")),
                               metadata={"description": "what was acted on"})
    targetId = fields.String(validate=validate.Length(1, 255), metadata={"description": "e.g. the order id"})
    actor = fields.String(validate=validate.Length(1, 128), metadata={"description": "key:<name>, cli:<user>..."})
    action = fields.String(validate=validate.Length(1, 64), metadata={"description": "retry, revoke, make-good..."})
    namespace = fields.String(validate=validate.Length(1, 64))
    after = UtcDateTime(format="iso", metadata={"description": "ISO 8601 with a timezone; inclusive"})
    before = UtcDateTime(format="iso", metadata={"description": "ISO 8601 with a timezone; exclusive"})

    @validates_schema
    def _range(self, data, **kwargs):
        check_order(data, "after", "before")


class AuditEntry(LogEntry):
    role = fields.String(allow_none=True)
    action = fields.String()
    targetType = fields.String()
    targetId = fields.String()
    namespace = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)
    requestId = fields.String(allow_none=True)


class AuditPage(CursorPage):
    items = fields.List(fields.Nested(AuditEntry))


@blp.before_request
def _authenticate():
    auth.require("viewer")


@blp.route("", methods=["GET"])
@blp.arguments(AuditArgs, location="query", unknown=RAISE)
@blp.response(200, AuditPage)
@blp.doc(security=[{"apiKey": []}])
def list_audit(args):
    """Audit entries, newest first, filtered by target, actor, action, game and time."""
    check_namespace(args.get("namespace"))
    query = ops.AuditQuery(target_type=args.get("targetType"), target_id=args.get("targetId"),
                           actor=args.get("actor"), action=args.get("action"), namespace=args.get("namespace"),
                           after=args.get("after"), before=args.get("before"))
    filters = query.as_filters()
    key = decode_cursor(CURSOR_KIND, filters, args.get("cursor"))
    if key is not None and not (len(key) == 1 and isinstance(key[0], int) and not isinstance(key[0], bool)):
        raise ApiError(400, "invalid_cursor", "the cursor is malformed")
    with services().session() as session:
        rows, following = ops.list_audit(session, actor(), query, args["limit"], key[0] if key else None)
    return {"items": rows, "nextCursor": encode_cursor(CURSOR_KIND, filters,
                                                       None if following is None else [following])}
