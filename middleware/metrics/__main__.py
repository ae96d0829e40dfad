"""``python -m middleware.metrics``: serve the metrics on ``KB_METRICS_BIND`` until stopped.

For a machine that runs RQ workers and no gunicorn: start it with the same ``PROMETHEUS_MULTIPROC_DIR`` as
the workers (``--prepare`` first removes the files of processes that no longer run, as gunicorn's
``on_starting`` does). It reports the workers' counters and histograms and the scrape-time gauges.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m middleware.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true",
                        help="create PROMETHEUS_MULTIPROC_DIR and remove files of processes no longer running")
    args = parser.parse_args(argv)

    from config.settings import SettingsError, load_settings
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(f"python -m middleware.metrics: {exc}")
    if not settings.metrics_bind:
        sys.exit("python -m middleware.metrics: set KB_METRICS_BIND (host:port) to serve the metrics")
    from middleware.metrics.exposition import multiproc_dir, prepare_dir, serve_bind
    if args.prepare and multiproc_dir():
        prepare_dir(multiproc_dir())
    server, _thread = serve_bind(settings)
    print(f"metrics on http://{settings.metrics_bind}/metrics", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
