"""The worker's fulfil attempt on SQLAlchemy Core (middleware/orders/attempt_core.py): the same ledger rules as the
ORM attempt — the claim and FULFILLING committed before Kraty is called, stable keys, results fenced by the
lease's version, retries — on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from middleware.orders import attempt_core
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, FulfilmentItem, utcnow
from middleware.orders.lines import build_items, request_hash, resolve_line

LINES = [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 2}]


def _order(services, txn="core-1", **fields) -> str:
    game = services.catalog.game("demo")
    with services.session() as session:
        f = Fulfilment(namespace="demo", source="accelbyte", transaction_id=txn, player_id="player-1",
                       state=states.RECEIVED, request_hash=request_hash(LINES), lines=LINES,
                       items=build_items([resolve_line(game, line) for line in LINES]), **fields)
        session.add(f)
        session.commit()
        return f.id


def _load(services, fid) -> Fulfilment:
    with services.session() as session:
        f = session.get(Fulfilment, fid)
        f.items, f.history  # load while attached
        return f


def test_a_received_order_is_granted_once_with_its_history_and_the_lease_given_back(services, emulator):
    fid = _order(services)
    outcome = attempt_core.attempt_fulfil(services, fid, actor="worker")
    assert outcome.ran and outcome.state == states.FULFILLED and outcome.retry_in is None
    f = _load(services, fid)
    assert f.state == states.FULFILLED and f.attempts == 1 and f.lease_owner is None and f.lease_until is None
    assert f.version == 3  # created 1, the claim 2, the results 3
    assert [(h.from_state, h.to_state) for h in f.history] == [(states.RECEIVED, states.FULFILLING),
                                                               (states.FULFILLING, states.FULFILLED)]
    assert f.history[1].detail["attempt"] == 1 and len(f.history[1].detail["done"]) == 2
    entries = emulator.ledger(player="player-1")
    assert sorted(e["kind"] for e in entries) == ["credit", "grant"]
    assert {i.idempotency_key for i in f.items} == {"accelbyte:core-1:0.0:grant:0", "accelbyte:core-1:1.0:grant:0"}
    assert {i.kraty_entry_id for i in f.items} == {e["id"] for e in entries}
    assert all(i.state == states.ITEM_GRANTED for i in f.items)
    # a second attempt finds nothing to claim (FULFILLED) and changes nothing
    assert attempt_core.attempt_fulfil(services, fid, actor="worker").ran is False
    assert len(emulator.ledger(player="player-1")) == 2


def test_an_order_another_process_holds_is_left_alone(services, emulator):
    fid = _order(services, lease_owner="elsewhere:1", lease_until=utcnow() + timedelta(seconds=60))
    assert attempt_core.attempt_fulfil(services, fid, actor="worker").ran is False
    f = _load(services, fid)
    assert f.state == states.RECEIVED and f.lease_owner == "elsewhere:1" and f.history == []
    assert emulator.ledger() == []


def test_results_are_dropped_when_the_lease_was_taken_over_during_the_calls(services, emulator, monkeypatch):
    """A slow attempt whose lease ran out and was claimed by another worker: its commit matches nothing (the
    version moved on); the order stays as the new holder has it, and the new holder's calls reuse the keys."""
    fid = _order(services)
    client = services.kraty("demo")
    real_credit = client.credit

    def credit_then_taken_over(*args, **kwargs):
        answer = real_credit(*args, **kwargs)
        with services.session() as session:  # another worker claims the order meanwhile
            session.execute(update(Fulfilment).where(Fulfilment.id == fid)
                            .values(lease_owner="other:2", version=Fulfilment.version + 1))
            session.commit()
        return answer
    monkeypatch.setattr(client, "credit", credit_then_taken_over)
    outcome = attempt_core.attempt_fulfil(services, fid, actor="worker")
    assert outcome.ran is False
    f = _load(services, fid)
    assert f.state == states.FULFILLING and f.lease_owner == "other:2" and f.attempts == 0
    assert all(i.state == states.ITEM_PENDING and i.kraty_entry_id is None for i in f.items)
    assert [(h.from_state, h.to_state) for h in f.history] == [(states.RECEIVED, states.FULFILLING)]


def test_a_transient_kraty_error_schedules_a_retry_and_keeps_what_was_granted(services, emulator):
    fid = _order(services)
    emulator.faults({"path": "/inventory/.*/grant", "status": 503, "count": 1})
    outcome = attempt_core.attempt_fulfil(services, fid, actor="worker")
    assert outcome.ran and outcome.state == states.FULFILLING and outcome.retry_in is not None
    f = _load(services, fid)
    assert f.next_attempt_at is not None and f.reason.startswith("retrying after transient error")
    assert f.lease_owner is None and f.attempts == 1
    by_line = {i.line_no: i for i in f.items}
    assert by_line[0].state == states.ITEM_GRANTED and by_line[1].state == states.ITEM_PENDING
    assert by_line[1].error_code and by_line[1].idempotency_key == "accelbyte:core-1:1.0:grant:0"
    assert f.history[-1].detail["retry_in"] == round(outcome.retry_in, 3)
    with services.session() as session:  # due now: the next attempt grants only what is left
        session.execute(update(Fulfilment).where(Fulfilment.id == fid).values(next_attempt_at=None))
        session.commit()
    assert attempt_core.attempt_fulfil(services, fid, actor="worker").state == states.FULFILLED
    assert sorted(e["kind"] for e in emulator.ledger(player="player-1")) == ["credit", "grant"]
    assert [(h.from_state, h.to_state) for h in _load(services, fid).history] == [  # no second transition row
        (states.RECEIVED, states.FULFILLING), (states.FULFILLING, states.FULFILLING),
        (states.FULFILLING, states.FULFILLED)]


def test_a_permanent_refusal_fails_the_order_with_the_reason(services, emulator):
    fid = _order(services)
    emulator.faults({"path": "/inventory/.*/grant", "status": 400, "count": 1})
    assert attempt_core.attempt_fulfil(services, fid, actor="worker").state == states.FULFILL_FAILED
    f = _load(services, fid)
    assert f.reason.startswith("1 item(s) failed") and f.lease_owner is None
    with services.session() as session:
        failed = session.scalars(select(FulfilmentItem.state).where(FulfilmentItem.fulfilment_id == fid)).all()
    assert sorted(failed) == sorted([states.ITEM_GRANTED, states.ITEM_FAILED])


def test_an_order_to_look_up_in_its_store_goes_the_orm_way(services, emulator, monkeypatch):
    from middleware.orders import attempts as engine
    calls = []
    monkeypatch.setattr(engine, "attempt_fulfil", lambda svc, fid, actor: calls.append(fid) or engine.Outcome(False))
    fid = _order(services, lookup="stripe:checkout_session")
    assert attempt_core.attempt_fulfil(services, fid, actor="worker").ran is False
    assert calls == [fid] and _load(services, fid).state == states.RECEIVED
