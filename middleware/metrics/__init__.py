"""Prometheus metrics (docs/metrics.md).

``recorders``: the counters and histograms recorded as things happen, one helper per event (imported by
the Kraty client, the engine, the webhooks and the workers). ``collectors``: the gauges computed at scrape
time from Redis and the ledger. ``exposition``: ``GET /metrics``. ``listener``: the separate listener
(``KB_METRICS_BIND``). ``multiproc``: the multi-process directory (no prometheus_client import: gunicorn's
master sets ``PROMETHEUS_MULTIPROC_DIR`` before anything imports prometheus_client).
"""
