"""The shipped nginx config (deploy/nginx/kraty-bridge.conf) with Debian's nginx in front of gunicorn (the
shipped gunicorn config, gthread 2 workers x 4 threads): slow clients (one header line every 2 s) stall bare
gunicorn — 16 of them are enough — while 200 of them against nginx (half trickling a request body one byte every
2 s, which only request buffering keeps from gunicorn) leave /healthz answering a fast client.
Bounded: the slow clients stop with the test, nginx and gunicorn are stopped by it (about 15 s in all)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import threading

import pytest
import requests

from config.settings import ROOT

from tests.support.orders_flow import AUTH, fulfil_path, poll
from tests.support.processes import Processes, free_port, up

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = ROOT / "deploy/nginx/kraty-bridge.conf"
LINE_EVERY = 2.0       # seconds between a slow client's header lines
FAST_TIMEOUT = 4.0     # what "answers" means for the fast client
# A fulfil PUT (the app reads its body) whose 1000-byte body comes one byte at a time
SLOW_BODY_HEAD = (f"PUT {fulfil_path('p-slow', 'slow-1')} HTTP/1.1\r\nHost: slow\r\n"
                  f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
                  "Content-Length: 1000\r\n\r\n").encode()

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(not os.path.exists(NGINX),
                                 reason="nginx is missing: apt-get install nginx (Debian's package) to run this test")]


class SlowClients:
    """``count`` connections sending a request head one line at a time, every LINE_EVERY seconds, until stopped;
    with ``bodies``, that many of them instead send a whole head and then a body one byte at a time."""

    def __init__(self, port: int, count: int, bodies: int = 0):
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.stopped = threading.Event()
        self.bodies = bodies
        for n, sock in enumerate(self.sockets):
            sock.sendall(SLOW_BODY_HEAD if n < bodies else b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        n = 0
        while not self.stopped.wait(LINE_EVERY):
            n += 1
            for index, sock in enumerate(self.sockets):
                try:
                    sock.sendall(b"x" if index < self.bodies else b"X-Slow: %d\r\n" % n)
                except OSError:          # nginx dropped it (client_header_timeout): as it should
                    pass

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def fast_healthz(url: str) -> int | None:
    """The status of GET /healthz, or None when no answer came within FAST_TIMEOUT."""
    try:
        return requests.get(f"{url}/healthz", timeout=FAST_TIMEOUT).status_code
    except requests.Timeout:
        return None


def nginx_conf(tmp_path, listen: int, upstream: int) -> str:
    """The shipped server block, its listen port and upstream address ours; a minimal nginx.conf around it."""
    shipped = CONF.read_text()
    ours, changes = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen};", shipped)
    ours, more = re.subn(r"server web:8000;", f"server 127.0.0.1:{upstream};", ours)
    assert changes == more == 1, "deploy/nginx/kraty-bridge.conf: expected `listen 8080;` and `server web:8000;`"
    (tmp_path / "kraty-bridge.conf").write_text(ours)
    user = "user root;" if os.geteuid() == 0 else ""   # workers may then read the test's private tmp dir
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""{user}
worker_processes 1;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/kraty-bridge.conf;
}}
""")
    return str(conf)


@pytest.fixture
def gunicorn(tmp_path, database_url, redis_url):
    port = free_port()
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, PYTHONPATH=str(ROOT),
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), KB_LOG_LEVEL="WARNING")
    procs = Processes()
    try:
        procs.start([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config/gunicorn.conf.py"), "app:create_app()",
                     "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "4"], env, tmp_path / "gunicorn.log")
        url = f"http://127.0.0.1:{port}"
        poll(lambda: up(f"{url}/healthz"), timeout=60, what="gunicorn")
        yield port, procs
    finally:
        procs.stop()


def test_slow_clients_stall_bare_gunicorn_but_not_behind_nginx(tmp_path, gunicorn):
    port, procs = gunicorn
    bare = f"http://127.0.0.1:{port}"

    slow = SlowClients(port, 16)
    try:
        stalled = [fast_healthz(bare) for _ in range(2)]
    finally:
        slow.stop()
    assert None in stalled, f"16 slow clients did not stall bare gunicorn (answers: {stalled})"
    poll(lambda: up(f"{bare}/healthz"), timeout=30, what="gunicorn to answer again once they left")

    listen = free_port()
    procs.start([NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", nginx_conf(tmp_path, listen, port),
                 "-g", "daemon off;"], os.environ.copy(), tmp_path / "nginx.log")
    proxied = f"http://127.0.0.1:{listen}"
    poll(lambda: up(f"{proxied}/healthz"), timeout=30, what="nginx")
    slow = SlowClients(listen, 200, bodies=100)   # half of them trickle a body: nginx must buffer it
    try:
        answers = [fast_healthz(proxied) for _ in range(3)]
    finally:
        slow.stop()
    assert answers == [200, 200, 200], (answers, (tmp_path / "error.log").read_text()[-2000:])
