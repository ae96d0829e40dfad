"""The fulfilment state machine: states, the transitions allowed between them, item states."""
from __future__ import annotations

RECEIVED = "RECEIVED"
FULFILLING = "FULFILLING"
FULFILLED = "FULFILLED"
FULFILL_FAILED = "FULFILL_FAILED"
REVOKING = "REVOKING"
REVOKED = "REVOKED"
REVOKE_FAILED = "REVOKE_FAILED"
RESOLVED = "RESOLVED"  # an operator closed a failed order without granting (more); nothing is owed on it

STATES = (RECEIVED, FULFILLING, FULFILLED, FULFILL_FAILED, REVOKING, REVOKED, REVOKE_FAILED, RESOLVED)

# Work is owed on these: the reconciler re-enqueues them when they stall.
ACTIVE = (RECEIVED, FULFILLING, REVOKING)

TRANSITIONS: dict[str, frozenset[str]] = {
    RECEIVED: frozenset({FULFILLING, FULFILL_FAILED, REVOKED}),
    FULFILLING: frozenset({FULFILLED, FULFILL_FAILED, REVOKING}),
    FULFILLED: frozenset({REVOKING}),
    FULFILL_FAILED: frozenset({FULFILLING, REVOKING, RESOLVED}),
    REVOKING: frozenset({REVOKED, REVOKE_FAILED, FULFILLED}),  # FULFILLED: a partial take-back finished
    REVOKE_FAILED: frozenset({REVOKING, RESOLVED}),
    REVOKED: frozenset({FULFILLING}),
    # terminal for the bridge's own work (never retried, left alone by the reconciler); a store's refund
    # can still take back what it did grant
    RESOLVED: frozenset({REVOKING}),
}

# Per item (one row per order line x Kraty grant component)
ITEM_PENDING = "PENDING"          # to be granted (again, after a transient failure)
ITEM_GRANTED = "GRANTED"          # Kraty confirmed the grant
ITEM_FAILED = "FAILED"            # permanent failure; only an explicit retry touches it again
ITEM_REVOKED = "REVOKED"          # Kraty confirmed the take-back
ITEM_REVOKE_FAILED = "REVOKE_FAILED"  # take-back refused (e.g. would go below zero)
ITEM_SKIPPED = "SKIPPED"          # revoked before it was ever granted: never granted


class IllegalTransition(Exception):
    def __init__(self, current: str, wanted: str):
        super().__init__(f"cannot go from {current} to {wanted}")
        self.current = current
        self.wanted = wanted


def check_transition(current: str, wanted: str) -> None:
    if wanted not in TRANSITIONS.get(current, ()):
        raise IllegalTransition(current, wanted)
