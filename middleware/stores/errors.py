"""The one error a store API call raises, classified the way the engine retries Kraty's."""
from __future__ import annotations


class StoreError(Exception):
    """A store API call failed. ``transient``: worth retrying (timeouts, 5xx, 429); else permanent
    until an operator retries (not found, refused, misconfigured key)."""

    def __init__(self, message: str, *, transient: bool, code: str, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.transient, self.code, self.status, self.retry_after = transient, code, status, retry_after
