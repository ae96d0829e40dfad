"""``python -m emulator --host 127.0.0.1 --port 8100 --config FILE.toml``

Serves the emulator as ONE process holding the state (gunicorn: one gthread worker; werkzeug:
one threaded server). ``--port 0`` picks a free port; the start line shows the real one.
The fake Stripe API (stripe_api.py) is served on the same port under ``/stripe``, the fake Google
Play API (google_play_api.py: Android Publisher v3 + OAuth token endpoint) under ``/google``.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from emulator import config as config_mod
from emulator.app import create_app
from emulator.app_store_api import mount_app_store
from emulator.google_play_api import mount_google
from emulator.stripe_api import mount_stripe

DEFAULT_SERVER = "gunicorn"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m emulator", description="Kraty API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--config", help="TOML file (default: emulator/example.toml)")
    p.add_argument("--webhook-url", help="global webhook URL (games may override)")
    p.add_argument("--webhook-secret", help="global webhook secret, whsec_...")
    p.add_argument("--server", choices=("gunicorn", "werkzeug"), default=DEFAULT_SERVER)
    p.add_argument("--threads", type=int, default=32, help="gunicorn worker threads")
    p.add_argument("--access-log", action="store_true", help="log every request (slow)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> dict:
    raw = config_mod.load(args.config or str(Path(__file__).with_name("example.toml")))
    if args.webhook_url:
        raw["webhook_url"] = args.webhook_url
    if args.webhook_secret:
        raw["webhook_secret"] = args.webhook_secret
    return config_mod.normalize(raw)


def announce(host: str, port: int) -> None:
    print(f"kraty emulator listening on http://{host}:{port}", flush=True)


def flush_webhooks(app, timeout: float = 2.0) -> None:
    """Give queued webhook deliveries a bounded moment to go out before exiting."""
    app.extensions["kraty_emulator"].dispatcher.close(timeout)


def serve_werkzeug(app, host: str, port: int, access_log: bool) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one TCP connection per client thread

        def log_request(self, code="-", size="-"):
            if access_log:
                super().log_request(code, size)

    def stop(signum, frame):
        raise KeyboardInterrupt

    logging.getLogger("werkzeug").setLevel(logging.INFO if access_log else logging.WARNING)
    server = make_server(host, port, app, threaded=True, request_handler=Handler)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background with SIGINT ignored
    announce(host, server.server_port)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        flush_webhooks(app)


def serve_gunicorn(app, host: str, port: int, threads: int, access_log: bool) -> None:
    from gunicorn.app.base import BaseApplication

    def when_ready(server):
        sock = server.LISTENERS[0].sock
        announce(host, sock.getsockname()[1])

    def worker_exit(server, worker):
        flush_webhooks(app)

    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1,                 # the state lives in this one worker process
        "worker_class": "gthread",
        "threads": threads,
        "worker_connections": 2000,
        "keepalive": 30,
        "timeout": 300,               # latency faults must not get the worker killed
        "graceful_timeout": 3,
        "backlog": 2048,
        "loglevel": "warning",
        "accesslog": "-" if access_log else None,
        "when_ready": when_ready,
        "worker_exit": worker_exit,
        "control_socket_disable": True,  # gunicorn 27 would share ~/.gunicorn/gunicorn.ctl machine-wide
    }

    class EmulatorServer(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    EmulatorServer().run()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except (OSError, config_mod.ConfigError) as err:
        print(f"emulator: bad configuration: {err}", file=sys.stderr)
        return 2
    app = create_app(cfg)
    mount_stripe(app)  # /stripe/v1/... and /stripe/_stripe/...; other paths reach Kraty unchanged
    mount_google(app)  # /google/token, /google/androidpublisher/v3/..., /google/_google/...
    mount_app_store(app)  # /apple/production|sandbox/inApps/..., /apple/_apple/...
    if args.server == "werkzeug":
        serve_werkzeug(app, args.host, args.port, args.access_log)
    else:
        serve_gunicorn(app, args.host, args.port, args.threads, args.access_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
