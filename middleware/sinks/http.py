"""The ``http`` sink: a JSON POST signed per Standard Webhooks with the sink's own secret."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import urllib3
from opentelemetry.trace import SpanKind
from requests.certs import where as ca_bundle
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import LocationValueError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from config.sinks import Sink
from middleware.metrics import tracing

USER_AGENT = "kraty-bridge-sinks/1"
MAX_RETRY_AFTER = 7 * 86400.0
BODY_CAP = 64 * 1024    # an answer's body read to its end (connection reused) up to this size
BODY_CHUNK = 16 * 1024
SNIPPET = 200           # bytes of a failed answer's body kept in last_error
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "*/*", **urllib3.make_headers(accept_encoding=True)}
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


def _pool() -> urllib3.PoolManager:
    """One pool manager per thread: keep-alive connections per sink host, reused from one request to the next.
    urllib3 itself (what requests sends through), without requests' per-request work: no proxies or .netrc
    from the environment, certifi's CA bundle (as requests uses), gzip/deflate accepted."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = urllib3.PoolManager(num_pools=32, maxsize=4, cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle())
        _local.pool = pool
    return pool


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


def _read_body(response: urllib3.BaseHTTPResponse) -> tuple[bytes, bool]:
    """The answer's body, read to its end when it is at most ``BODY_CAP`` bytes (so the connection can go back
    to the pool for the next request), and whether it was: a longer body, or one that could not be read, is
    left after what was read (its start, for last_error)."""
    data = bytearray()
    try:
        for chunk in response.stream(BODY_CHUNK, decode_content=True):
            data += chunk
            if len(data) > BODY_CAP:
                return bytes(data), False
    except (Urllib3Error, OSError):  # the body is only for last_error
        return bytes(data), False
    return bytes(data), True


def _no_answer(exc: Exception) -> str:
    """What went wrong when there was no answer, named as requests names it."""
    name = ("SSLError" if isinstance(exc, SSLError) else "InvalidURL" if isinstance(exc, LocationValueError)
            else "ConnectionError")
    return f"{name}: no answer"


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
    """POST ``body``; only 2xx is success, redirects are not followed. Never raises for network trouble: it
    comes back as a result without a status. The shared transport of every sink type, traced as one CLIENT
    span when tracing is on (no trace header goes to the sink).

    The answer's body (up to ``BODY_CAP`` bytes; its start goes in the error) is read to its end, so the
    connection is kept alive and the next request to the same host reuses it; a longer body closes it."""
    if not tracing.enabled():
        return _post(url, body, headers, timeout)
    with tracing.span("sink POST", SpanKind.CLIENT, {"http.request.method": "POST"}) as span:
        result = _post(url, body, headers, timeout)
        span.set_attribute("http.response.status_code", result.status or 0)
        return result


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
    try:
        response = _pool().request("POST", url, body=body, headers={**DEFAULT_HEADERS, **headers}, retries=False,
                                   redirect=False, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                                   preload_content=False)
    except Urllib3Timeout:
        return SendResult(None, f"timed out after {timeout:g} s")
    except (Urllib3Error, OSError, ValueError) as exc:
        return SendResult(None, _no_answer(exc))
    data, complete = _read_body(response)
    if not complete:
        response.close()            # not read to its end: the connection cannot carry another request
    response.release_conn()         # back to the pool (closed: the pool opens a new one when needed)
    status = response.status
    result_error = None
    if not 200 <= status < 300:
        text = data[:SNIPPET].decode("utf-8", "replace").strip().replace("\n", " ")
        result_error = f"HTTP {status}" + (f": {text}" if text else "")
    return SendResult(status, result_error, retry_after_seconds(response.headers.get("Retry-After")))


def send(sink: Sink, msg_id: str, body: str) -> SendResult:
    """POST ``body`` to an http sink, signed with its secret (``post`` says what comes back)."""
    return post(sink.url, body.encode("utf-8"), signed_headers(sink, msg_id, body), sink.timeout)
