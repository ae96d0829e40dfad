"""Ops: find orders, look at one, fix it — the service layer of the ops API, the CLI and the console.

Everything here takes the ``Services`` (or a session) and an :class:`Actor` and answers plain dicts ready
for JSON; nothing here knows about HTTP. Problems are raised as :class:`OpsError` (a status, a code, a
message, details) which each front end shows its own way.

Actions (each needs a reason, is audited in ``audit_log`` with the order's state before and after, and
takes an optional idempotency key that replays the first answer):

=================  ========  =======================================================================
action             role      allowed when
=================  ========  =======================================================================
``retry``          operator  FULFILL_FAILED (failed rows again) or REVOKE_FAILED (take-backs again)
``revoke``         operator  something was (or may have been) granted and nothing is under way:
                             FULFILLED, FULFILL_FAILED, REVOKE_FAILED or RESOLVED with granted rows
``attach-player``  operator  FULFILL_FAILED because the store named no player (``player_unresolved``)
``make-good``      admin     the order has a player (any state): a Kraty make-good grant
``resolve``        admin     FULFILL_FAILED or REVOKE_FAILED: closed as RESOLVED, nothing more granted
``refund``         admin     a Stripe or Google Play order: the store refunds it (``ops.refunds``); the goods
                             are taken back when the store confirms, through the normal reversal path
=================  ========  =======================================================================

The package: ``base`` (vocabulary, actor, refusals, redaction), ``queries`` (find and show orders), ``actions``,
``audit`` (the one audit writer), ``players``, ``privacy``, ``refunds`` (erase, merge, export). The names below are the
service's public face; front ends call them as ``ops.<name>``.
"""

from middleware.ops.base import (  # noqa: F401
    RETRY,
    REVOKE,
    ATTACH_PLAYER,
    MAKE_GOOD,
    RESOLVE,
    ACTION_ROLES,
    SOURCES,
    ENVIRONMENTS,
    MAX_REASON,
    MAX_IDEMPOTENCY_KEY,
    MAX_PAGE,
    PLAYER_ORDERS,
    MAX_MAKE_GOOD_LINES,
    MAX_AMOUNT,
    REDACTED,
    OpsError,
    Actor,
    utc,
    iso,
    redact,
)
from middleware.ops.queries import (  # noqa: F401
    FulfilmentQuery,
    summary,
    COMMON_SKU_SHARE,
    SKU_SHARES_TTL,
    sku_is_common,
    list_fulfilments,
    item_view,
    event_view,
    history_view,
    delivery_view,
    fulfilment_detail,
)
from middleware.ops.audit import (  # noqa: F401
    AuditQuery,
    audit_view,
    list_audit,
    audit_row,
)
from middleware.ops.actions import (  # noqa: F401
    snapshot,
    check_state,
    answer,
    perform,
    LEASED,
)
from middleware.ops.players import (  # noqa: F401
    player_view,
)
from middleware.ops.refunds import (  # noqa: F401
    REFUND,
    REFUND_ROLE,
    refund,
    store_refusal,
)
from middleware.stores.stripe_refunds import REASONS as STRIPE_REFUND_REASONS  # noqa: F401
