"""A local Segment-like receiver: ``/v1/batch`` (the write key as basic auth's username, an empty password)
and ``/regulations`` (a bearer token), real HTTP on loopback. It answers 400 to a batch over Segment's limits
(500 KB a request, 32 KB a message) or without a valid message list, like Segment does, and otherwise as told
(``SinkServer``'s ``answer`` / ``always``)."""
from __future__ import annotations

import base64
import json

from werkzeug.wrappers import Request

from tests.support.sink_receiver import SinkServer

BATCH_PATH, REGULATIONS_PATH = "/v1/batch", "/regulations"


class SegmentServer(SinkServer):
    def __init__(self, write_key: str, token: str):
        self.write_key, self.token = write_key, token
        self.refused = 0  # batches answered 400 for breaking Segment's limits
        super().__init__({})

    @property
    def batch_url(self) -> str:
        return self.url + BATCH_PATH

    @property
    def regulations_url(self) -> str:
        return self.url + REGULATIONS_PATH

    def verify(self, request: Request, body: bytes) -> bool:
        auth = request.headers.get("Authorization", "")
        if request.path == BATCH_PATH:
            expected = "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()
            return auth == expected and request.headers.get("Content-Type") == "application/json"
        if request.path == REGULATIONS_PATH:
            return auth == f"Bearer {self.token}"
        return False

    def refuse(self, request: Request, body: bytes) -> bool:
        if request.path != BATCH_PATH or _within_limits(body):
            return False
        self.refused += 1  # under the server's lock
        return True

    # ---- what it got
    def batches(self) -> list[list[dict]]:
        return [r.json["batch"] for r in self.got(BATCH_PATH) if r.verified]

    def calls(self) -> list[dict]:
        return [message for batch in self.batches() for message in batch]

    def regulations(self) -> list[dict]:
        return [r.json for r in self.got(REGULATIONS_PATH) if r.verified]

    @staticmethod
    def _player(body: bytes) -> str | None:  # no failing players here: answers are scripted per request
        return None


def _within_limits(body: bytes) -> bool:
    try:
        batch = json.loads(body)["batch"]
    except (ValueError, KeyError, TypeError):
        return False
    return (len(body) <= 500_000 and isinstance(batch, list) and bool(batch)
            and all(len(json.dumps(m, separators=(",", ":")).encode()) <= 32_000 for m in batch))
