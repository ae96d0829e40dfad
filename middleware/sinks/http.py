"""The ``http`` sink: a JSON POST signed per Standard Webhooks with the sink's own secret."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import HTTPError as Urllib3Error

from config.sinks import Sink

USER_AGENT = "kraty-bridge-sinks/1"
MAX_RETRY_AFTER = 7 * 86400.0
_local = threading.local()


@dataclass(frozen=True)
class SendResult:
    status: int | None              # the HTTP status; None when there was no answer (timeout, refused...)
    error: str | None = None        # what went wrong, short (for last_error)
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (delay-seconds or an HTTP date) in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - (now or datetime.now(UTC))).total_seconds(), 0.0), MAX_RETRY_AFTER)


def _session() -> requests.Session:
    """One session per thread (connection reuse; requests sessions are not shared between threads)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc from the environment
        session.headers["User-Agent"] = USER_AGENT
        _local.session = session
    return session


def signed_headers(sink: Sink, msg_id: str, body: str, sent_at: datetime | None = None) -> dict[str, str]:
    sent_at = sent_at or datetime.now(UTC)
    headers = dict(sink.headers)
    headers.update({
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(sink.secret).sign(msg_id, sent_at, body),
    })
    return headers


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
    """POST ``body``; only 2xx is success, redirects are not followed. Never raises for network trouble: it
    comes back as a result without a status. The shared transport of every sink type."""
    try:
        response = _session().post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                                   stream=True)
    except requests.Timeout:
        return SendResult(None, f"timed out after {timeout:g} s")
    except requests.RequestException as exc:
        return SendResult(None, f"{exc.__class__.__name__}: no answer")
    try:
        snippet = response.raw.read(200, decode_content=True) if not 200 <= response.status_code < 300 else b""
    except (requests.RequestException, Urllib3Error, OSError):  # the body is only for last_error
        snippet = b""
    finally:
        response.close()
    result_error = None
    if not 200 <= response.status_code < 300:
        text = snippet.decode("utf-8", "replace").strip().replace("\n", " ")
        result_error = f"HTTP {response.status_code}" + (f": {text}" if text else "")
    return SendResult(response.status_code, result_error, retry_after_seconds(response.headers.get("Retry-After")))


def send(sink: Sink, msg_id: str, body: str) -> SendResult:
    """POST ``body`` to an http sink, signed with its secret (``post`` says what comes back)."""
    return post(sink.url, body.encode("utf-8"), signed_headers(sink, msg_id, body), sink.timeout)
