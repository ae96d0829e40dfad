"""The multi-process directory (``PROMETHEUS_MULTIPROC_DIR``). Imports nothing of prometheus_client: it
chooses multi-process mode when it is first imported, so the variable must be set before that."""
from __future__ import annotations

import os
import re
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_FILE = re.compile(r"^[a-z_]+?_(\d+)\.db$")  # counter_<pid>.db, histogram_<pid>.db, gauge_livesum_<pid>.db...


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_dir(path: str, everything: bool = False) -> int:
    """Create the directory and remove the files of processes that no longer run (``everything``: all files,
    when the whole service starts). A restarted gunicorn so leaves alone the files of the RQ workers still
    running on the same machine. Returns how many files it removed."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for file in directory.glob("*.db"):
        match = _FILE.match(file.name)
        pid = int(match.group(1)) if match else None
        if not everything and pid is not None and pid != os.getpid() and _alive(pid):
            continue
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def mark_process_dead(pid: int) -> None:
    """A gunicorn worker exited: drop its live-gauge files (its counters stay, as they should)."""
    path = multiproc_dir()
    if path:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid, path)
