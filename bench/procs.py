"""The processes a benchmark starts and owns: the Kraty emulator, gunicorn, RQ workers (stopped by
``stop()`` or at exit, by their own pid)."""
from __future__ import annotations

import atexit
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from bench.common import ROOT, BenchError

_started: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], env: dict | None = None, log: Path | None = None,
          stdout=None) -> subprocess.Popen:
    """Start a process we own (stopped by stop() or at exit)."""
    out = stdout if stdout is not None else (open(log, "ab") if log else subprocess.DEVNULL)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT if log else None, start_new_session=True)
    _started.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc in _started:
        _started.remove(proc)


@atexit.register
def stop_all() -> None:
    for proc in list(_started):
        stop(proc, timeout=5)


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process for {url} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"waiting for {what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise BenchError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)


class Emulator:
    """The Kraty emulator (its own gunicorn process, one gthread worker), on a free loopback port."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = spawn([sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(self.port),
                           "--config", str(ROOT / "emulator" / "example.toml")], log=workdir / "emulator.log")
        wait_http(self.url + "/_emulator/stats", proc=self.proc)
        self.session = requests.Session()

    def reset(self) -> None:
        self.session.post(self.url + "/_emulator/reset", timeout=10).raise_for_status()

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def close(self) -> None:
        stop(self.proc)


def write_catalog(workdir: Path, emulator_url: str) -> str:
    text = (ROOT / "config" / "examples" / "catalog.toml").read_text()
    path = workdir / "catalog.toml"
    path.write_text(text.replace("http://127.0.0.1:8100", emulator_url))
    return str(path)


class Gunicorn:
    """gunicorn serving ``target`` with the given worker settings on a free loopback port."""

    def __init__(self, target: str, workers: int, worker_class: str, threads: int, env: dict, log: Path,
                 ready_path: str = "/", python: str = sys.executable):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                "--worker-class", worker_class, "--log-level", "warning", "--backlog", "2048", target]
        if worker_class == "gthread":
            args[-1:-1] = ["--threads", str(threads)]
        self.proc = spawn(args, env=env, log=log)
        wait_http(self.url + ready_path, timeout=120, proc=self.proc)   # a loaded machine: the app starts slowly
        deadline = time.monotonic() + 30
        while len(self.worker_pids()) < workers:  # every worker booted, not just the first
            if time.monotonic() > deadline:
                raise BenchError(f"gunicorn {target}: workers did not start")
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def close(self) -> None:
        stop(self.proc)


def process_tree(pid: int) -> list[int]:
    try:
        proc = psutil.Process(pid)
        return [pid] + [c.pid for c in proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def app_services(backends, workdir: Path, emulator: "Emulator") -> tuple[dict, object]:
    """The environment for the processes under test (catalog pointing at ``emulator``) and an
    in-process app's services on the same ledger and Redis, for seeding and reading results."""
    from app import create_app

    from bench.common import kb_env
    catalog = write_catalog(workdir, emulator.url)
    app = create_app(dict(database_url=backends.database_url, redis_url=backends.redis_url,
                          catalog_path=catalog, log_level="WARNING"))
    return kb_env(backends, catalog), app.extensions["kraty_bridge"]
