"""What ``make run`` (config/embedded.py) prints once the stack answers: the URLs and how to try it."""
from __future__ import annotations

import os
import sys

from config.settings import ROOT

READY_LINE = "kraty-bridge ready"


def python_command() -> str:
    """This interpreter, as a path to type in the repository (``.venv/bin/python`` under ``make run``)."""
    path = os.path.abspath(sys.executable)
    return os.path.relpath(path, ROOT) if path.startswith(f"{ROOT}{os.sep}") else path


def banner(urls: dict) -> str:
    """``urls``: ``app``, ``emulator`` and ``stripe`` (the KB_STRIPE_API_BASE the processes got); ``sink``: the
    emulator's sink endpoint, when the launcher wrote the sinks file."""
    app_url, emulator_url, stripe_url = urls["app"], urls["emulator"], urls["stripe"]
    fake = stripe_url == f"{emulator_url}/stripe"
    text = f"""
{READY_LINE}: {app_url}
  app        {app_url}
  readiness  {app_url}/readyz
  emulator   {emulator_url}   (Kraty stand-in; admin API under /_emulator)
  stripe     {stripe_url}   ({"Stripe API fake; admin API under /stripe/_stripe" if fake else "KB_STRIPE_API_BASE"})

Fulfil a sample order through the AccelByte-compatible API:
  curl -X PUT {app_url}/platform/v2/admin/namespaces/demo/users/player-1/fulfillments/order-1001 \\
    -H 'Authorization: Bearer demo-storefront-token' -H 'Content-Type: application/json' \\
    -d '{{"items":[{{"itemSku":"starter_pack","quantity":1}}]}}'
See what the player got:
  curl {emulator_url}/_emulator/players/demo/player-1
"""
    if urls.get("sink"):
        text += f"""
What the CRM got (Kraty's webhooks -> the bridge -> sink {urls["sink"].rsplit("/", 1)[-1]}, the emulator's stand-in):
  curl {urls["sink"]}
"""
    if fake:
        text += f"""
Try a Stripe purchase (a signed checkout.session.completed to {app_url}/webhooks/stripe/demo):
  {python_command()} -m emulator.stripe_demo --bridge {app_url} --emulator {emulator_url}
"""
    flask = os.path.join(os.path.dirname(python_command()), "flask")
    text += f"""
Ops console (sign in with an API key):
  {app_url}/console/      make a key: {flask} --app app keys create alice admin
API docs: {app_url}/docs
"""
    return text + "\nCtrl-C stops everything.\n"
