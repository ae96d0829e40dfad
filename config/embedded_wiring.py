"""``make run``'s Kraty -> bridge -> CRM half: the emulator's webhooks go to the bridge, signed as Kraty signs
them, and the bridge's sink deliveries go to a sink endpoint the emulator serves (emulator/sink.py).

When the launcher chooses the catalog (``KB_CATALOG`` unset) it writes ``<instance>/catalog.toml``: the example
catalog with the emulator's port and game ``demo``'s ``kraty_webhook_secrets``; the emulator is then started
with ``<instance>/emulator.toml``: the example emulator config sending game ``demo``'s webhooks to
``<bridge>/webhooks/kraty`` with that secret. When it chooses the sinks (``KB_SINKS`` unset) it writes
``<instance>/sinks.toml``: one sink, ``local_crm``, posting every event (production and sandbox) to
``<emulator>/_emulator/sinks/local_crm``, whose secret the emulator's config holds too. The secrets are made
once and kept in ``<instance>/kraty_webhook_secret`` and ``<instance>/sink_secret`` (mode 0600).
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from config.settings import ROOT

HOST = "127.0.0.1"
EXAMPLE_EMULATOR_URL = "http://127.0.0.1:8100"
SINK = "local_crm"
KRATY_SECRET_FILE = "kraty_webhook_secret"
SINK_SECRET_FILE = "sink_secret"


def instance_whsec(instance: Path, name: str) -> str:
    """A Standard Webhooks secret kept in ``<instance>/<name>``: read, or made (0600) on the first run."""
    path = instance / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if secret.startswith("whsec_") and len(secret) > 30:
            return secret
        path.unlink()
        return instance_whsec(instance, name)
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def catalog(instance: Path, emulator_port: int, kraty_secret: str) -> str:
    """The example catalog for this emulator port, game demo taking Kraty's webhooks signed with the secret."""
    text = (ROOT / "config" / "examples" / "catalog.toml").read_text()
    text = text.replace(EXAMPLE_EMULATOR_URL, f"http://{HOST}:{emulator_port}")
    marker = 'negative_balance_policy = "fail"'
    if marker not in text.split("[games.demo.", 1)[0]:
        raise ValueError("config/examples/catalog.toml: game demo has no negative_balance_policy line to add to")
    text = text.replace(marker, f'{marker}\nkraty_webhook_secrets = ["{kraty_secret}"]   # make run', 1)
    path = instance / "catalog.toml"
    path.write_text(text)
    return str(path)


def sinks(instance: Path, emulator_port: int, sink_secret: str) -> str:
    path = instance / "sinks.toml"
    path.write_text(f"# make run: every event to the emulator's sink endpoint (see {SINK} in the console's Sinks page)\n"
                    f"[sinks.{SINK}]\nurl = \"http://{HOST}:{emulator_port}/_emulator/sinks/{SINK}\"\n"
                    f"secret = \"{sink_secret}\"\nenvironments = [\"production\", \"sandbox\"]\n"
                    "schedule = [0, 2, 10, 60]\ntimeout = 5\n")
    path.chmod(0o600)
    return str(path)


def emulator_config(instance: Path, port: int, kraty_secret: str | None, sink_secret: str | None) -> str:
    """The example emulator config, game demo's webhooks to the bridge (when the catalog takes them) and the
    sink endpoint (when the sinks file names it)."""
    text = (ROOT / "emulator" / "example.toml").read_text()
    if kraty_secret:
        text = text.replace('# webhook_url = "http://127.0.0.1:8000/webhooks/kraty"   # optional',
                            f'webhook_url = "http://{HOST}:{port}/webhooks/kraty"', 1)
        text = text.replace('# webhook_secret = "whsec_..."                             # optional',
                            f'webhook_secret = "{kraty_secret}"', 1)
        if f"{HOST}:{port}/webhooks/kraty" not in text or kraty_secret not in text:
            raise ValueError("emulator/example.toml: no webhook_url / webhook_secret lines for game demo")
    if sink_secret:
        text += f'\n[sinks]\n{SINK} = "{sink_secret}"\n'
    path = instance / "emulator.toml"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def wire(environ: dict, env: dict, instance: Path, port: int, emulator_port: int) -> str:
    """Set KB_CATALOG and KB_SINKS in ``env`` where the launcher's ``environ`` leaves them to it; the emulator's
    config file to start it with."""
    kraty_secret = sink_secret = None
    if not environ.get("KB_CATALOG"):
        kraty_secret = instance_whsec(instance, KRATY_SECRET_FILE)
        env["KB_CATALOG"] = catalog(instance, emulator_port, kraty_secret)
    if not environ.get("KB_SINKS"):
        sink_secret = instance_whsec(instance, SINK_SECRET_FILE)
        env["KB_SINKS"] = sinks(instance, emulator_port, sink_secret)
    return emulator_config(instance, port, kraty_secret, sink_secret)
