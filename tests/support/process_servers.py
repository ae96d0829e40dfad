"""Real servers some tests start on free loopback ports and stop: PgBouncer, Redis and Redis Sentinel (Debian's
binaries). A test that needs one skips with a message when its binary is absent (CI installs them:
.ci/debian-packages.txt)."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.orders_flow import poll


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def binary(name: str, package: str | None = None) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {package or name})")
    return path


class Server:
    """One server process, in its own session; ``stop()`` ends it (and only it)."""

    def __init__(self, name: str, args: list[str], port: int, log: Path, stop_signal: int = signal.SIGTERM,
                 **popen):
        self.name, self.port, self.log, self.stop_signal = name, port, log, stop_signal
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
        poll(lambda: listening(port) or self.proc.poll() is not None, timeout=15, what=f"{name} on port {port}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({self.proc.returncode}): {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _postgres_user():
    """PgBouncer and PostgreSQL refuse to run as root: then they run as ``postgres``, owning their files."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no postgres user to run PgBouncer or PostgreSQL as")


def _give(directory: Path, user) -> None:
    os.chmod(directory, 0o755)
    for path in (directory, *directory.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)


def _as_unprivileged(directory: Path) -> list[str]:
    user = _postgres_user()
    if user is None:
        return []
    _give(directory, user)
    return ["-u", "postgres"]


def start_postgres(directory: Path) -> tuple[Server, str]:
    """A PostgreSQL cluster of its own (Debian's initdb, trust on loopback) on a free port; (server, its URL)."""
    bin_dir = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)), None)
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql), and no KB_TEST_DATABASE_URL")
    bin_dir = bin_dir.parent
    data = directory / "pgdata"
    data.mkdir()
    user = _postgres_user()
    run_as = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    if user is not None:
        _give(directory, user)
    subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, timeout=120, cwd=directory, **run_as)
    port = free_port()
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    server = Server("postgres", args, port, directory / "postgres.log", signal.SIGINT, cwd=directory, **run_as)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    poll(lambda: _accepts(port), timeout=30, what="PostgreSQL to accept connections")  # listening: not yet ready
    return server, url


def _accepts(port: int) -> bool:
    try:
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2).close()
        return True
    except psycopg.OperationalError:  # "the database system is starting up"
        return False


def start_pgbouncer(directory: Path, database_url: str, pool_mode: str, pool_size: int = 2) -> tuple[Server, str]:
    """PgBouncer in ``pool_mode`` in front of ``database_url``'s PostgreSQL; returns (server, the URL through it).

    ``default_pool_size`` is small so that client connections share server connections, as under load."""
    url = make_url(database_url)
    port = free_port()
    target = f"host={url.host or '127.0.0.1'} port={url.port or 5432} dbname={url.database} user={url.username}"
    if url.password:
        target += f" password={url.password}"
    ini = directory / "pgbouncer.ini"
    ini.write_text(f"""[databases]
{url.database} = {target}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
query_wait_timeout = 10
ignore_startup_parameters = extra_float_digits
""")
    args = [binary("pgbouncer"), *_as_unprivileged(directory), str(ini)]
    server = Server("pgbouncer", args, port, directory / "pgbouncer.log")
    through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    return server, through


SERVICE = "kb-master"


class SentinelSet:
    """A Redis master, one replica of it and one Sentinel watching them (quorum 1), each on a free port."""

    def __init__(self, directory: Path):
        redis_server = binary("redis-server")
        sentinel = binary("redis-sentinel")
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.servers: list[Server] = []
        try:
            self._redis(directory, redis_server, "master", self.master_port)
            self._redis(directory, redis_server, "replica", self.replica_port,
                        f"replicaof 127.0.0.1 {self.master_port}\n")
            conf = directory / "sentinel.conf"
            conf.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {directory}\n"
                            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
                            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                            f"sentinel failover-timeout {SERVICE} 5000\n")
            self.servers.append(Server("redis-sentinel", [sentinel, str(conf)], self.sentinel_port,
                                       directory / "sentinel.log"))
        except BaseException:
            self.stop()
            raise

    def _redis(self, directory: Path, redis_server: str, name: str, port: int, extra: str = "") -> None:
        conf = directory / f"{name}.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\ndbfilename {name}.rdb\nsave \"\"\n"
                        f"appendonly no\n{extra}")
        self.servers.append(Server(f"redis {name}", [redis_server, str(conf)], port, directory / f"{name}.log"))

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
