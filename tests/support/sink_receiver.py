"""A local receiving server for sink deliveries: real HTTP on loopback, told how to answer, verifying each
request's Standard Webhooks signature and keeping (and counting) what it received; the ``server`` fixture (one
receiver for the tests' sinks: ``/crm``, ``/analytics`` and ``/all``) and ``all_sink_overrides`` (settings with one
``all`` sink and a demo game taking Kraty's webhooks)."""
from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.support.catalogs import with_kraty_secrets
from tests.support.kraty_webhooks import SECRET as KRATY_SECRET
from tests.support.wsgi_server import SHUTDOWN_POLL

CRM_SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
ANALYTICS_SECRET = "whsec_" + base64.b64encode(b"a" * 32).decode()
HANG = "hang"  # an answer: hold the request until the server stops (the sender times out)


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    verified: bool
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class SinkServer:
    """``secrets``: URL path -> the whsec_ secret its sink signs with. Answers 200 unless told otherwise:
    ``answer(...)`` queues answers for the next requests, ``always(...)`` sets the default,
    ``fail_player(id)`` answers 500 to every event of that player. An answer is a status, a
    ``(status, headers)`` pair or ``HANG``. A bad signature answers 401."""

    def __init__(self, secrets: dict[str, str]):
        self.secrets = secrets
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.script: deque = deque()
        self.default = 200
        self.failing_players: set[str] = set()
        self.stopping = threading.Event()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)
        self.thread.start()

    # ---- telling it what to do
    def answer(self, *answers) -> None:
        with self.lock:
            self.script.extend(answers)

    def always(self, answer) -> None:
        with self.lock:
            self.default = answer

    def fail_player(self, player_id: str) -> None:
        with self.lock:
            self.failing_players.add(player_id)

    # ---- what it got
    def count(self, path: str | None = None) -> int:
        return len(self.got(path))

    def got(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()

    # ---- the WSGI app
    def wsgi(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        verified = self.verify(request, body)
        with self.lock:
            self.received.append(Received(request.path, dict(request.headers), body, verified, time.monotonic()))
            if not verified:
                answer = 401
            elif self.refuse(request, body):
                answer = 400
            elif self._player(body) in self.failing_players:
                answer = 500
            elif self.script:
                answer = self.script.popleft()
            else:
                answer = self.default
        if answer == HANG:
            self.stopping.wait(30)
            answer = 503
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return Response(json.dumps({"status": status}), status=status, headers=headers,
                        content_type="application/json")(environ, start_response)

    def verify(self, request: Request, body: bytes) -> bool:
        """Whether the request is signed with its path's secret (a subclass checks another kind of auth)."""
        secret = self.secrets.get(request.path)
        if secret is None:
            return False
        try:
            Webhook(secret).verify(body, dict(request.headers))
            return True
        except (WebhookVerificationError, ValueError):  # a malformed header can raise a plain ValueError
            return False

    def refuse(self, request: Request, body: bytes) -> bool:
        """Whether a verified request is malformed (answered 400 whatever the script says); never, here."""
        return False

    @staticmethod
    def _player(body: bytes) -> str | None:
        try:
            return json.loads(body).get("playerId")
        except (ValueError, AttributeError):
            return None


def with_sinks(overrides: dict, tmp_path, sinks_toml: str, catalog_path: str | None = None,
               kraty_secret: str | None = None) -> dict:
    """Settings overrides with this sinks file, and (given a secret) a catalog whose demo game takes Kraty's
    webhooks signed with it."""
    sinks = tmp_path / "sinks.toml"
    sinks.write_text(sinks_toml)
    overrides = {**overrides, "sinks_path": str(sinks)}
    if kraty_secret is not None:
        overrides["catalog_path"] = with_kraty_secrets(catalog_path, tmp_path / "catalog-kraty-webhooks.toml",
                                                       kraty_secret)
    return overrides


@pytest.fixture
def server():
    """A sink receiver for the tests' sinks (``/crm`` and ``/all`` sign with ``CRM_SECRET``, ``/analytics`` with
    ``ANALYTICS_SECRET``), stopped after the test."""
    served = SinkServer({"/crm": CRM_SECRET, "/analytics": ANALYTICS_SECRET, "/all": CRM_SECRET})
    yield served
    served.stop()


def all_sink_overrides(overrides: dict, server: SinkServer, tmp_path, catalog_path: str,
                       environments: bool = True) -> dict:
    """Settings with one sink, ``all``, at ``server``'s ``/all`` (production and sandbox events unless
    ``environments`` is false), and a demo game taking Kraty's webhooks signed with ``KRATY_SECRET``."""
    also = 'environments = ["production", "sandbox"]\n' if environments else ""
    return with_sinks(overrides, tmp_path, f'[sinks.all]\nurl = "{server.url}/all"\nsecret = "{CRM_SECRET}"\n'
                      f'{also}timeout = 2\n', catalog_path, KRATY_SECRET)
