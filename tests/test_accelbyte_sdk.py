"""Every AccelByte-compatible answer, read as AccelByte's own Python SDK reads it (accelbyte-py-sdk, Platform).

Each answer goes through the SDK operation's ``parse_response`` (what a storefront's client runs on it) and
the model's ``create_from_dict``; ``to_dict()`` of the model must give back the whole answer: a field the
SDK does not declare (or declares under another name) would be dropped there, silently, for the client.
Only ``null`` values may go (the SDK skips them; they carry nothing). The "not settled yet" answer must
come out of the SDK as an error, never as a result a client could read as FULFILL_FAILED.
"""
from __future__ import annotations

import pytest
from accelbyte_py_sdk.api.platform.models import (ErrorEntity, FulfillmentPagingSlicedResult, FulfillmentV2Result,
                                                  RevokeFulfillmentV2Result)
from accelbyte_py_sdk.api.platform.operations.fulfillment import (BulkFulfillItemsV3, FulfillItems, FulfillItemsV3,
                                                                  QueryFulfillments, RetryFulfillItems,
                                                                  RetryFulfillItemsV3, RevokeItems, RevokeItemsV3)

from tests.support.orders_flow import AUTH, drain, put_order
from tests.support.accelbyte import OTHER_AUTH, kraty_call, query_path, result_path
from tests.support.accelbyte import make_app, two_games_app  # noqa: F401  (fixtures)

FULL_ORDER = [{"itemSku": "starter_pack", "quantity": 2, "storeId": "s-1"}, {"itemSku": "vip_monthly", "quantity": 1},
              {"itemSku": "mega_bundle", "quantity": 1}, {"itemSku": "mystery_chest", "quantity": 1},
              {"itemSku": "soundtrack", "quantity": 1}, {"itemSku": "gems_100", "quantity": 3}]


def without_nulls(value):
    """The JSON as the SDK keeps it: ``null`` members dropped (recursively)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def assert_round_trip(model, body) -> None:
    """``model`` (what the SDK made of ``body``) holds every field of it."""
    assert model is not None, body
    assert model.to_dict() == without_nulls(body)


def sdk_read(operation, response):
    """What the SDK operation makes of our HTTP answer: (data model or None, error model or None)."""
    parsed = operation.parse_response(response.status_code, response.mimetype, response.get_json())
    data = getattr(parsed, f"data_{response.status_code}", None)
    error = getattr(parsed, f"error_{response.status_code}", None)
    return parsed, data, error


def read_result(operation, response):
    """A fulfilment/revocation result answer (200, or the v2 409 that carries a result)."""
    parsed, data, error = sdk_read(operation, response)
    model = data if response.status_code == 200 else error
    assert_round_trip(model, response.get_json())
    return model


def read_error(operation, response, status: int, code: int) -> ErrorEntity:
    assert response.status_code == status, response.get_json()
    parsed, _data, error = sdk_read(operation, response)
    assert parsed.is_success is False
    entity = error if isinstance(error, ErrorEntity) else ErrorEntity.create_from_dict(response.get_json())
    assert_round_trip(entity, response.get_json())
    assert entity.error_code == code
    return entity


# ---------------------------------------------------------------- results
def test_fulfil_answers(client, emulator):
    full = put_order(client, FULL_ORDER)
    model = read_result(FulfillItems(), full)
    assert model.state == "FULFILLED" and model.entitlement_summaries and model.credit_summaries
    assert model.subscription_summaries and model.state_info.success_list[0].items
    sword = next(e for e in model.entitlement_summaries if e.item_id == "sword")
    assert sword.stackable is True and sword.stacked_use_count == 2 and sword.name == "Sword"
    read_result(FulfillItemsV3(), put_order(client, [{"itemSku": "sword", "quantity": 1}], txn="t-v3", version=3))
    # partial: an unknown line, a bundle that cannot be fulfilled and a Kraty refusal among granted lines
    emulator.faults({"path": "/inventory/shield/grant", "status": 400, "code": "validation_failed", "count": 1})
    partial = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "no_such", "quantity": 1},
                                 {"itemSku": "broken_bundle", "quantity": 1}, {"itemSku": "shield", "quantity": 1}],
                        txn="t-partial")
    assert partial.status_code == 409
    model = read_result(FulfillItems(), partial)
    assert model.state == "FULFILL_FAILED" and model.state_reason
    assert [r.error for r in model.state_info.failed_list if r.error] and len(model.state_info.failed_list) == 3
    for version, operation in ((3, RetryFulfillItemsV3()), (2, RetryFulfillItems())):
        retried = client.put(result_path(txn="t-partial", action="retry", version=version), headers=AUTH)
        read_result(operation, retried)
    assert retried.get_json()["state"] == "FULFILL_FAILED"  # the unknown line and the broken bundle stay failed
    assert "shield" in [r.item_sku for r in FulfillmentV2Result.create_from_dict(retried.get_json())
                        .state_info.success_list]


def test_revoke_answers(client, emulator):
    put_order(client, FULL_ORDER)
    model = read_result(RevokeItems(), client.put(result_path(action="revoke"), headers=AUTH))
    assert model.state == "REVOKED" and model.entitlement_revocations and model.credit_revocations
    assert {e.item_sku for e in model.entitlement_revocations} >= {"sword", "shield", "mystery_chest"}
    read_result(RevokeItemsV3(), client.put(result_path(action="revoke", version=3), headers=AUTH))
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="t-spent")
    kraty_call(emulator, "/players/player-1/wallet/gems/debit", {"amount": 50, "reason": "spent", "idempotencyKey": "s"})
    failed = client.put(result_path(txn="t-spent", action="revoke"), headers=AUTH)
    assert failed.status_code == 409
    model = read_result(RevokeItems(), failed)
    assert model.state == "REVOKE_FAILED" and "insufficient_funds" in model.credit_revocations[0].reason


def test_bulk_answer_with_refused_entries(client, emulator):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="existing")
    entries = [{"transactionId": "b-ok", "items": [{"itemSku": "starter_pack", "quantity": 1}]},
               {"transactionId": "b-unknown", "items": [{"itemId": "no-such-id", "quantity": 1}]},
               {"transactionId": "b-season", "items": [{"itemSku": "season_pass", "quantity": 1}]},
               {"transactionId": "existing", "items": [{"itemSku": "gems_100", "quantity": 5}]}]
    response = client.put(result_path(txn="bulk", version=3), json=entries, headers=AUTH)
    parsed, data, _ = sdk_read(BulkFulfillItemsV3(), response)
    assert len(data) == 4
    for model, body in zip(data, response.get_json()):
        assert_round_trip(model, body)
    refused = data[1:]
    assert [m.state for m in refused] == ["FULFILL_FAILED"] * 3
    # the client reads why, from the fields it has
    assert [m.state_info.failed_list[0].error.split(":")[0] for m in refused] == ["30341", "38130", "38128"]
    assert refused[0].items[0].item_id == "no-such-id" and refused[0].state_reason.startswith("30341: ")


def test_query_answer(client, emulator):
    put_order(client, FULL_ORDER)
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "no_such", "quantity": 1}], txn="t-2")
    put_order(client, [{"itemSku": "sword", "quantity": 1}], txn="t-3")
    client.put(result_path(txn="t-3", action="revoke"), headers=AUTH)
    response = client.get(query_path() + "?limit=2&offset=1", headers={**AUTH, "Content-Type": "application/octet-stream"})
    parsed, data, _ = sdk_read(QueryFulfillments(), response)
    assert isinstance(data, FulfillmentPagingSlicedResult)
    assert_round_trip(data, response.get_json())
    assert not hasattr(data.paging, "next_") and data.paging.previous
    assert [row.state for row in data.data] == ["FULFILL_FAILED", "FULFILLED"]
    assert data.data[0].actions[0].action == "FULFILLMENT"


# ---------------------------------------------------------------- errors
def test_every_error_answer(two_games_app, emulator):
    client = two_games_app.test_client()
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    fulfil = FulfillItems()
    cases = [
        (put_order(client, [{"itemSku": "gems_100", "quantity": 0}], txn="t-x"), 400, 20002),
        (client.put(result_path(txn="t-x"), data="{", headers=AUTH, content_type="application/json"), 400, 20019),
        (put_order(client, [{"itemSku": "gems_100", "quantity": 2}]), 400, 38128),
        (put_order(client, [{"itemSku": "season_pass", "quantity": 1}], txn="t-x"), 400, 38130),
        (put_order(client, [{"itemId": "nope", "quantity": 1}], txn="t-x"), 404, 30341),
        (put_order(client, [{"itemSku": "nope", "quantity": 1}], txn="t-x"), 404, 30343),
        (put_order(client, [{"itemSku": "sword", "quantity": 1}], txn="t-x", headers={"Authorization": "Bearer x"}),
         401, 20001),
        (put_order(client, [{"itemSku": "sword", "quantity": 1}], txn="t-x", headers=OTHER_AUTH), 403, 20013),
        (put_order(client, [{"itemSku": "sword", "quantity": 1}], txn="t-x", ns="nope"), 403, 20013),
        (client.put(result_path(txn="t-x"), data="x", headers=AUTH, content_type="text/plain"), 415, 20025),
    ]
    for response, status, code in cases:
        read_error(fulfil, response, status, code)
    for operation, action in ((RetryFulfillItems(), "retry"), (RevokeItems(), "revoke")):
        read_error(operation, client.put(result_path(txn="t-none", action=action), headers=AUTH), 404, 38145)
    entity = read_error(fulfil, cases[3][0], 400, 38130)
    assert entity.error_message == "Cannot fulfill item with type [SEASON] in item [season_pass]"
    assert entity.message_variables == {"itemType": "SEASON", "itemIdentity": "season_pass"}
    read_error(QueryFulfillments(), client.get(query_path() + "?limit=0", headers=AUTH), 400, 20002)


# ---------------------------------------------------------------- not settled yet
@pytest.mark.parametrize("operation, version", [(FulfillItems(), 2), (FulfillItemsV3(), 3)])
def test_not_settled_is_an_error_to_the_sdk(client, emulator, redis, operation, version):
    emulator.faults({"path": "/wallet/gems/credit", "status": 503, "count": 1})
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], version=version)
    assert response.status_code == 503 and response.headers["Retry-After"]
    parsed, data, error = sdk_read(operation, response)
    assert parsed.is_success is False and parsed.error is not None and data is None
    assert not isinstance(error, FulfillmentV2Result)
    assert ErrorEntity.create_from_dict(response.get_json()).to_dict() == response.get_json()
    drain(redis)
    model = read_result(operation, put_order(client, [{"itemSku": "gems_100", "quantity": 1}], version=version))
    assert model.state == "FULFILLED"


def test_not_settled_revocation_and_bulk_are_errors_to_the_sdk(client, emulator, redis):
    put_order(client, [{"itemSku": "sword", "quantity": 1}])
    emulator.faults({"path": "/inventory/sword/revoke", "status": 503, "count": 1},
                    {"path": "/wallet/gems/credit", "status": 503, "count": 1})
    for operation, response in (
            (RevokeItems(), client.put(result_path(action="revoke"), headers=AUTH)),
            (BulkFulfillItemsV3(), client.put(result_path(txn="bulk", version=3), headers=AUTH, json=[
                {"transactionId": "b-1", "items": [{"itemSku": "gems_100", "quantity": 1}]}]))):
        assert response.status_code == 503
        parsed, data, _error = sdk_read(operation, response)
        assert parsed.is_success is False and data is None
    drain(redis)
    read_result(RevokeItemsV3(), client.put(result_path(action="revoke", version=3), headers=AUTH))
    assert RevokeFulfillmentV2Result.create_from_dict(
        client.put(result_path(action="revoke"), headers=AUTH).get_json()).state == "REVOKED"
