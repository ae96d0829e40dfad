"""Optional sampling profiles of the processes under test (``python -m bench --profile``).

Uses py-spy (in requirements-dev.txt) from the virtualenv, PATH, or KB_BENCH_PYSPY. It samples without
pausing the target (--nonblocking). The raw collapsed stacks and a short text summary (where the time goes,
by our own functions and by leaf frames) are written next to the results.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.common import ROOT

ENABLED = False  # set by ``python -m bench --profile``
OUT_DIR = ROOT / "bench" / "results"  # set by ``python -m bench`` to where the results go


def out_path(name: str) -> Path:
    return OUT_DIR / f"{name}.profile.txt"


def py_spy() -> str | None:
    """KB_BENCH_PYSPY, else the one installed beside this Python (requirements-dev.txt), else PATH's."""
    beside = Path(sys.executable).parent / "py-spy"
    return os.environ.get("KB_BENCH_PYSPY") or (str(beside) if beside.exists() else shutil.which("py-spy"))


class Profile:
    """py-spy record on ``pid`` for ``seconds``; ``finish()`` writes the summary. A no-op when disabled."""

    def __init__(self, pid: int, seconds: float | None, out: Path, idle: bool = True):
        """``seconds`` None: until the process exits."""
        self.out, self.proc = out, None
        exe = py_spy()
        if not ENABLED or exe is None:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        args = [exe, "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--format", "raw",
                "--output", str(out.with_suffix(".raw"))]
        if seconds is not None:
            args += ["--duration", str(max(1, int(seconds)))]
        if idle:
            args.append("--idle")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self) -> Path | None:
        if self.proc is None:
            return None
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        raw = self.out.with_suffix(".raw")
        if not raw.exists():
            return None
        self.out.write_text(summarise(raw))
        return self.out


def _ours(frame: str) -> bool:
    return f"({ROOT.name}" not in frame and ".venv" not in frame and "site-packages" not in frame and any(
        f"({d}/" in frame or f"({d}." in frame for d in ("middleware", "mappers", "workers", "config", "app"))


def summarise(raw: Path, top: int = 25) -> str:
    """Share of samples (wall time, idle included) per function of ours (inclusive) and per leaf frame."""
    total, inclusive, leaves = 0, Counter(), Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        if not any("handle_request" in f or "perform_job" in f or "execute_job" in f for f in frames):
            continue  # only samples taken while serving a request / running a job
        total += n
        for frame in set(frames):
            if _ours(frame):
                inclusive[frame] += n
        leaves[frames[-1]] += n
    lines = [f"samples while serving requests / running jobs: {total}", "", "our functions (inclusive):"]
    lines += [f"  {n / total * 100:5.1f}%  {f}" for f, n in inclusive.most_common(top)] if total else []
    lines += ["", "leaf frames (where the time is spent):"]
    lines += [f"  {n / total * 100:5.1f}%  {f}" for f, n in leaves.most_common(top)] if total else []
    return "\n".join(lines) + "\n"
