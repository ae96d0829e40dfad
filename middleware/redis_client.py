"""Open Redis from ``KB_REDIS_URL``: one Redis, or the master a Redis Sentinel deployment names.

Every process that opens Redis comes here (the services container, the metrics listener, the launcher).
With Sentinel, redis-py's ``Sentinel.master_for`` asks the Sentinels for the master on connect and again
after a failover (a connection error, or a write refused by a demoted master: ``READONLY``).
``refuse_cluster``: the worker's start-up check that the server is not a Redis Cluster node (RQ cannot work
on one; a ``redis+cluster://`` URL is already refused by the settings).
"""
from __future__ import annotations

from redis import Redis
from redis.sentinel import Sentinel

from config.redis_url import CLUSTER_NOT_SUPPORTED, SENTINEL_SCHEME, parse_sentinel_url


class RedisClusterNotSupported(RuntimeError):
    """The Redis named is a Redis Cluster node."""


def connect(url: str, sentinel_password: str | None = None, **options) -> Redis:
    """A Redis client for ``url`` (``options``: redis-py's, e.g. ``socket_timeout``)."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    if sentinel_password:
        sentinel_options["password"] = sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options, db=target.db,
                        username=target.username, password=target.password, **options)
    return sentinel.master_for(target.service_name)


def refuse_cluster(redis: Redis) -> None:
    """Raise RedisClusterNotSupported when ``redis`` is a Redis Cluster node (the worker checks at start)."""
    if redis.info("cluster").get("cluster_enabled"):
        raise RedisClusterNotSupported(CLUSTER_NOT_SUPPORTED)
