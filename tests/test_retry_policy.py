"""The one retry policy (middleware/orders/retry.py) and the one creation path (middleware/orders/create.py)."""
from __future__ import annotations

from datetime import UTC, datetime

from redis.exceptions import ConnectionError as RedisConnectionError

from config.sinks import Sink
from middleware.ledger import states
from middleware.orders import create, retry
from middleware.orders.attempts import Outcome

SECRET = "whsec_" + "A" * 32


def test_orders_give_up_after_the_attempt_limit_or_the_age_limit():
    policy = retry.Policy(max_attempts=3, base_seconds=2.0, max_delay_seconds=60.0, max_age_seconds=100.0)
    assert policy.next_delay(2, age=10.0) is not None
    assert policy.next_delay(3, age=10.0) is None          # the attempt limit
    assert policy.next_delay(1, age=100.0) is None         # the age limit
    assert 0 <= policy.next_delay(2, age=10.0) <= 8.0      # full jitter up to base * 2**attempt
    assert policy.next_delay(1, retry_after=30.0) >= 30.0  # never sooner than asked...
    assert policy.next_delay(1, retry_after=10_000.0) == 60.0  # ...capped


def test_a_sink_follows_its_schedule_and_a_retry_after_is_not_capped():
    sink = Sink(name="s", type="http", url="http://x", secret=SECRET, schedule=(0.0, 5.0, 300.0))
    policy = retry.for_sink(sink)
    assert policy.delay(0) == 0.0                  # the first attempt
    assert policy.next_delay(1) == 5.0             # after attempt 1: the delay before attempt 2
    assert policy.next_delay(2) == 300.0
    assert policy.next_delay(3) is None            # the schedule's last attempt failed: dead letter
    assert policy.next_delay(1, retry_after=7200.0) == 7200.0
    assert [policy.next_delay(n) for n in (1, 2, 3)] == [sink.delay_before(n + 1) for n in (1, 2, 3)]


def test_store_events_and_followups_take_their_limit_from_the_settings(services):
    settings = services.settings.replace(retry_max_attempts=4)
    assert retry.for_store_events(settings).gives_up(4) and not retry.for_store_events(settings).gives_up(3)
    assert retry.for_followups(settings).next_delay(4) is None
    assert retry.for_followups(settings).next_delay(3) is not None


def test_a_new_order_starting_fulfilling_has_both_entries_and_its_columns():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    lines = [{"itemSku": "gems_100", "quantity": 1}]
    f = create.new_order(namespace="ns", source="accelbyte", transaction_id="t-1", lines=lines, resolved=[],
                         actor="storefront:web", state=states.FULFILLING, now=now, player_id="p-1", key_scope="web")
    assert (f.state, f.player_id, f.key_scope, f.created_at, f.updated_at) == \
        (states.FULFILLING, "p-1", "web", now, now)
    assert f.request_hash == create.order_values(namespace="ns", source="accelbyte", transaction_id="t-1",
                                                 lines=lines, state=states.RECEIVED, now=now)["request_hash"]
    assert [(h.from_state, h.to_state, h.detail) for h in f.history] == [
        (None, states.RECEIVED, {"event": "received", "lines": 1}), (states.RECEIVED, states.FULFILLING, None)]


class _Jobs:
    """svc.jobs recording what is asked of it; ``down``: Redis does not answer."""

    def __init__(self, down: bool = False):
        self.asked, self.down = [], down

    def _ask(self, *call):
        if self.down:
            raise RedisConnectionError("down")
        self.asked.append(call)

    def attempt(self, fulfilment_id, state, attempts, delay=0):
        self._ask("attempt", fulfilment_id, state, attempts, delay)

    def followup(self, fulfilment_id, attempt, delay=0):
        self._ask("followup", fulfilment_id, attempt)

    def delivery(self, delivery_id, attempt, delay=0, tag=""):
        self._ask("delivery", delivery_id, attempt)


class _Services:
    def __init__(self, jobs):
        self.jobs = jobs


def _outcome(retry_in=None, followup=False, deliveries=()):
    return Outcome(True, states.FULFILLING if retry_in is not None else states.FULFILLED, retry_in, 2, followup,
                   deliveries)


def test_schedule_enqueues_the_next_attempt_after_the_policys_delay_and_the_next_steps():
    jobs = _Jobs()
    retry.schedule(_Services(jobs), "f-1", _outcome(retry_in=12.5))
    assert jobs.asked == [("attempt", "f-1", states.FULFILLING, 2, 12.5)]
    jobs = _Jobs()
    retry.schedule(_Services(jobs), "f-2", _outcome(followup=True, deliveries=("d-1", "d-2")))
    assert jobs.asked == [("followup", "f-2", 0), ("delivery", "d-1", 1), ("delivery", "d-2", 1)]
    jobs = _Jobs()
    retry.schedule(_Services(jobs), "f-3", _outcome())
    assert jobs.asked == []


def test_schedule_with_redis_down_leaves_it_to_the_reconciler(caplog):
    retry.schedule(_Services(_Jobs(down=True)), "f-1", _outcome(retry_in=1.0))
    assert "could not enqueue the next step of f-1" in caplog.text
