"""The PostgreSQL fast path of a delivery to an http sink: the common case in a few statements, each
autocommitted. The claim (``claim.http_claim``: the same rules as the ORM path's) takes the delivery only when
it is active, due, not leased, its sink configured as http and not disabled, and returns its event; one UPDATE
records a success. Anything else (nothing claimed: missing, not active, disabled, early, busy...) goes through
the ORM path (``delivery.py``), which finds out why; a failed send is recorded as there (``outcome.record``)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, update

from config.sinks import Sink, Sinks
from middleware.ledger.models import Delivery, UTCDateTime
from middleware.metrics import recorders as metrics
from middleware.services import Services
from middleware.sinks import http, ratelimit
from middleware.sinks.claim import EARLY_SLACK, LEASE_MARGIN, http_claim
from middleware.sinks.outbound_events import envelope
from middleware.sinks.outcome import later, record
from middleware.sinks.states import DELIVERED

_ID, _CLAIMED, _NOW = bindparam("delivery_id"), bindparam("claimed"), bindparam("now", type_=UTCDateTime())
_GIVE_BACK = (update(Delivery).where(Delivery.id == _ID, Delivery.attempts == _CLAIMED)  # not sent after all
              .values(attempts=Delivery.attempts - 1, lease_until=None))
_DELIVERED = (update(Delivery).where(Delivery.id == _ID, Delivery.attempts == _CLAIMED)
              .values(state=DELIVERED, delivered_at=_NOW, next_attempt_at=None, last_error=None, lease_until=None,
                      last_status=bindparam("status"), updated_at=_NOW))


def _http_sinks(sinks: Sinks) -> list[Sink]:
    return [sink for sink in sinks if sink.type == "http"]


def deliver_http_fast(svc: Services, delivery_id: str, clock: Callable[[], datetime], started: datetime) -> str | None:
    """One attempt at a delivery to an http sink when it can be claimed at once; None when it could not (the
    caller then takes the ORM path, which tells why). Rate limit: a token is taken after the claim, before
    sending; a throttled delivery gives its attempt back and waits, as on the ORM path."""
    sinks = _http_sinks(svc.sinks)
    if not sinks:
        return None
    params = {"delivery_id": delivery_id, "started": started, "due_before": started + EARLY_SLACK,
              **{f"lease_{n}": started + timedelta(seconds=sink.timeout + LEASE_MARGIN)
                 for n, sink in enumerate(sinks)}}
    with svc.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # each statement is its own transaction
        row = conn.execute(http_claim(tuple(sink.name for sink in sinks)), params).first()
        if row is None:
            return None
        sink, attempt = svc.sinks.get(row.sink), row.attempts

        def give_back() -> None:  # the attempt was not made: as if never claimed
            conn.execute(_GIVE_BACK, {"delivery_id": delivery_id, "claimed": attempt})
        try:
            wait = ratelimit.acquire(svc.redis, sink)  # one token per request
        except BaseException:
            give_back()
            raise
        if wait > 0:
            give_back()
            svc.jobs.delivery(delivery_id, attempt, wait, tag=later("t", started + timedelta(seconds=wait)))
            return "throttled"
        result = http.send(sink, row.id, envelope(row))  # the row has the event's columns; webhook-id: its id
        done = clock()
        if result.ok:
            recorded = conn.execute(_DELIVERED, {"delivery_id": delivery_id, "claimed": attempt, "now": done,
                                                 "status": result.status}).rowcount
            if recorded:
                metrics.delivered(sink.name, row.created_at, done)  # kb_sink_delivery_seconds
                return DELIVERED
    # a failure (or a success for a delivery claimed again meanwhile, or removed): recorded as always
    return record(svc, sink, {delivery_id: attempt}, result, done, delivery_id)
