"""``KB_REDIS_URL``: what it names, checked at start. Pure: no connection is opened here.

``redis://``, ``rediss://`` and ``unix://`` are redis-py's own URLs. ``redis+sentinel://`` names a Redis
Sentinel deployment::

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]

the Sentinels' addresses (26379 when a port is left out), the master's service name (as in the Sentinels'
``sentinel monitor`` line), the database number (default 0); the user and password are the master's
(the Sentinels' own password is ``KB_REDIS_SENTINEL_PASSWORD``). Redis Cluster is refused with a clear
message: RQ keeps a job's hash, its queue list and its registries under keys of different hash slots and
runs multi-key commands and transactions across them, which Redis Cluster does not allow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
CLUSTER_NOT_SUPPORTED = ("Redis Cluster is not supported (RQ runs multi-key commands and transactions across keys "
                         "of different hash slots); use one Redis, a replicated primary, or Redis Sentinel "
                         "(redis+sentinel://): docs/pgbouncer-sentinel.md")


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def _address(part: str) -> tuple[str, int]:
    if part.startswith("["):  # [::1]:26379
        host, _, rest = part[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = part.partition(":")
    if not host:
        raise ValueError(f"a Sentinel address without a host in {part!r}")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"a Sentinel port must be a number from 1 to 65535, got {port!r}")
    return host, int(port) if port else SENTINEL_PORT


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://...`` -> its Sentinels, service name, db and the master's credentials."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    if not hosts:
        raise ValueError("expected redis+sentinel://host:port[,host:port...]/service_name[/db]: no Sentinel address")
    sentinels = tuple(_address(part) for part in hosts.split(","))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("expected redis+sentinel://host:port[,host:port...]/service_name[/db]: name the master's "
                         "service after the addresses")
    db = 0
    if len(path) == 2:
        if not (path[1].isascii() and path[1].isdigit()):
            raise ValueError(f"the database after the service name must be a number, got {path[1]!r}")
        db = int(path[1])
    return SentinelTarget(sentinels, path[0], db, unquote(username) or None, unquote(password) or None)


def check_redis_url(url: str) -> None:
    """ValueError with a one-line reason when the bridge cannot use ``url``."""
    scheme = urlsplit(url).scheme.lower()
    if "cluster" in scheme:
        raise ValueError(CLUSTER_NOT_SUPPORTED)
    if scheme not in SCHEMES:
        raise ValueError(f"expected redis://, rediss://, unix:// or {SENTINEL_SCHEME}://, got {url.split(':')[0]!r}")
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(url)
