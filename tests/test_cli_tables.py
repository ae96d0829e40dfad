"""The CLI's output: aligned tables with truncation, ``--json`` that matches the tables, progress on stderr,
bulk forms (events replay, sinks replay, orders retry) and clear errors."""
from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import click
import pytest
from sqlalchemy import select

from config.sinks import Sink, Sinks
from middleware.cli.table import ELLIPSIS, Column, parse_time, progress, table, when
from middleware.ledger.models import AuditEntry, Delivery
from middleware.sinks import emit
from middleware.sinks.delivery import deliver_now

from tests.support.orders_flow import drain
from tests.support.ops_ledger import audit_entries, failed_order, fulfilled_order, state
from tests.support.sink_receiver import SinkServer
from tests.support.stripe_events import event, inbound, post

SECRET = "whsec_" + base64.b64encode(b"t" * 32).decode()
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def data_rows(output: str) -> list[list[str]]:
    """A table's rows under its header, split on runs of spaces (cells here have none)."""
    return [line.split() for line in lines(output)[1:]]


# ---------------------------------------------------------------- the formatter
def test_columns_are_aligned_numbers_right_and_long_cells_end_in_an_ellipsis():
    columns = (Column("ID", "id", None), Column("N", "n", align=">"), Column("NOTE", "note", 10))
    out = table(columns, [{"id": "a", "n": 5, "note": "short"},
                          {"id": "a-much-longer-id", "n": 1234, "note": "x" * 30},
                          {"id": "c", "n": None, "note": "two\nlines"}])
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "N", "NOTE"]
    assert {line.index(word) for line, word in zip(rows, ("short", "xxx", "two"), strict=True)} == {header.index("NOTE")}
    assert rows[0].index("5") + 1 == rows[1].index("1234") + 4 == header.index("N") + 1  # right-aligned
    assert rows[1].endswith("x" * 9 + ELLIPSIS) and len(rows[1].split()[-1]) == 10  # cut to the column's width
    assert rows[2].split() == ["c", "-", "two", "lines"]  # nothing shows as "-", one line per row
    assert all(line == line.rstrip() for line in out.splitlines())
    assert "a-much-longer-id" in out  # a column without a limit is never cut


def test_an_empty_table_says_so_and_times_are_iso_utc():
    assert table((Column("ID"),), [], empty="no orders match") == "no orders match"
    assert when(datetime(2026, 11, 21, 12, 0, 5, 999, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-21T10:00:05Z"
    assert parse_time("2026-11-21T12:00:00+02:00") == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert parse_time("2026-11-21") == datetime(2026, 11, 21, tzinfo=UTC)
    with pytest.raises(click.BadParameter, match="ISO 8601"):
        parse_time("yesterday")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere():
    terminal, log = _Terminal(), io.StringIO()
    with progress([1, 2, 3], "replaying 3 events", file=terminal) as bar:
        assert list(bar) == [1, 2, 3]
    assert "replaying 3 events" in terminal.getvalue() and "[####" in terminal.getvalue()
    assert "3/3" in terminal.getvalue()
    with progress(list(range(25)), "retrying 25 orders", file=log) as bar:
        assert sum(1 for _ in bar) == 25
    assert lines(log.getvalue())[0] == "retrying 25 orders: 0/25" and lines(log.getvalue())[-1] == "retrying 25 orders: 25/25"
    assert len(lines(log.getvalue())) == 11  # the start and every tenth, not every item


# ---------------------------------------------------------------- tables and --json, per command
def test_orders_list_and_show_tables_match_their_json(runner, client, services, emulator):
    failed = failed_order(client, emulator, services, txn="t-cli-failed")
    done = fulfilled_order(client, services, txn="t-cli-ok", user="player-2")
    table_out = runner.invoke(args=["orders", "list"])
    json_out = runner.invoke(args=["orders", "list", "--json"])
    assert table_out.exit_code == 0 and json_out.exit_code == 0, table_out.output + json_out.output
    rows = json.loads(json_out.stdout)
    assert [r["id"] for r in rows] == [done, failed]  # newest first
    assert lines(table_out.output)[0].split()[:3] == ["ID", "STATE", "SOURCE"]
    for cells, row in zip(data_rows(table_out.output), rows, strict=True):
        assert cells[:6] == [row["id"], row["state"], row["source"], row["namespace"], row["transactionId"],
                             row["playerId"]]
        assert cells[6] == when(datetime.fromisoformat(row["updatedAt"]))
    assert rows[1]["createdAt"].endswith("Z") and rows[1]["state"] == "FULFILL_FAILED"
    only = json.loads(runner.invoke(args=["orders", "list", "--state", "FULFILL_FAILED", "--json"]).stdout)
    assert [r["id"] for r in only] == [failed]
    assert runner.invoke(args=["orders", "list", "--state", "REVOKING"]).output.strip() == "no orders match"
    assert json.loads(runner.invoke(args=["orders", "list", "--state", "REVOKING", "--json"]).stdout) == []

    shown = runner.invoke(args=["orders", "show", "t-cli-failed"])
    assert shown.exit_code == 0, shown.output
    head = dict(line.split(":", 1) for line in lines(shown.output)[:15] if ":" in line)
    assert head["Order"].strip() == failed and head["State"].strip() == "FULFILL_FAILED"
    assert head["Transaction"].strip() == "t-cli-failed" and head["Created"].strip().endswith("Z")
    sections = shown.output.split("\n\n")
    items = next(s for s in sections if s.startswith("Items"))
    assert {"gems_100", "sword"} <= set(items.split()) and "GRANTED" in items and "FAILED" in items
    timeline = next(s for s in sections if s.startswith("Timeline"))
    assert "FULFILL_FAILED" in timeline
    detail = json.loads(runner.invoke(args=["orders", "show", failed, "--json"]).stdout)
    assert [i["sku"] for i in detail["items"]] == ["gems_100", "sword"] and detail["reversals"] == []
    assert len(lines(items)) == 2 + len(detail["items"])  # title, header, one line per row
    assert len(lines(timeline)) == 2 + len(detail["history"])


def test_events_list_table_matches_its_json(runner, client, redis, services, stripe_fake):
    for n in range(2):
        pi = stripe_fake.payment_intent(amount=100, metadata={"kraty_sku": "gems_100", "kraty_quantity": "lots",
                                                              "player_id": f"player-{n}"})
        post(client, event("payment_intent.succeeded", pi))
    drain(redis)
    table_out = runner.invoke(args=["events", "list", "--source", "stripe"])
    rows = json.loads(runner.invoke(args=["events", "list", "--source", "stripe", "--json"]).stdout)
    assert len(rows) == 2 and all(r["outcome"] == "failed" and r["receivedAt"].endswith("Z") for r in rows)
    for cells, row in zip(data_rows(table_out.output), rows, strict=True):
        assert cells[:6] == [str(row["id"]), when(datetime.fromisoformat(row["receivedAt"])), "stripe",
                             row["type"], "failed", row["providerEventId"]]
    assert "kraty_quantity" in table_out.output
    assert runner.invoke(args=["events", "list", "--outcome", "rejected"]).output.strip() == "no events match"
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert json.loads(runner.invoke(args=["events", "list", "--since", since, "--json"]).stdout) == []


def test_keys_list_table_matches_its_json_and_never_shows_a_key(runner):
    assert runner.invoke(args=["keys", "list"]).output.strip() == "no API keys (flask keys create NAME ROLE)"
    created = runner.invoke(args=["keys", "create", "support-desk", "operator", "--namespace", "demo"])
    key = created.output.split()[1]
    runner.invoke(args=["keys", "create", "auditor", "viewer"])
    runner.invoke(args=["keys", "revoke", "auditor"])
    listed = runner.invoke(args=["keys", "list"])
    rows = json.loads(runner.invoke(args=["keys", "list", "--json"]).stdout)
    assert key not in listed.output and key not in json.dumps(rows)
    assert [(r["name"], r["role"], r["namespaces"], r["revokedAt"] is None) for r in rows] == [
        ("support-desk", "operator", ["demo"], True), ("auditor", "viewer", None, False)]
    cells = data_rows(listed.output)
    assert cells[0] == ["support-desk", "operator", "demo", when(datetime.fromisoformat(rows[0]["createdAt"])), "-",
                        "-", "-"]
    assert cells[1][:3] == ["auditor", "viewer", "all"] and cells[1][6] == when(datetime.fromisoformat(rows[1]["revokedAt"]))


@pytest.fixture
def sink_server():
    served = SinkServer({"/crm": SECRET})
    yield served
    served.stop()


def dead_deliveries(services, sink_server, count: int) -> list[str]:
    """``count`` deliveries to the ``crm`` sink, each dead-lettered by a 500 on its only attempt."""
    services.sinks = Sinks([Sink(name="crm", type="http", url=f"{sink_server.url}/crm", secret=SECRET,
                                 timeout=0.5, schedule=(0,))])
    sink_server.always(500)
    ids = []
    for n in range(count):
        with services.session() as session:
            ids += emit(session, "purchase.completed", "demo", f"p-{n}", "production", T0, {"sku": "gems_100"},
                        sinks=services.sinks)
            session.commit()
    assert [deliver_now(services, i, now=T0) for i in ids] == ["dead"] * count
    return ids


def test_sinks_list_and_deliveries_tables_match_their_json(runner, services, sink_server):
    services.sinks = Sinks([])
    assert runner.invoke(args=["sinks", "list"]).output.strip() == "no sinks configured (KB_SINKS)"
    assert json.loads(runner.invoke(args=["sinks", "list", "--json"]).stdout) == []
    ids = dead_deliveries(services, sink_server, 2)
    sinks = json.loads(runner.invoke(args=["sinks", "list", "--json"]).stdout)
    assert sinks == [{"name": "crm", "type": "http", "url": f"{sink_server.url}/crm", "events": ["*"],
                      "environments": ["production"], "enabled": True, "disabledAt": None, "disabledReason": None,
                      "deliveries": {"dead": 2}}]
    listed = data_rows(runner.invoke(args=["sinks", "list"]).output)
    assert listed == [["crm", "http", f"{sink_server.url}/crm", "*", "production", "enabled", "dead", "2"]]
    table_out = runner.invoke(args=["sinks", "deliveries", "--sink", "crm"])
    rows = json.loads(runner.invoke(args=["sinks", "deliveries", "--sink", "crm", "--json"]).stdout)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    for cells, row in zip(data_rows(table_out.output), rows, strict=True):
        assert cells[:7] == [row["id"], "crm", "dead", "1", "500", "purchase.completed", row["eventId"]]
        assert cells[7] == f"{row['playerId']}#{row['playerSequence']}"
    assert runner.invoke(args=["sinks", "deliveries", "--state", "delivered"]).output.strip() == "no deliveries match"


# ---------------------------------------------------------------- long work: progress on stderr
def test_bulk_event_replay_asks_first_and_shows_progress_on_stderr(runner, client, redis, services, stripe_fake):
    sent = []
    for n in range(3):
        pi = stripe_fake.payment_intent(amount=100, metadata={"kraty_sku": "gems_100", "kraty_quantity": "x",
                                                              "player_id": f"player-{n}"})
        sent.append(event("payment_intent.succeeded", pi))
        post(client, sent[-1])
    drain(redis)
    assert {inbound(services, ev["id"])[0][1] for ev in sent} == {"failed"}
    declined = runner.invoke(args=["events", "replay", "--outcome", "failed"], input="n\n")
    assert declined.exit_code != 0 and "Replay 3 failed events?" in declined.output
    assert {inbound(services, ev["id"])[0][1] for ev in sent} == {"failed"}  # nothing changed
    done = runner.invoke(args=["events", "replay", "--outcome", "failed", "--source", "stripe", "--yes"])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "3 events replayed"
    assert "replaying 3 events: 3/3" in done.stderr
    assert {inbound(services, ev["id"])[0][1] for ev in sent} == {"pending"}
    drain(redis)
    assert {inbound(services, ev["id"])[0][1] for ev in sent} == {"failed"}  # handled again (still bad metadata)
    ids = [r["id"] for r in json.loads(runner.invoke(args=["events", "list", "--json"]).stdout)][:2]
    several = runner.invoke(args=["events", "replay", *map(str, ids)])  # several ids: no question asked
    assert several.exit_code == 0 and several.stdout.strip() == "2 events replayed"
    drain(redis)
    assert runner.invoke(args=["events", "replay", "--outcome", "pending"]).output.strip() == "no pending events match"


def test_sinks_replay_since_shows_progress_on_stderr_only(runner, redis, services, sink_server):
    ids = dead_deliveries(services, sink_server, 3)
    sink_server.always(200)
    result = runner.invoke(args=["sinks", "replay", "--sink", "crm", "--since", "2000-01-01T00:00:00Z", "--reason", "test"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "3 deliveries replayed"
    assert "replaying 3 deliveries: 3/3" in result.stderr
    drain(redis)
    with services.session() as session:
        assert {session.get(Delivery, i).state for i in ids} == {"delivered"}
    one = runner.invoke(args=["sinks", "replay", ids[0], "--reason", "test"])
    assert one.stdout.strip() == "1 delivery replayed" and one.stderr == ""  # one delivery: no progress


def test_bulk_retry_confirms_goes_through_ops_and_keeps_json_clean(runner, client, services, emulator):
    first = failed_order(client, emulator, services, txn="t-bulk-1")
    second = failed_order(client, emulator, services, txn="t-bulk-2", user="player-2")
    args = ["orders", "retry", "--state", "FULFILL_FAILED", "--reason", "kraty incident 12"]
    declined = runner.invoke(args=args, input="n\n")
    assert declined.exit_code != 0 and "Retry 2 FULFILL_FAILED orders?" in declined.output
    assert state(services, first) == state(services, second) == "FULFILL_FAILED"
    done = runner.invoke(args=[*args, "--yes", "--json"])
    assert done.exit_code == 0, done.output
    results = json.loads(done.stdout)  # the progress lines went to stderr
    assert sorted((r["id"], r["state"], r["error"]) for r in results) == sorted(
        [(first, "FULFILLED", None), (second, "FULFILLED", None)])
    assert "retrying 2 orders: 2/2" in done.stderr and "retrying" not in done.stdout
    assert [(e.action, e.reason) for e in audit_entries(services, first)] == [("retry", "kraty incident 12")]
    with services.session() as session:
        assert session.scalar(select(AuditEntry.actor).where(AuditEntry.target_id == second)).startswith("cli:")
    third = failed_order(client, emulator, services, txn="t-bulk-3")
    emulator.faults({"path": "/inventory/sword/grant", "status": 400, "code": "validation_failed", "message": "no"})
    summary = runner.invoke(args=[*args, "--yes"])
    emulator.clear_faults()
    assert summary.exit_code == 0 and summary.stdout.strip() == "1 order retried: 1 FULFILL_FAILED", summary.output
    assert state(services, third) == "FULFILL_FAILED"
    assert runner.invoke(args=[*args, "--yes", "--since", "2999-01-01"]).output.strip() == \
        "no FULFILL_FAILED orders match"


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("args, message", [
    (["orders", "retry", "--reason", "r"], "give REF"),
    (["orders", "retry", "some-order", "--state", "FULFILL_FAILED", "--reason", "r"], "give REF, or --state"),
    (["orders", "retry", "--state", "FULFILL_FAILED", "--player", "p", "--reason", "r"], "--player"),
    (["orders", "retry", "--state", "FULFILLED", "--reason", "r"], "FULFILLED"),
    (["orders", "list", "--since", "last tuesday"], "not an ISO 8601 time"),
    (["events", "replay"], "give EVENT_IDs"),
    (["events", "replay", "1", "--outcome", "failed"], "give EVENT_IDs, or --outcome"),
    (["events", "replay", "--outcome", "ignored"], "ignored"),
    (["sinks", "deliveries", "--sink", "nope"], "no sink nope is configured"),
    (["sinks", "replay", "--sink", "crm", "--since", "soon", "--reason", "x"], "not an ISO 8601 time"),
])
def test_usage_errors_are_clear_and_exit_2(runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 2 and message in result.stderr, (result.exit_code, result.output)
    assert result.stdout == ""


def test_failures_exit_1_with_the_reason(runner, client, services, emulator):
    done = fulfilled_order(client, services, txn="t-err")
    wrong = runner.invoke(args=["orders", "retry", done, "--reason", "r"])
    assert wrong.exit_code == 1 and "is FULFILLED: only a FULFILL_FAILED or REVOKE_FAILED order" in wrong.stderr
    blank = runner.invoke(args=["orders", "revoke", done, "--reason", "  "])
    assert blank.exit_code == 1 and "reason: required" in blank.stderr
    assert runner.invoke(args=["events", "replay", "999998", "999999"]).stderr.strip() == "Error: no event 999998"
    assert runner.invoke(args=["orders", "show", "nope", "--json"]).stdout == ""  # nothing half-printed


def test_reconcile_prints_every_count_and_json(runner):
    result = runner.invoke(args=["reconcile", "--stale-seconds", "0"])
    assert result.exit_code == 0 and result.output.startswith("0 stalled order(s), 0 enqueued")
    assert "0 store event(s) re-enqueued, 0 given up" in result.output
    counts = json.loads(runner.invoke(args=["reconcile", "--json"]).stdout)
    assert counts["stalled"] == 0 and set(counts) >= {"enqueued", "events", "reversals", "followups"}
