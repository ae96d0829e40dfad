"""Measuring the processes under test: CPU time per group of processes, RSS and its peak."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil


def service_pids(database_url: str | None = None) -> dict:
    """Finders for the shared servers' processes: PostgreSQL (our database's backends plus the server's own
    background processes, not other databases' backends) and redis-server. Called again at stop, so
    connections opened during a measurement count too."""
    db = None
    if database_url and database_url.startswith("postgres"):
        from sqlalchemy.engine import make_url
        db = make_url(database_url).database

    def postgres() -> list[int]:
        pids = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            if not (proc.info["name"] or "").startswith("postgres"):
                continue
            title = " ".join(proc.info["cmdline"] or [])
            is_backend = "(" in title and ")" in title   # "postgres: 15/main: user db 127.0.0.1(port) idle"
            if not is_backend or (db and f" {db} " in title):
                pids.append(proc.pid)
        return pids

    def redis() -> list[int]:
        return [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")]
    return {"postgres": postgres, "redis": redis}


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop(), as cores busy on average.

    A group is a list of pids or a function returning them. A background thread re-reads every
    group's processes a few times a second, so a process born during the measurement counts from
    its birth and one that ends (a burst worker, its database connection) counts up to its last reading.
    """

    def __init__(self, groups: dict, interval: float = 0.2):
        self.groups, self.interval = groups, interval
        self.before: dict[str, dict[int, float]] = {}
        self.latest: dict[str, dict[int, float]] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @staticmethod
    def _cpu(pids) -> dict[int, float]:
        out = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                out[pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out

    def _pids(self, name: str) -> list[int]:
        group = self.groups[name]
        return group() if callable(group) else group

    def _read(self) -> None:
        for name in self.groups:
            self.latest[name].update(self._cpu(set(self._pids(name)) | set(self.latest[name])))

    def _poll(self) -> None:
        while not self._halt.wait(self.interval):
            self._read()

    def start(self) -> CpuMeter:
        self.before = {name: self._cpu(self._pids(name)) for name in self.groups}
        self.latest = {name: dict(cpu) for name, cpu in self.before.items()}
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self._thread.join(5)
        self._read()
        elapsed = time.perf_counter() - self.t0
        return {name: round(sum(max(0.0, cpu - self.before[name].get(pid, 0.0))
                                for pid, cpu in self.latest[name].items()) / elapsed, 3)
                for name in self.groups}


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1_048_576


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's RSS (VmHWM), when /proc has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds in the background; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except psutil.NoSuchProcess:
                return
            self._halt.wait(self.interval)

    def finish(self) -> float:
        self._halt.set()
        self.join(2)
        return self.peak
