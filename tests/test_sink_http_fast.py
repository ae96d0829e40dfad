"""Delivering to an http sink the short way (middleware/sinks/delivery.py ``_deliver_http_fast``, on PostgreSQL): one
autocommitted UPDATE claims the delivery and returns its event, one records the success; everything else keeps
the ORM path's behaviour (the rate limit, a delivery cancelled or claimed again while in flight). And the
shared transport (middleware/sinks/http.py ``post``): the answer's body is read, so the connection is reused."""
from __future__ import annotations

import base64
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import event, update

from config.sinks import Sink, Sinks
from middleware.ledger.models import Delivery, utcnow
from middleware.sinks import emit, http
from middleware.sinks.delivery import deliver_now
from workers.queues import SINK_QUEUE, queue

from tests.support.sink_receiver import SinkServer
from tests.support.wsgi_server import SHUTDOWN_POLL

SECRET = "whsec_" + base64.b64encode(b"f" * 32).decode()


class HookedServer(SinkServer):
    """A sink server that runs ``hook`` while it holds a request (the delivery is in flight then)."""

    hook = None

    def refuse(self, request, body) -> bool:
        if self.hook is not None:
            self.hook()
        return False


@pytest.fixture
def server():
    served = HookedServer({"/crm": SECRET})
    yield served
    served.stop()


def only_sink(services, server, **fields) -> Sink:
    sink = Sink(**{"name": "crm", "type": "http", "url": f"{server.url}/crm", "secret": SECRET, "timeout": 2,
                   **fields})
    services.sinks = Sinks([sink])
    return sink


def record(services, player="p-1") -> str:
    with services.session() as session:
        [delivery_id] = emit(session, "purchase.completed", "demo", player, "production", utcnow(),
                             {"sku": "gems_100"}, sinks=services.sinks)
        session.commit()
    return delivery_id


def delivery(services, delivery_id) -> Delivery:
    with services.session() as session:
        d = session.get(Delivery, delivery_id)
        session.expunge(d)
        return d


def set_delivery(services, delivery_id, **values) -> None:
    with services.session() as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))
        session.commit()


@pytest.fixture
def statements(services):
    """The SQL statements the ledger's engine runs (and whether each ran inside a transaction)."""
    seen: list[tuple[str, bool]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split(None, 1)[0].upper(), conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"))
    event.listen(services.engine, "before_cursor_execute", before)
    yield seen
    event.remove(services.engine, "before_cursor_execute", before)


def test_a_delivery_is_claimed_and_recorded_in_two_autocommitted_statements(services, redis, server, statements):
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the short way is PostgreSQL's (UPDATE ... FROM ... RETURNING the joined event)")
    only_sink(services, server, rate_limit=100, rate_window=1)   # the limit is checked, never reached
    delivery_id = record(services)
    statements.clear()
    assert deliver_now(services, delivery_id) == "delivered"
    assert statements == [("UPDATE", False), ("UPDATE", False)]
    [got] = server.got("/crm")
    assert got.verified and got.json["playerId"] == "p-1" and got.json["data"] == {"sku": "gems_100"}
    d = delivery(services, delivery_id)
    assert (d.state, d.attempts, d.last_status, d.lease_until, d.next_attempt_at, d.last_error) == (
        "delivered", 1, 200, None, None, None)
    assert d.delivered_at == d.updated_at and got.json["id"] == d.event_id == got.headers["Webhook-Id"]


def test_a_throttled_delivery_gives_its_attempt_back(services, redis, server):
    only_sink(services, server, rate_limit=1, rate_window=60)
    first, second = record(services, "p-1"), record(services, "p-2")
    assert deliver_now(services, first) == "delivered"
    assert deliver_now(services, second) == "throttled" and server.count() == 1
    d = delivery(services, second)
    assert (d.state, d.attempts, d.lease_until) == ("pending", 0, None)   # not an attempt, not leased
    waiting = queue(redis, SINK_QUEUE).scheduled_job_registry.get_job_ids()
    assert [j for j in waiting if j.startswith(f"deliver-{second}-1-t")]  # put back until the limit allows it


def test_not_due_busy_or_cancelled_deliveries_are_left_alone(services, redis, server):
    only_sink(services, server)
    early, busy, cancelled = record(services, "p-1"), record(services, "p-2"), record(services, "p-3")
    set_delivery(services, early, next_attempt_at=utcnow() + timedelta(minutes=5))
    set_delivery(services, busy, lease_until=utcnow() + timedelta(minutes=5))
    set_delivery(services, cancelled, state="cancelled")
    assert [deliver_now(services, i) for i in (early, busy, cancelled)] == ["early", "busy", "cancelled"]
    assert server.count() == 0 and {delivery(services, i).attempts for i in (early, busy, cancelled)} == {0}


@pytest.mark.parametrize("status, state", [(200, "delivered"), (503, "cancelled")])
def test_a_delivery_cancelled_while_in_flight_stays_cancelled_unless_it_was_delivered(services, redis, server,
                                                                                      status, state):
    only_sink(services, server)
    delivery_id = record(services)
    server.hook = lambda: set_delivery(services, delivery_id, state="cancelled",  # the player erased meanwhile
                                       next_attempt_at=None)
    server.always(status)
    assert deliver_now(services, delivery_id) == state
    d = delivery(services, delivery_id)
    assert (d.state, d.last_status, d.lease_until, d.next_attempt_at) == (state, status, None, None)
    assert not queue(redis, SINK_QUEUE).scheduled_job_registry.get_job_ids()   # no retry


def test_a_success_for_a_delivery_claimed_again_meanwhile_is_still_recorded(services, redis, server):
    only_sink(services, server)
    delivery_id = record(services)
    server.hook = lambda: set_delivery(services, delivery_id, attempts=Delivery.attempts + 1)
    assert deliver_now(services, delivery_id) == "delivered"
    d = delivery(services, delivery_id)
    assert (d.state, d.attempts, d.lease_until, d.last_status) == ("delivered", 2, None, 200)


def test_a_failure_follows_the_schedule(services, redis, server):
    only_sink(services, server, schedule=(0, 60))
    delivery_id = record(services)
    server.answer((503, {"Retry-After": "120"}))
    start = utcnow()
    assert deliver_now(services, delivery_id, now=start) == "failed"
    d = delivery(services, delivery_id)
    assert (d.attempts, d.last_status, d.lease_until) == (1, 503, None)
    assert d.next_attempt_at == start + timedelta(seconds=120) and d.last_error == 'HTTP 503: {"status": 503}'


# ---------------------------------------------------------------- the transport: connections reused
class Answers(ThreadingHTTPServer):
    """HTTP/1.1 with keep-alive; answers each POST with the next (status, body) of ``script`` and keeps the
    client port each request came from."""

    daemon_threads = True

    def __init__(self, script: list[tuple[int, bytes]]):
        self.script, self.ports = list(script), []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(handler):
                handler.rfile.read(int(handler.headers["Content-Length"]))
                status, body = self.script.pop(0)
                self.ports.append(handler.client_address[1])
                handler.send_response(status)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):
                pass
        super().__init__(("127.0.0.1", 0), Handler)


def test_the_connection_is_reused_unless_the_answer_is_too_long():
    big = b"x" * (http.BODY_CAP * 4)
    server = Answers([(200, b'{"ok":true}'), (500, b"oops\nsorry"), (204, b""), (502, big), (200, b"{}")])
    threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        results = [http.post(url, b"{}", {"Content-Type": "application/json"}, 2) for _ in range(5)]
    finally:
        server.shutdown()
        server.server_close()
    assert [r.status for r in results] == [200, 500, 204, 502, 200]
    assert results[1].error == "HTTP 500: oops sorry" and results[3].error == "HTTP 502: " + "x" * http.SNIPPET
    # one connection for the first four requests; the fourth's answer was not read to its end: a new one
    assert len(set(server.ports[:4])) == 1 and server.ports[4] != server.ports[3]
    # nobody listening any more: no answer, said as before
    assert http.post(url, b"{}", {}, 2) == http.SendResult(None, "ConnectionError: no answer")
