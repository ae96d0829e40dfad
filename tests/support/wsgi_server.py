"""What the tests of the store fakes (stripe_fake.py, google_fake.py) share: serving a WSGI app on
loopback, the admin client's common calls, and running the kraty emulator with a fake mounted,
in this process or as ``python -m emulator``."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from config.settings import ROOT

from tests.support.orders_flow import emulator_config

# How often a test's server loop looks for shutdown(): socketserver's default (0.5 s) is what each stop() waits, at
# worst, for the loop to notice.
SHUTDOWN_POLL = 0.05


class QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API

    def log_request(self, code="-", size="-"):
        pass


@contextmanager
def serve(wsgi_app, request_handler=QuietHandler) -> Iterator[str]:
    """``wsgi_app`` served in a thread on 127.0.0.1 (a free port): its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True, request_handler=request_handler)
    threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class AdminClient:
    """Admin client of one served fake: its admin API lives at ``{url}{ADMIN}/...``."""

    ADMIN = ""

    def __init__(self, url: str, session: requests.Session | None = None):
        self.url = url
        self.http = session or requests.Session()
        self.http.trust_env = False  # never a proxy for loopback

    def _call(self, method: str, path: str, json=None) -> dict:
        where = f"{self.ADMIN}{path}"
        response = self.http.request(method, f"{self.url}{where}", json=json, timeout=10)
        if response.status_code != 200:
            raise AssertionError(f"{method} {where}: {response.status_code} {response.text}")
        return response.json()

    def faults(self, *rules: dict) -> list[dict]:
        return self._call("PUT", "/faults", {"rules": list(rules)})["rules"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self) -> list[dict]:
        """The calls the fake logged so far (never admin calls): ``{method, path, query,
        status}``."""
        return self._call("GET", "/requests")["requests"]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def fresh(self):
        """For a fixture: this client, its fake reset; its HTTP session closed afterwards."""
        self.reset()
        yield self
        self.http.close()


@contextmanager
def emulator_with(mount: Callable[[Flask], Flask]) -> Iterator[tuple[str, Flask]]:
    """The kraty emulator with a fake mounted by ``mount`` (e.g. ``mount_stripe``), served on
    loopback: its base URL and the fake's app."""
    from emulator.app import create_app as create_emulator
    kraty = create_emulator(emulator_config())
    fake_app = mount(kraty)
    try:
        with serve(kraty, WSGIRequestHandler) as url:
            yield url, fake_app
    finally:
        kraty.extensions["kraty_emulator"].dispatcher.close()


@contextmanager
def emulator_process() -> Iterator[str]:
    """``python -m emulator`` on a free loopback port: its base URL; it must stop cleanly on
    SIGTERM after the block."""
    with subprocess.Popen(
            [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            match = re.fullmatch(r"kraty emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
            yield match.group(1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
