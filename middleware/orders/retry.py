"""One retry policy: when work that failed for a passing reason is tried again, and when it is given up.

Every kind of retried work reads its policy here, parameterised by settings:

| kind | schedule | gives up |
|---|---|---|
| orders (fulfil / revoke attempts) | exponential backoff with full jitter (``KB_RETRY_BASE_SECONDS``, capped at ``KB_RETRY_MAX_DELAY_SECONDS``), never sooner than Kraty's Retry-After (capped too) | after ``KB_RETRY_MAX_ATTEMPTS`` attempts or ``KB_RETRY_MAX_AGE_SECONDS`` since the fulfil or revoke began |
| store follow-ups (Google Play consume / acknowledge) | as orders, never sooner than the store's Retry-After | after ``KB_RETRY_MAX_ATTEMPTS`` |
| store events (``inbound_events``) | re-enqueued by the reconciler once idle ``KB_RECONCILE_STALE_SECONDS`` | after ``KB_RETRY_MAX_ATTEMPTS`` |
| deliveries to a sink | the sink's own ``schedule`` (seconds before each attempt), never sooner than the sink's Retry-After (not capped) | after the schedule's last attempt |

``Policy.next_delay`` answers both questions at once: the seconds before the next attempt, or None to give up.
``schedule`` enqueues what an order's attempt left to do: its next attempt after the delay ``for_orders`` gave it.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from config.settings import Settings
from config.sinks import Sink
from middleware.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    base_seconds: float = 0.0                  # exponential backoff: up to base * 2**attempt (full jitter)...
    max_delay_seconds: float = math.inf        # ...capped; a Retry-After is capped by it too
    max_age_seconds: float | None = None       # give up once the work is this old, whatever the attempts
    schedule: tuple[float, ...] | None = None  # fixed seconds before each attempt (1-based) instead of backoff

    def gives_up(self, attempts: int, age: float | None = None) -> bool:
        """After ``attempts`` failed attempts (``age`` seconds into the work), no further one is made."""
        limit = len(self.schedule) if self.schedule is not None else self.max_attempts
        return attempts >= limit or (self.max_age_seconds is not None and age is not None
                                     and age >= self.max_age_seconds)

    def next_delay(self, attempts: int, retry_after: float | None = None, age: float | None = None) -> float | None:
        """Seconds before the attempt after ``attempts`` failed ones; None: give up."""
        return None if self.gives_up(attempts, age) else self.delay(attempts, retry_after)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the attempt after ``attempts`` failed ones (the schedule's, or capped exponential
        backoff with full jitter), never sooner than ``retry_after`` (capped by ``max_delay_seconds``)."""
        if self.schedule is not None:
            delay = self.schedule[attempts]  # the delay before attempt number attempts + 1
        else:
            delay = random.uniform(0, min(self.max_delay_seconds, self.base_seconds * (2 ** min(attempts, 30))))
        if retry_after is not None:  # never sooner than the other side asked
            delay = max(delay, min(retry_after, self.max_delay_seconds))
        return delay


def backoff_delay(settings: Settings, attempt: int, retry_after: float | None) -> float:
    """The orders' backoff after ``attempt`` attempts, whatever the give-up rule says."""
    return for_orders(settings).delay(attempt, retry_after)


def for_orders(settings: Settings) -> Policy:
    return Policy(max_attempts=settings.retry_max_attempts, base_seconds=settings.retry_base_seconds,
                  max_delay_seconds=settings.retry_max_delay_seconds, max_age_seconds=settings.retry_max_age_seconds)


def for_followups(settings: Settings) -> Policy:
    return Policy(max_attempts=settings.retry_max_attempts, base_seconds=settings.retry_base_seconds,
                  max_delay_seconds=settings.retry_max_delay_seconds)


def for_store_events(settings: Settings) -> Policy:
    return Policy(max_attempts=settings.retry_max_attempts)


def for_sink(sink: Sink) -> Policy:
    return Policy(max_attempts=sink.max_attempts, schedule=tuple(sink.schedule))


class Attempted(Protocol):
    """What an order's attempt left to do (``attempts.Outcome``)."""
    state: str | None
    retry_in: float | None   # the delay ``for_orders`` gave its next attempt; None: no retry
    attempts: int
    followup: bool
    deliveries: tuple


def schedule(services: Services, fulfilment_id: str, outcome: Attempted) -> None:
    """Enqueue what an attempt left to do: its next attempt after ``outcome.retry_in`` seconds (this policy's
    delay), telling the store the order is granted, the first attempt of the sink deliveries it emitted. If
    Redis is down, what is stored (next_attempt_at, followup_at, the deliveries) lets the reconciler do it."""
    try:
        if outcome.retry_in is not None:
            services.jobs.attempt(fulfilment_id, outcome.state, outcome.attempts, delay=outcome.retry_in)
        if outcome.followup:
            services.jobs.followup(fulfilment_id, 0)
        for delivery_id in outcome.deliveries:  # as sinks.outbound_events.enqueue_new (which imports this module)
            services.jobs.delivery(delivery_id, 1)
    except RedisError as exc:
        log.warning("could not enqueue the next step of %s (%s); the reconciler will pick it up", fulfilment_id, exc)
