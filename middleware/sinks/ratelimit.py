"""Per-sink rate limit shared by every worker on every machine: a sliding-window log in Redis.

One Lua script per request: drop the starts older than the window, and either record this start (allowed)
or answer how long until the oldest one leaves the window. Times come from the Redis server's clock, so
workers on machines with different clocks agree. At most ``rate_limit`` requests start in any
``rate_window`` seconds.
"""
from __future__ import annotations

import hashlib
import uuid

from redis import Redis
from redis.exceptions import NoScriptError

from config.sinks import Sink

_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, math.floor(tonumber(oldest[2]) + window - now + 1))
"""
_SHA = hashlib.sha1(_SCRIPT.encode("utf-8")).hexdigest()  # what EVALSHA names it by (computed once)


def key(sink: Sink) -> str:
    return f"kb:sink-rate:{sink.name}"


def acquire(redis: Redis, sink: Sink) -> float:
    """0 when this request may start now (it is counted); otherwise the seconds to wait (nothing counted)."""
    if not sink.rate_limit:
        return 0.0
    window_us = int(sink.rate_window * 1_000_000)
    args = (key(sink), sink.rate_limit, window_us, uuid.uuid4().hex)
    try:
        wait_us = redis.evalsha(_SHA, 1, *args)
    except NoScriptError:  # a new or restarted Redis server: load the script once, as redis-py's Script does
        redis.script_load(_SCRIPT)
        wait_us = redis.evalsha(_SHA, 1, *args)
    return int(wait_us) / 1_000_000
