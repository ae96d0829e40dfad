"""Processes a test starts (gunicorn, workers, the emulator...) with their output in log files: ``Processes``
stops them all (their whole process group), ``print_logs`` shows the end of each log (pytest shows it when the
test fails), ``up`` says whether a URL answers 200."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import requests

from config.settings import ROOT
from tests.support.process_servers import free_port  # noqa: F401  (imported from here by the process tests)


class Processes:
    def __init__(self):
        self.running: list[subprocess.Popen] = []
        self.logs: list = []

    def start(self, args, env, log_path, cwd=ROOT):
        log = open(log_path, "wb")
        self.logs.append(log)
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.running.append(proc)
        return proc

    def stop(self):
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for log in self.logs:   # (left open, a warning: an error under pytest.ini's filterwarnings)
            log.close()


def up(url) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def print_logs(directory: Path, names) -> None:
    """The last 3,000 characters of each ``<name>.log`` in ``directory`` that exists."""
    for name in names:
        path = directory / f"{name}.log"
        if path.exists():
            print(f"--- {name} log ---\n{path.read_text()[-3000:]}")
