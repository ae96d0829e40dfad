"""The body limit (issue 13 item 9): a body over KB_MAX_BODY_BYTES is 413 whether it has a Content-Length or
is chunked, and the 413 says Connection: close and closes — through the test client, and through a real
gunicorn started with the shipped config/gunicorn.conf.py, spoken to over raw sockets."""
from __future__ import annotations

import io
import os
import socket
import sys

import pytest

from config.settings import ROOT

from tests.support.orders_flow import poll
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.support.processes import Processes, free_port

LIMIT = 4096
PATH = "/webhooks/app-store"


def chunked(body: bytes, size: int = 1000):
    return b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


@pytest.fixture
def small(make_app):
    return make_app(max_body_bytes=LIMIT).test_client()


def post_chunked(client, body: bytes):
    return client.post(PATH, input_stream=io.BytesIO(body), content_type="application/json",
                       headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})


def test_the_test_client_sees_413_and_close_for_both_kinds_of_body(small):
    sized = small.post(PATH, data=b"x" * (LIMIT + 1), content_type="application/json")
    unsized = post_chunked(small, b'{"signedPayload": "' + b"x" * LIMIT + b'"}')
    for answer in (sized, unsized):
        assert answer.status_code == 413 and answer.get_json()["error"]["code"] == "payload_too_large"
        assert answer.headers["Connection"] == "close"
    whole = post_chunked(small, b'{"signedPayload": "not-a-jws"}')  # under the limit: read whole, as before
    assert whole.status_code == 400 and whole.get_json()["error"]["code"] == "malformed_jws"
    assert "Connection" not in whole.headers


# ---------------------------------------------------------------- a real gunicorn, raw sockets
@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = dict(os.environ, KB_DATABASE_URL=f"sqlite:///{tmp / 'ledger.db'}", KB_REDIS_URL="redis://127.0.0.1:1/0",
               KB_CATALOG=str(ROOT / "config/examples/catalog.toml"), KB_MAX_BODY_BYTES=str(LIMIT),
               PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"), PYTHONPATH=str(ROOT))
    procs = Processes()
    try:
        procs.start([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config/gunicorn.conf.py"), "app:create_app()",
                     "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "2", "--no-control-socket"],
                    env, tmp / "gunicorn.log")
        poll(lambda: _answers(port), timeout=60, what="gunicorn")
        yield port
    finally:
        procs.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1")
    except OSError:
        return False


def exchange(port: int, head: bytes, body: bytes) -> tuple[bytes, bytes, bool]:
    """Send a request, read one answer; (status line + headers, body, whether the server then closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head_in, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head_in.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += s.recv(65536)
        try:
            closed = s.recv(65536) == b""   # EOF: the server closed after the answer
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
    return head_in, rest, closed


def _head(extra: bytes) -> bytes:
    return b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + extra + b"\r\n"


@pytest.mark.processes
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_gunicorn_answers_413_with_connection_close_and_closes(gunicorn, framing):
    body = b'{"signedPayload": "' + b"x" * (2 * LIMIT) + b'"}'
    head = _head(b"Content-Length: %d\r\n" % len(body)) if framing == "content-length" else \
        _head(b"Transfer-Encoding: chunked\r\n")
    answer, payload, closed = exchange(gunicorn, head, body if framing == "content-length" else chunked(body))
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"\r\nConnection: close" in answer, answer
    assert b"payload_too_large" in payload and closed


@pytest.mark.processes
def test_gunicorn_keeps_alive_what_it_read_whole(gunicorn):
    body = b'{"signedPayload": "not-a-jws"}'
    with socket.create_connection(("127.0.0.1", gunicorn), timeout=10) as s:
        for _ in range(2):  # the same connection serves a second request
            s.sendall(_head(b"Content-Length: %d\r\n" % len(body)) + body)
            data = b""
            while b"malformed_jws" not in data:
                got = s.recv(65536)
                assert got, data
                data += got
            assert data.startswith(b"HTTP/1.1 400") and b"Connection: keep-alive" in data, data
