"""``mappers.stripe.checkout_event``: a Checkout Session event read in ONE marshmallow load accepts exactly what
``parse_event`` + ``check_object`` accept (the webhook's two-step way), and hands back the same event."""
from __future__ import annotations

import copy

import pytest
from marshmallow import ValidationError

from mappers import stripe as m

SESSION = {"id": "cs_test_1", "object": "checkout.session", "payment_status": "paid", "client_reference_id": "p-1",
           "metadata": {"player_id": "p-1"}, "payment_intent": {"id": "pi_1"}, "amount_total": 999,
           "currency": "usd", "mode": "payment", "total_details": {"amount_discount": 0}}
EVENT = {"id": "evt_1", "object": "event", "type": m.CHECKOUT_COMPLETED, "livemode": False, "created": 1,
         "data": {"object": SESSION}, "account": "acct_1ABC"}


def _two_steps(payload) -> m.Event:
    event = m.parse_event(payload)
    m.check_object(event)
    return event


def _with(path: tuple, value) -> dict:
    payload = copy.deepcopy(EVENT)
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


@pytest.mark.parametrize("kind", sorted(m.SESSION_EVENTS))
def test_a_good_session_event_is_the_same_event_in_one_load(kind):
    payload = _with(("type",), kind)
    assert m.checkout_event(payload) == _two_steps(payload)
    assert m.checkout_event(payload).object is payload["data"]["object"]   # the object as sent, as before


@pytest.mark.parametrize("path, value", [
    (("id",), KeyError), (("livemode",), "no"), (("created",), "1"), (("data",), KeyError), (("data",), []),
    (("data", "object"), KeyError), (("data", "object"), None), (("data", "object"), "cs_1"),
    (("data", "object", "id"), KeyError), (("data", "object", "id"), ""), (("data", "object", "amount_total"), -5),
    (("data", "object", "amount_total"), 9.5), (("data", "object", "metadata"), []),
    (("data", "object", "payment_intent"), {"id": 7}), (("data", "object", "mode"), 3),
    (("data", "object", "total_details"), "x"), (("account",), "cus_1"),
])
def test_what_the_two_steps_refuse_one_load_refuses_and_leaves_to_them(path, value):
    payload = _with(path, value)
    with pytest.raises(ValidationError):
        _two_steps(payload)
    assert m.checkout_event(payload) is None   # the webhook then runs the two steps: their own messages


def test_other_events_are_left_to_the_two_steps():
    assert m.checkout_event(_with(("type",), m.PI_SUCCEEDED)) is None
    assert m.checkout_event([EVENT]) is None and m.checkout_event(_with(("type",), 5)) is None
