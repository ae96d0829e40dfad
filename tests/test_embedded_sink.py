"""``make run`` shows the Kraty -> bridge -> CRM half: the emulator's webhooks reach the bridge (signed as Kraty
signs them, config/embedded_wiring.py), and the bridge's events reach the sink endpoint the emulator serves."""
from __future__ import annotations

import signal
import tomllib

import pytest
import requests

from config import embedded_wiring
from tests.support.orders_flow import poll
from tests.test_embedded import README_HEADERS, README_ORDER, launched, still_running  # noqa: F401  (fixture)


@pytest.mark.processes   # the make run stack: launcher, web, worker, emulator, Redis
def test_a_purchase_and_krates_webhooks_reach_the_local_sink(launched):
    stack = launched()
    stack.wait_ready()
    procs = stack.processes()
    app, emulator = f"http://127.0.0.1:{stack.port}", f"http://127.0.0.1:{stack.emulator_port}"
    sink = f"{emulator}/_emulator/sinks/{embedded_wiring.SINK}"
    assert f"curl {sink}" in stack.output   # the banner says where to look
    response = requests.put(f"{app}/platform/v2/admin/namespaces/demo/users/player-1/fulfillments/order-2001",
                            json=README_ORDER, headers=README_HEADERS, timeout=30)
    assert response.status_code == 200, response.text

    def delivered() -> bool:
        types = {e["event"]["type"] for e in requests.get(sink, timeout=5).json()["events"]}
        return "purchase.fulfilled" in types and "wallet.changed" in types   # the bridge's own, and Kraty's
    poll(delivered, timeout=40, interval=0.3, what="the purchase and Kraty's wallet.changed to reach the sink")
    received = requests.get(f"{emulator}/_emulator/webhooks", timeout=5).json()
    assert received   # the emulator sent them to the bridge
    # a delivery not signed with the sink's secret is refused by the endpoint
    assert requests.post(sink, data=b"{}", headers={"webhook-id": "x", "webhook-timestamp": "1",
                                                    "webhook-signature": "v1,bad"}, timeout=5).status_code == 401

    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=30) == 0, stack.output
    assert not still_running(procs), stack.output


def test_the_wiring_files(tmp_path):
    env: dict = {}
    config = embedded_wiring.wire({}, env, tmp_path, 8001, 8101)
    kraty_secret = (tmp_path / embedded_wiring.KRATY_SECRET_FILE).read_text().strip()
    catalog = tomllib.loads(open(env["KB_CATALOG"]).read())
    assert catalog["games"]["demo"]["kraty_webhook_secrets"] == [kraty_secret]
    assert catalog["games"]["demo"]["kraty_base_url"] == "http://127.0.0.1:8101"
    emulator = tomllib.loads(open(config).read())
    assert emulator["games"]["demo"]["webhook_url"] == "http://127.0.0.1:8001/webhooks/kraty"
    assert emulator["games"]["demo"]["webhook_secret"] == kraty_secret
    sinks = tomllib.loads(open(env["KB_SINKS"]).read())["sinks"][embedded_wiring.SINK]
    assert sinks["url"] == "http://127.0.0.1:8101/_emulator/sinks/local_crm"
    assert emulator["sinks"][embedded_wiring.SINK] == sinks["secret"]
    assert (tmp_path / embedded_wiring.SINK_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    # the same secrets on the next run; the user's own files are left alone
    embedded_wiring.wire({}, {}, tmp_path, 8001, 8101)
    assert (tmp_path / embedded_wiring.KRATY_SECRET_FILE).read_text().strip() == kraty_secret
    mine: dict = {}
    config = embedded_wiring.wire({"KB_CATALOG": "c.toml", "KB_SINKS": "s.toml"}, mine, tmp_path, 8001, 8101)
    assert mine == {} and "webhook_url = " not in open(config).read().split("[games.demo]")[1].split("\n[")[0] \
        .replace("# webhook_url", "")
