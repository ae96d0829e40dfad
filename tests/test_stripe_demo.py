"""``python -m emulator.stripe_demo`` against a served app and an emulator with the Stripe fake mounted
under /stripe (as ``make run`` serves them): the purchase is granted, ``--refund`` takes it back."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from emulator import stripe_demo
from emulator.app import create_app as create_emulator
from emulator.stripe_api import mount_stripe

from tests.conftest import Served
from tests.support.orders_flow import drain, emulator_config
from tests.support.stripe_events import SECRET, order
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)


@pytest.fixture
def kraty_with_stripe():
    """A fresh emulator serving the Stripe fake under /stripe, like ``python -m emulator``."""
    emulator = create_emulator(emulator_config())
    mount_stripe(emulator)
    served = Served(emulator)
    yield served.url
    served.stop()


@pytest.fixture
def bridge(make_app, catalog_path, emulator_url, kraty_with_stripe, tmp_path):
    """The app, served, with the demo game's Kraty and Stripe API both in ``kraty_with_stripe``."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(Path(catalog_path).read_text().replace(emulator_url, kraty_with_stripe))
    app = make_app(catalog_path=str(catalog), stripe_api_base=f"{kraty_with_stripe}/stripe")
    served = Served(app)
    yield served.url, app.extensions["kraty_bridge"]
    served.stop()


def wallet(kraty: str, player: str) -> dict:
    return requests.get(f"{kraty}/_emulator/players/demo/{player}", timeout=5).json()["wallet"]


def test_a_demo_purchase_is_granted_and_its_refund_taken_back(bridge, kraty_with_stripe, redis, capsys):
    url, services = bridge
    common = ["--bridge", url, "--emulator", kraty_with_stripe]
    assert stripe_demo.main([*common, "--player", "player-5", "--price", "price_gems_100", "--quantity", "2"]) == 0
    out = capsys.readouterr().out
    session_id = re.search(r"^session: (cs_test_\w+)$", out, re.MULTILINE).group(1)
    assert '"received":true' in out.replace(" ", "") and "-> 200" in out
    assert f"curl {kraty_with_stripe}/_emulator/players/demo/player-5" in out
    assert f"--refund {session_id}" in out
    drain(redis)
    o = order(services, session_id)
    assert o["state"] == "FULFILLED" and o["player"] == "player-5" and o["environment"] == "sandbox", o
    assert wallet(kraty_with_stripe, "player-5") == {"gems": 200}

    assert stripe_demo.main([*common, "--refund", session_id]) == 0
    out = capsys.readouterr().out
    assert "charge.refunded" in out and "-> 200" in out and f"session: {session_id}" in out
    drain(redis)
    assert order(services, session_id)["state"] == "REVOKED"
    assert wallet(kraty_with_stripe, "player-5") == {"gems": 0}


def test_a_wrong_secret_is_refused_and_fails(bridge, kraty_with_stripe, capsys):
    url, _services = bridge
    assert stripe_demo.main(["--bridge", url, "--emulator", kraty_with_stripe, "--secret", "whsec_wrong"]) == 1
    assert "-> 401" in capsys.readouterr().out


def test_unreachable_or_unknown_things_are_reported_without_a_traceback(kraty_with_stripe, capsys):
    assert stripe_demo.main(["--bridge", "http://127.0.0.1:9", "--emulator", "http://127.0.0.1:9"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    assert stripe_demo.main(["--emulator", kraty_with_stripe, "--refund", "cs_test_nope"]) == 2
    assert "404" in capsys.readouterr().err


def test_events_are_signed_as_stripe_signs_them():
    import stripe
    body = b'{"id": "evt_1"}'
    header = stripe_demo.sign(body, SECRET)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, 300)
