"""The console for support staff: the home page's "what needs me" counts (each a link to its list), search by any
store id with state and dates, the flagged and untraceable-refund lists, notes on orders and players (audited),
the audit page's filters, the Kraty profile card and labelled timeline fields with the raw JSON one click away."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from middleware.ledger.models import AuditEntry, Delivery, Fulfilment, OutboundEvent, Reversal, SinkState, utcnow
from middleware.ops import needs
from middleware.ops.base import Actor
from tests.support.orders_flow import put_order
from tests.support.ops_ledger import GEMS, failed_order, fulfilled_order
from tests.test_console import SECRET, act, app, csrf_of, sign_in, text  # noqa: F401  (app: the console's fixture)


def _count(page: str, name: str) -> int:
    match = re.search(rf'id="count-{name}"[^>]*><strong>(\d+)</strong>', page)
    assert match, f"no count {name}"
    return int(match.group(1))


def test_the_home_page_counts_what_needs_a_person_and_links_each_list(client, services, emulator):
    failed = failed_order(client, emulator, services, txn="t-home-failed")
    stuck = fulfilled_order(client, services, txn="t-home-stuck")
    price = fulfilled_order(client, services, txn="t-home-price")
    partial = fulfilled_order(client, services, txn="t-home-partial")
    now = utcnow()
    with services.session() as s:
        s.execute(update(Fulfilment).where(Fulfilment.id == stuck).values(
            state="FULFILLING", state_changed_at=now - timedelta(hours=1)))
        s.execute(update(Fulfilment).where(Fulfilment.id == price).values(attention="price_mismatch: paid 0.10 USD"))
        s.execute(update(Fulfilment).where(Fulfilment.id == partial).values(attention="partial refund: 1.00 of 4.99"))
        s.add(Reversal(source="stripe", reversal_key="refund:re_lost:taken", ref="pi_lost", kind="refund",
                       state="untraced", outcome="untraced: no order names stripe payment pi_lost", created_at=now))
        s.add(OutboundEvent(id="evt_home1", type="purchase.completed", namespace="demo", occurred_at=now, payload={}))
        s.flush()
        s.add(Delivery(event_id="evt_home1", sink="crm", state="dead", attempts=8))
        s.add(SinkState(name="crm", disabled_at=now, reason="410"))
        s.commit()
    sign_in(client, services, "viewer")
    page = text(client.get("/console/"))
    assert _count(page, "failed") == 1 and _count(page, "stuck") == 1
    assert _count(page, "flag-price") == 1 and _count(page, "flag-partial_refund") == 1
    assert _count(page, "flag-other") == 0 and _count(page, "untraced") == 1 and _count(page, "dead") == 1
    assert _count(page, "disabled") == 0   # crm is not a configured sink of this app
    assert failed in text(client.get("/console/queue"))
    flagged = text(client.get("/console/flagged?kind=price"))
    assert price in flagged and partial not in flagged
    assert partial in text(client.get("/console/flagged?kind=partial_refund"))
    assert client.get("/console/flagged?kind=nope").status_code == 422
    assert "pi_lost" in text(client.get("/console/untraced"))


def test_a_key_for_some_games_gets_no_untraceable_list(client, services):
    sign_in(client, services, "viewer", ["demo"])
    assert 'id="count-untraced"' not in text(client.get("/console/"))
    assert client.get("/console/untraced").status_code == 403


def test_home_search_by_store_id_state_and_dates(client, services):
    fulfilment_id = fulfilled_order(client, services, txn="t-home-search", user="shopper-42")
    sign_in(client, services, "viewer")
    page = text(client.get("/console/?q=shopper-4"))   # a prefix: the players, never a literal-name link
    assert "/console/players/demo/shopper-42" in page and "/console/players/demo/shopper-4\"" not in page
    found = text(client.get("/console/?q=t-home-search"))
    assert fulfilment_id in found and "transaction id" in found
    assert fulfilment_id in text(client.get("/console/?state=FULFILLED"))
    assert fulfilment_id not in text(client.get("/console/?q=t-home-search&state=REVOKED"))
    day = utcnow().strftime("%Y-%m-%d")
    assert fulfilment_id in text(client.get(f"/console/?q=t-home-search&from={day}&to={day}"))
    for bad in ("state=NOPE", "from=yesterday", f"from={day}&to=2000-01-01"):
        response = client.get(f"/console/?q=x&{bad}")
        assert response.status_code == 422, bad


def test_notes_on_an_order_and_a_player_are_audited(client, services):
    fulfilment_id = fulfilled_order(client, services, txn="t-note")
    sign_in(client, services, "viewer")   # a note changes nothing but the log: a viewer may note
    page = client.get(f"/console/orders/{fulfilment_id}")
    form = {"csrf_token": csrf_of(page), "note": "Customer emailed twice; refund promised",
            "idempotency_key": "note-1"}
    assert client.post(f"/console/orders/{fulfilment_id}/notes", data=form).status_code == 303
    assert client.post(f"/console/orders/{fulfilment_id}/notes", data=form).status_code == 303   # replayed
    assert "Customer emailed twice" in text(client.get(f"/console/orders/{fulfilment_id}"))
    with services.session() as s:
        notes = s.scalars(select(AuditEntry).where(AuditEntry.action == "note")).all()
        assert [(n.target_type, n.target_id, n.actor.startswith("console:")) for n in notes] == [
            ("fulfilment", fulfilment_id, True)]
    bad = client.post(f"/console/orders/{fulfilment_id}/notes", data={**form, "note": " ", "idempotency_key": "n2"})
    assert bad.status_code == 422
    assert client.post(f"/console/orders/{fulfilment_id}/notes",
                       data={**form, "note": "other", "idempotency_key": "note-1"}).status_code == 422
    assert client.post(f"/console/orders/{fulfilment_id}/notes", data={"note": "no csrf"}).status_code == 400
    assert client.post("/console/orders/nope/notes", data={**form, "idempotency_key": "n3"}).status_code == 404
    player_page = client.get("/console/players/demo/player-1")
    done = client.post("/console/players/demo/player-1/notes",
                       data={"csrf_token": csrf_of(player_page), "note": "VIP: answer within the hour"})
    assert done.status_code == 303
    assert "VIP: answer within the hour" in text(client.get("/console/players/demo/player-1"))
    assert client.post("/console/players/nope/player-1/notes",
                       data={"csrf_token": csrf_of(player_page), "note": "x"}).status_code == 422
    with services.session() as s:
        assert s.scalars(select(AuditEntry.target_id).where(AuditEntry.target_type == "player")).all() == [
            "demo/player-1"]


def test_the_audit_page_filters_by_actor_action_target_game_and_time(client, services, emulator):
    failed = failed_order(client, emulator, services, txn="t-audit")
    _, name = sign_in(client, services, "operator")
    assert act(client, failed, "retry", reason="Kraty is back").status_code == 303
    page = text(client.get("/console/audit"))
    assert failed in page and "Kraty is back" in page and "<details" in page
    assert "Kraty is back" in text(client.get(f"/console/audit?actor=console:{name}&action=retry"))
    assert "Kraty is back" not in text(client.get("/console/audit?action=revoke"))
    assert "Kraty is back" in text(client.get(f"/console/audit?target_type=fulfilment&target_id={failed}"))
    assert "Kraty is back" not in text(client.get("/console/audit?to=2000-01-01"))
    assert client.get("/console/audit?target_type=nope").status_code == 422
    assert client.get("/console/audit?before_id=x").status_code == 422
    assert client.get("/console/audit?namespace=nope").status_code == 422


def test_the_kraty_profile_is_a_card_and_timeline_details_are_fields(client, services, emulator):
    fulfilment_id = fulfilled_order(client, services, txn="t-card")
    sign_in(client, services, "viewer")
    page = text(client.get("/console/players/demo/player-1"))
    assert "<h3>Balances</h3>" in page and re.search(r"<dt>gems</dt><dd>\d+</dd>", page)
    assert "<h3>Items</h3>" in page and "Recent grants" in page
    assert "<summary>raw JSON</summary>" in page
    order = text(client.get(f"/console/orders/{fulfilment_id}"))
    assert '<dl class="fields">' in order and "<dt>event</dt>" in order and "<summary>raw JSON</summary>" in order


def test_a_count_stops_at_many_and_says_so(client, services, emulator, monkeypatch):
    """Each home count stops at needs.MANY (a few index probes however many orders match) and shows "MANY+"."""
    monkeypatch.setattr(needs, "MANY", 1)
    monkeypatch.setattr(needs, "_counts_statement", needs._counts_statement.__wrapped__)
    for n in range(3):
        failed_order(client, emulator, services, txn=f"t-many-{n}")
    sign_in(client, services, "viewer")
    page = text(client.get("/console/"))
    assert re.search(r'id="count-failed"[^>]*><strong>1\+</strong>', page)
    assert _count(page, "stuck") == 0
    with services.session() as s:
        assert needs.counts(s, Actor("t", "viewer"), utcnow())["failed"] == 2   # MANY + 1: more than MANY
