"""The Python the memory benchmark measures: the one the production image ships.

The development environment (``requirements-dev.lock``) holds test tools that libraries pick up when present:
``stripe`` imports ``httpx`` (and with it ``anyio`` and ``rich``) when it can, adding about 4.5 MB to every
process. The image installs ``requirements.lock`` only (Dockerfile), so the full memory run measures processes
started from a virtual environment built from that lock alone: ``bench/.runtime-venv`` (made once, rebuilt when
the lock changes; pip's cache makes that quick), or ``KB_BENCH_RUNTIME_PYTHON``. A ``--quick`` run (a check that
the benchmark works) uses the current interpreter.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, BenchError

VENV = ROOT / "bench" / ".runtime-venv"
LOCK = ROOT / "requirements.lock"


def python(quick: bool) -> tuple[str, str]:
    """(interpreter, what it is) for the processes under measurement."""
    override = os.environ.get("KB_BENCH_RUNTIME_PYTHON")
    if override:
        return override, f"KB_BENCH_RUNTIME_PYTHON ({override})"
    if quick:
        return sys.executable, "this environment (--quick)"
    return str(_build()), "the runtime lock only (bench/.runtime-venv from requirements.lock, as the image)"


def _build() -> Path:
    exe, stamp = VENV / "bin" / "python", VENV / ".lock-sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        return exe
    print(f"building {VENV.relative_to(ROOT)} from requirements.lock ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", str(LOCK)], check=True)
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"memory: could not build the runtime environment ({exc}); set KB_BENCH_RUNTIME_PYTHON "
                         "to a Python with requirements.lock installed") from None
    stamp.write_text(digest)
    return exe
