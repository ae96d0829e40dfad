"""The ledger: migrations match the models on this backend, unique keys hold, the state machine is closed."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from middleware.orders.retry import backoff_delay
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Base, Fulfilment, FulfilmentItem, InboundEvent
from middleware.orders import create, order_insert
from middleware.orders.lines import grant_key, key_source, revoke_key


def test_migrations_match_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrations_go_down_and_up_again(tmp_path):
    from sqlalchemy import inspect

    from middleware.ledger import migrate
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert {"fulfilments", "fulfilment_items", "fulfilment_history", "inbound_events"} <= set(
        inspect(engine).get_table_names())
    engine.dispose()


def _order(txn="t-1", namespace="demo", source="accelbyte"):
    return Fulfilment(namespace=namespace, source=source, transaction_id=txn, player_id="p", request_hash="h",
                      state=states.RECEIVED,
                      lines=[{"itemSku": "gems_100", "quantity": 1}])


def test_inbound_events_are_unique_per_source_and_event_id(services):
    with services.session() as session:
        assert repo.record_event(session, source="stripe", provider_event_id="evt_1", namespace="demo",
                                 content_type="application/json", raw_body=b"{}")
        assert not repo.record_event(session, source="stripe", provider_event_id="evt_1", namespace="demo",
                                     content_type="application/json", raw_body=b"{}")
        assert repo.record_event(session, source="app_store", provider_event_id="evt_1", namespace="demo",
                                 content_type="application/json", raw_body=b'{"raw": true}')
        session.commit()
        rows = session.scalars(select(InboundEvent)).all()
    assert len(rows) == 2
    assert {row.raw_body for row in rows} == {b"{}", b'{"raw": true}'}


def _new_order(txn="t-1", namespace="demo", source="accelbyte"):
    return create.new_order_rows(namespace=namespace, source=source, transaction_id=txn, player_id="p",
                                 lines=[{"itemSku": "gems_100", "quantity": 1}], resolved=[], actor="test")


def test_fulfilments_are_unique_per_namespace_source_and_transaction(services):
    event = {"source": "accelbyte", "namespace": "demo", "raw_body": b"{}"}
    for k, (order, new) in enumerate(((_new_order(), True), (_new_order(), False), (_new_order(source="stripe"), True),
                                      (_new_order(namespace="other"), True))):
        with services.engine.connect() as connection:
            inserted = order_insert.insert_order(connection, order, {**event, "provider_event_id": f"e-{k}"})
        assert (inserted is not None) is new
    with services.session() as session:
        assert len(session.scalars(select(Fulfilment)).all()) == 3
        assert len(session.scalars(select(InboundEvent)).all()) == 3  # the repeat's event went with it: nothing


def test_every_transition_is_recorded_and_illegal_ones_refused(services):
    with services.session() as session:
        f = _order()
        session.add(f)
        repo.set_state(f, states.FULFILLING, "worker")
        repo.set_state(f, states.FULFILLED, "worker", {"attempt": 1})
        with pytest.raises(states.IllegalTransition):
            repo.set_state(f, states.RECEIVED, "worker")
        repo.set_state(f, states.REVOKING, "operator:alice", reason="chargeback")
        repo.set_state(f, states.REVOKED, "worker")
        repo.set_state(f, states.FULFILLING, "store")  # a reversed refund
        session.commit()
        trail = [(h.from_state, h.to_state, h.actor) for h in repo.load(session, f.id, history=True).history]
    assert trail == [("RECEIVED", "FULFILLING", "worker"), ("FULFILLING", "FULFILLED", "worker"),
                     ("FULFILLED", "REVOKING", "operator:alice"), ("REVOKING", "REVOKED", "worker"),
                     ("REVOKED", "FULFILLING", "store")]


def test_every_state_can_be_reached_and_terminal_ones_are_named():
    reachable = {states.RECEIVED}
    frontier = [states.RECEIVED]
    while frontier:
        for nxt in states.TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(states.STATES)
    assert set(states.ACTIVE) == {states.RECEIVED, states.FULFILLING, states.REVOKING}


def test_idempotency_keys_derive_from_stored_data_only():
    item = FulfilmentItem(line_no=1, component_no=2, cycle=0, amount=100, revoked_amount=0)
    assert grant_key("accelbyte", "t-9", item) == "accelbyte:t-9:1.2:grant:0"
    assert revoke_key("accelbyte", "t-9", item) == "accelbyte:t-9:1.2:revoke:0"
    # a partial take-back names the total it brings the row to; each later step its own
    item.revoke_to = 33
    assert revoke_key("accelbyte", "t-9", item) == "accelbyte:t-9:1.2:revoke:0:33"
    item.revoked_amount, item.revoke_to = 33, 66
    assert revoke_key("accelbyte", "t-9", item) == "accelbyte:t-9:1.2:revoke:0:66"
    item.revoke_to = None  # then all the rest
    assert revoke_key("accelbyte", "t-9", item) == "accelbyte:t-9:1.2:revoke:0:100"
    item.revoked_amount = 0
    item.cycle = 1  # after a reversed refund: a new grant, a new key
    assert grant_key("accelbyte", "t-9", item) == "accelbyte:t-9:1.2:grant:1"


def test_backoff_is_full_jitter_capped_and_respects_retry_after(services):
    settings = services.settings.replace(retry_base_seconds=2.0, retry_max_delay_seconds=60.0)
    delays = [backoff_delay(settings, attempt, None) for attempt in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 60.0 for d in delays)
    assert max(backoff_delay(settings, 1, None) for _ in range(200)) <= 4.0
    assert min(backoff_delay(settings, 1, 30.0) for _ in range(50)) >= 30.0
    assert backoff_delay(settings, 1, 10_000.0) == 60.0


def test_storefront_scoped_keys_never_meet_each_other_or_the_old_ones():
    """Storefront names may hold ':' but never '/': a name ends at the second '/'."""
    item = FulfilmentItem(line_no=0, component_no=0, cycle=0)
    keys = {grant_key(key_source("accelbyte", scope), txn, item)
            for scope, txn in ((None, "a/b:T"), ("a", "b:T"), ("a:b", "T"), ("a", ":b:T"), (None, "T"))}
    assert len(keys) == 5
    assert grant_key(key_source("accelbyte", None), "T", item) == "accelbyte:T:0.0:grant:0"  # as before 0007
    assert grant_key(key_source("accelbyte", "acme"), "T", item) == "accelbyte/acme/:T:0.0:grant:0"
