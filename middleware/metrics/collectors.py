"""Gauges computed at scrape time: the RQ queues (from Redis) and what waits in the ledger (from the database).

Each collector makes a few cheap reads per scrape (``LLEN``/``LINDEX``/``ZCARD``; indexed ``COUNT``/``MIN``
over the small sets of open orders and undelivered deliveries, under a short statement timeout on
PostgreSQL). If Redis or the database does not answer, the collector yields ``kb_scrape_errors{part}=1``
instead of its gauges: a scrape never fails because of them.
"""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError
from rq.utils import utcparse
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from middleware.ledger import states
from middleware.ledger.models import Delivery, Fulfilment, Reversal
from middleware.orders.jobs import QUEUES
from middleware.orders.reversal_rules import UNTRACED
from middleware.sinks import states as delivery_states

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 2000
OPEN_ORDER_STATES = states.ACTIVE + (states.FULFILL_FAILED, states.REVOKE_FAILED)
FAILED_ORDER_STATES = (states.FULFILL_FAILED, states.REVOKE_FAILED)
UNTRACED_SOURCES = ("stripe",)  # always reported (0 when none); other sources when they have any
WAITING_DELIVERIES = (delivery_states.PENDING, delivery_states.FAILED, delivery_states.DEAD, delivery_states.DISABLED)


def scrape_error(part: str, failed: bool) -> GaugeMetricFamily:
    family = GaugeMetricFamily("kb_scrape_errors", "1 when this scrape could not read a part (queues: Redis, "
                               "ledger: the database); its gauges are then missing", labels=["part"])
    family.add_metric([part], 1 if failed else 0)
    return family


class QueueCollector:
    """``kb_queue_depth``, ``kb_queue_oldest_job_age_seconds``, ``kb_queue_scheduled_jobs``, ``kb_queue_failed_jobs``."""

    def __init__(self, redis, clock=time.time):
        self.redis = redis        # a callable returning the Redis client
        self.clock = clock

    def read(self) -> dict[str, tuple[int, float, int, int]]:
        redis = self.redis()
        with redis.pipeline(transaction=False) as pipe:
            for name in QUEUES:
                pipe.llen(f"rq:queue:{name}")
                pipe.lindex(f"rq:queue:{name}", 0)  # RQ appends: the head is the oldest
                pipe.zcard(f"rq:scheduled:{name}")
                pipe.zcard(f"rq:failed:{name}")
            replies = pipe.execute()
        heads = {}
        with redis.pipeline(transaction=False) as pipe:
            for i, name in enumerate(QUEUES):
                head = replies[i * 4 + 1]
                if head is not None:
                    heads[name] = True
                    pipe.hget(b"rq:job:" + (head if isinstance(head, bytes) else head.encode()), "enqueued_at")
            enqueued = dict(zip(heads, pipe.execute()))
        now = self.clock()
        result = {}
        for i, name in enumerate(QUEUES):
            depth, _head, scheduled, failed = replies[i * 4:i * 4 + 4]
            age = 0.0
            if enqueued.get(name):
                raw = enqueued[name].decode() if isinstance(enqueued[name], bytes) else enqueued[name]
                at = utcparse(raw).replace(tzinfo=UTC).timestamp()
                age = max(0.0, now - at)
            result[name] = (int(depth), age, int(scheduled), int(failed))
        return result

    def collect(self):
        try:
            queues = self.read()
        except (RedisError, OSError, ValueError) as exc:
            log.warning("metrics: cannot read the queues (%s: %s)", exc.__class__.__name__, exc)
            yield scrape_error("queues", True)
            return
        depth = GaugeMetricFamily("kb_queue_depth", "Jobs waiting in the RQ queue now", labels=["queue"])
        age = GaugeMetricFamily("kb_queue_oldest_job_age_seconds", "How long the job at the head of the queue "
                                "has waited (0 when the queue is empty)", labels=["queue"])
        scheduled = GaugeMetricFamily("kb_queue_scheduled_jobs", "Jobs scheduled for later (delayed retries)",
                                      labels=["queue"])
        failed = GaugeMetricFamily("kb_queue_failed_jobs", "Jobs in RQ's failed registry (raised; the reconciler "
                                   "re-enqueues the work they were for)", labels=["queue"])
        for name, (n, oldest, n_scheduled, n_failed) in queues.items():
            depth.add_metric([name], n)
            age.add_metric([name], oldest)
            scheduled.add_metric([name], n_scheduled)
            failed.add_metric([name], n_failed)
        yield from (depth, age, scheduled, failed, scrape_error("queues", False))


class LedgerCollector:
    """Open and failed orders, and sink deliveries waiting, from the ledger."""

    def __init__(self, engine, sink_names=(), clock=time.time):
        self.engine = engine      # a callable returning the SQLAlchemy engine
        self.sink_names = tuple(sink_names)
        self.clock = clock

    def read(self):
        engine = self.engine()
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            orders = connection.execute(
                select(Fulfilment.state, func.count(), func.min(Fulfilment.created_at))
                .where(Fulfilment.state.in_(OPEN_ORDER_STATES)).group_by(Fulfilment.state)).all()
            deliveries = connection.execute(
                select(Delivery.sink, Delivery.state, func.count(), func.min(Delivery.created_at))
                .where(Delivery.state.in_(WAITING_DELIVERIES)).group_by(Delivery.sink, Delivery.state)).all()
            untraced = connection.execute(
                select(Reversal.source, func.count(), func.min(Reversal.created_at))
                .where(Reversal.state == UNTRACED).group_by(Reversal.source)).all()
            connection.rollback()
        return orders, deliveries, untraced

    def collect(self):
        try:
            orders, deliveries, untraced = self.read()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("metrics: cannot read the ledger (%s)", exc.__class__.__name__)
            yield scrape_error("ledger", True)
            return
        now = self.clock()
        yield from self._orders(orders, now)
        yield from self._deliveries(deliveries, now)
        yield from self._untraced(untraced, now)
        yield scrape_error("ledger", False)

    @staticmethod
    def _age(oldest: datetime | None, now: float) -> float:
        if oldest is None:
            return 0.0
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return max(0.0, now - oldest.timestamp())

    def _orders(self, rows, now: float):
        found = {state: (count, oldest) for state, count, oldest in rows}
        active = GaugeMetricFamily("kb_orders_active", "Orders the bridge is still working on, by state",
                                   labels=["state"])
        active_age = GaugeMetricFamily("kb_orders_active_oldest_age_seconds", "Age (since received) of the oldest "
                                       "order still in this state (0 when none)", labels=["state"])
        failed = GaugeMetricFamily("kb_orders_failed", "Orders left FULFILL_FAILED / REVOKE_FAILED (retries "
                                   "exhausted or a permanent error), waiting for ops", labels=["state"])
        failed_age = GaugeMetricFamily("kb_orders_failed_oldest_age_seconds", "Age (since received) of the "
                                       "oldest order left in this failed state (0 when none)", labels=["state"])
        for state in states.ACTIVE:
            count, oldest = found.get(state, (0, None))
            active.add_metric([state], count)
            active_age.add_metric([state], self._age(oldest, now))
        for state in FAILED_ORDER_STATES:
            count, oldest = found.get(state, (0, None))
            failed.add_metric([state], count)
            failed_age.add_metric([state], self._age(oldest, now))
        yield from (active, active_age, failed, failed_age)

    def _untraced(self, rows, now: float):
        found = {source: (count, oldest) for source, count, oldest in rows}
        count = GaugeMetricFamily("kb_reversals_untraced", "Refunds and disputes flagged for ops: their payment "
                                  "named no order after KB_UNTRACED_REVERSAL_SECONDS", labels=["source"])
        age = GaugeMetricFamily("kb_reversals_untraced_oldest_age_seconds", "Age (since received) of the oldest "
                                "untraced refund or dispute (0 when none)", labels=["source"])
        for source in sorted(set(UNTRACED_SOURCES) | set(found)):
            n, oldest = found.get(source, (0, None))
            count.add_metric([source], n)
            age.add_metric([source], self._age(oldest, now))
        yield from (count, age)

    def _deliveries(self, rows, now: float):
        found = {(sink, state): (count, oldest) for sink, state, count, oldest in rows}
        sinks = sorted(set(self.sink_names) | {sink for sink, _state in found})
        waiting = GaugeMetricFamily("kb_sink_deliveries", "Deliveries not (yet) delivered, by sink and state "
                                    "(pending, failed: retry scheduled, dead: dead-lettered, disabled: the sink "
                                    "answered 410)", labels=["sink", "state"])
        dead = GaugeMetricFamily("kb_sink_dead_letters", "Deliveries dead-lettered (the sink's last attempt "
                                 "failed), waiting for a replay", labels=["sink"])
        lag = GaugeMetricFamily("kb_sink_delivery_lag_seconds", "Age of the oldest delivery still to be attempted "
                                "(pending or failed) for the sink: 0 when it is caught up", labels=["sink"])
        for sink in sinks:
            for state in WAITING_DELIVERIES:
                waiting.add_metric([sink, state], found.get((sink, state), (0, None))[0])
            dead.add_metric([sink], found.get((sink, delivery_states.DEAD), (0, None))[0])
            oldest = [o for state in delivery_states.ACTIVE for _c, o in [found.get((sink, state), (0, None))] if o]
            lag.add_metric([sink], self._age(min(oldest), now) if oldest else 0.0)
        yield from (waiting, dead, lag)
