"""The separate listener on ``KB_METRICS_BIND``: the metrics without a key, from a process that is not the
app (gunicorn's master through ``config/gunicorn.conf.py``, or ``python -m middleware.metrics``)."""
from __future__ import annotations

from middleware.metrics.collectors import LedgerCollector, QueueCollector
from middleware.metrics.multiproc import multiproc_dir


class Scrape:
    """What one scrape reports: the recorded metrics (this process's, or every process's files under
    ``PROMETHEUS_MULTIPROC_DIR``) and the scrape-time gauges. Anything with ``collect()`` is a registry to
    ``generate_latest``."""

    def __init__(self, engine, redis, sink_names=()):
        from prometheus_client import REGISTRY
        from prometheus_client.multiprocess import MultiProcessCollector
        path = multiproc_dir()
        # not registered anywhere: it reads the files at each collect()
        self.recorded = MultiProcessCollector(None, path=path) if path else REGISTRY
        self.parts = (QueueCollector(redis), LedgerCollector(engine, sink_names))

    def collect(self):
        yield from self.recorded.collect()
        for part in self.parts:
            yield from part.collect()


def standalone_scrape(settings) -> Scrape:
    """A Scrape with its own database engine (no pool: one connection per scrape, 2 s to connect) and Redis
    client, created on the first scrape."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from config.sinks import load_sinks
    from middleware.ledger.db import connect_args, make_engine, normalise_url
    from middleware.redis_client import connect as connect_redis

    url = normalise_url(settings.database_url)
    clients = {}

    def engine():
        if "engine" not in clients:
            clients["engine"] = (create_engine(url, poolclass=NullPool,
                                               connect_args=dict(connect_args(settings), connect_timeout=2))
                                 if url.startswith("postgresql") else make_engine(url, settings))
        return clients["engine"]

    def redis():
        if "redis" not in clients:
            clients["redis"] = connect_redis(settings.redis_url, settings.redis_sentinel_password, socket_timeout=2,
                                             socket_connect_timeout=2)
        return clients["redis"]

    return Scrape(engine, redis, [sink.name for sink in load_sinks(settings.sinks_path)])


def serve_bind(settings):
    """Start the listener on ``settings.metrics_bind`` in a daemon thread; returns (server, thread)."""
    from prometheus_client import start_http_server

    from config.settings import parse_bind

    host, port = parse_bind(settings.metrics_bind)
    return start_http_server(port, addr=host, registry=standalone_scrape(settings))
