"""A fast local sink for ``bench/deliveries.py``, in its own process:

    python -m bench.sink_receiver --secret whsec_... [--port 0]

An asyncio HTTP/1.1 server (keep-alive, one event loop, no framework) that verifies each POST's Standard
Webhooks signature with the ``standardwebhooks`` library (the secret's ``Webhook`` built once), answers 200
(401 when the signature does not verify) and counts what it got, per ``webhook-id``. It prints
``listening on <port>`` once it accepts connections.

    GET  /_stats   {"received", "verified", "rejected", "distinct", "duplicates", "first_at", "last_at"}
    GET  /_ids     {"ids": {webhook-id: times received}} (verified requests)
    POST /_reset   forget everything
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

OK = b'{"ok":true}'
REJECTED = b'{"error":"invalid signature"}'
MAX_BODY = 1 << 20


class Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.received = self.verified = self.rejected = 0
        self.ids: dict[str, int] = {}
        self.first_at: float | None = None
        self.last_at: float | None = None

    def stats(self) -> dict:
        return {"received": self.received, "verified": self.verified, "rejected": self.rejected,
                "distinct": len(self.ids), "duplicates": self.verified - len(self.ids),
                "first_at": self.first_at, "last_at": self.last_at}


def _response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Too Large"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


class Receiver:
    def __init__(self, secret: str):
        self.webhook = Webhook(secret)
        self.counts = Counts()

    def post(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        c = self.counts
        now = time.time()
        c.received += 1
        c.first_at = c.first_at or now
        c.last_at = now
        try:
            self.webhook.verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed header
            c.rejected += 1
            return 401, REJECTED
        c.verified += 1
        msg_id = headers["webhook-id"]
        c.ids[msg_id] = c.ids.get(msg_id, 0) + 1
        return 200, OK

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if method == "GET" and path == "/_stats":
            return 200, json.dumps(self.counts.stats()).encode()
        if method == "GET" and path == "/_ids":
            return 200, json.dumps({"ids": self.counts.ids}).encode()
        if method == "POST" and path == "/_reset":
            self.counts.reset()
            return 200, OK
        if method == "POST":
            return self.post(headers, body)
        return 404, b'{"error":"not found"}'

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length > MAX_BODY:
                    writer.write(_response(413, b"{}"))
                    await writer.drain()
                    return
                body = await reader.readexactly(length) if length else b""
                status, answer = self.route(method, path, headers, body)
                writer.write(_response(status, answer))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def _main(secret: str, port: int) -> None:
    receiver = Receiver(secret)
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", port, backlog=1024)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink_receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True, help="the sink's whsec_ secret")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.secret, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
