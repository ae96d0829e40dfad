"""Signed webhook delivery (Standard Webhooks) from background threads.

``emit`` never blocks the API path: events go into a bounded queue (a full queue drops the
event and records it in the delivery log) and worker threads POST them with a few retries on
connection errors and non-2xx answers.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from datetime import datetime, timezone

import requests
from standardwebhooks import Webhook

from emulator.model import new_id, now_iso

_STOP = object()


class Dispatcher:
    def __init__(self, studio_id: str, default_url: str | None = None,
                 default_secret: str | None = None, retries: int = 3, backoff: float = 0.2,
                 queue_size: int = 10000, workers: int = 2, timeout: float = 5.0,
                 log_size: int = 10000):
        self.studio_id = studio_id
        self.default = (default_url, default_secret)
        self.per_game: dict[str, tuple[str | None, str | None]] = {}
        self.retries, self.backoff, self.timeout, self.workers = retries, backoff, timeout, workers
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.log: deque = deque(maxlen=log_size)
        self.lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._signers: dict[str, Webhook] = {}

    # ---- configuration -----------------------------------------------------------------------
    def set_target(self, game_id: str | None, url: str | None, secret: str | None) -> None:
        if game_id is None:
            self.default = (url, secret)
        else:
            self.per_game[game_id] = (url, secret)

    def target(self, game_id: str) -> tuple[str | None, str | None]:
        url, secret = self.per_game.get(game_id, (None, None))
        if url and secret:
            return url, secret
        return self.default

    def describe(self) -> dict:
        def show(t):
            return {"url": t[0], "secretSet": bool(t[1])}
        return {"default": show(self.default),
                "games": {g: show(t) for g, t in self.per_game.items()}}

    # ---- emitting ----------------------------------------------------------------------------
    def emit(self, game_id: str, events: list) -> None:
        if not events:
            return
        url, secret = self.target(game_id)
        if not url or not secret:
            return
        for event_type, data in events:
            event = {"id": new_id("evt"), "type": event_type, "createdAt": now_iso(),
                     "studioId": self.studio_id, "gameId": game_id, "data": data}
            record = {"id": event["id"], "type": event_type, "gameId": game_id, "url": url,
                      "status": "queued", "attempts": [], "event": event}
            with self.lock:
                self.log.append(record)
            try:
                self.queue.put_nowait((record, url, secret))
            except queue.Full:
                with self.lock:
                    record["status"] = "dropped_queue_full"
                continue
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._threads:
            return
        with self.lock:
            if self._threads:
                return
            for i in range(self.workers):
                t = threading.Thread(target=self._run, name=f"kraty-webhooks-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    # ---- delivery ----------------------------------------------------------------------------
    def _signer(self, secret: str) -> Webhook:
        signer = self._signers.get(secret)
        if signer is None:
            signer = self._signers[secret] = Webhook(secret)
        return signer

    def _run(self) -> None:
        session = requests.Session()
        while True:
            item = self.queue.get()
            if item is _STOP:
                self.queue.task_done()
                return
            try:
                self._deliver(session, *item)
            finally:
                self.queue.task_done()

    def _deliver(self, session: requests.Session, record: dict, url: str, secret: str) -> None:
        payload = json.dumps(record["event"], separators=(",", ":"))
        signer = self._signer(secret)
        for attempt in range(self.retries + 1):
            stamp = datetime.now(timezone.utc)
            headers = {"content-type": "application/json", "webhook-id": record["id"],
                       "webhook-timestamp": str(int(stamp.timestamp())),
                       "webhook-signature": signer.sign(record["id"], stamp, payload)}
            try:
                resp = session.post(url, data=payload.encode(), headers=headers,
                                    timeout=self.timeout)
                result = {"status": resp.status_code, "at": now_iso()}
                ok = 200 <= resp.status_code < 300
            except requests.RequestException as exc:
                result = {"status": None, "error": type(exc).__name__, "at": now_iso()}
                ok = False
            with self.lock:
                record["attempts"].append(result)
                record["status"] = "delivered" if ok else (
                    "failed" if attempt == self.retries else "retrying")
            if ok:
                return
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt))

    # ---- admin -------------------------------------------------------------------------------
    def deliveries(self, filters: dict) -> list[dict]:
        wanted = [(k, v) for k, v in filters.items() if v is not None]
        with self.lock:
            return [{**r, "attempts": list(r["attempts"])} for r in self.log
                    if all(r.get(k) == v for k, v in wanted)]

    def pending(self) -> int:
        return self.queue.unfinished_tasks

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    def close(self, timeout: float = 2.0) -> None:
        for _ in self._threads:
            try:
                self.queue.put(_STOP, timeout=timeout)
            except queue.Full:
                break
        for t in self._threads:
            t.join(timeout)
        self._threads = []
