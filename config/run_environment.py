"""``make run``'s environment for the operator commands run beside it: ``<instance>/environment``.

The launcher (config/embedded.py) writes the settings it chose — the private Redis socket, the ledger's URL,
the catalog copy, the emulator's fakes, the console key's file — as ``export`` lines
(``. instance/environment`` works in a shell), and removes the file when it stops. ``flask --app app ...``
run from the same checkout reads it (app.py): a variable already set in the shell wins, and a file left
by a launcher that no longer runs is ignored, with a line saying so.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import MutableMapping
from pathlib import Path

from middleware.metrics.multiproc import _alive as process_alive  # the one "is that pid running?" check

FILE_NAME = "environment"
PID_PREFIX = "# launcher pid "
CARRIED = ("KB_DATABASE_URL", "KB_REDIS_URL", "KB_CATALOG", "KB_STOREFRONTS", "KB_SINKS", "KB_STRIPE_API_BASE",
           "KB_GOOGLE_API_BASE", "KB_GOOGLE_TOKEN_URI", "KB_SECRET_KEY_FILE")


def instance_dir(environ, root: Path) -> Path:
    return Path(environ.get("KB_INSTANCE_DIR") or root / "instance").resolve()


def write(instance: Path, env: dict, urls: dict, launcher_environ) -> Path:
    """Write the file (mode 0600: a database URL may hold a password). The console key made by the launcher
    is named by its file (``KB_SECRET_KEY_FILE``), never written out."""
    env = dict(env)
    if not launcher_environ.get("KB_SECRET_KEY") and not launcher_environ.get("KB_SECRET_KEY_FILE"):
        env["KB_SECRET_KEY_FILE"] = str(instance / "secret_key")
    lines = ["# Written by make run (config/embedded.py) while it runs; removed when it stops.",
             f"# In another shell: . {instance / FILE_NAME}   (flask --app app ... in this checkout reads it)",
             f"{PID_PREFIX}{os.getpid()}",
             *(f"# {name} {url}" for name, url in urls.items())]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in CARRIED if env.get(name)]
    path = instance / FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


def remove(instance: Path) -> None:
    (instance / FILE_NAME).unlink(missing_ok=True)


def read(path: Path) -> tuple[int | None, dict[str, str]]:
    """(the launcher's pid, the exported variables)."""
    pid, values = None, {}
    for line in path.read_text().splitlines():
        if line.startswith(PID_PREFIX) and line[len(PID_PREFIX):].strip().isdigit():
            pid = int(line[len(PID_PREFIX):])
        elif line.startswith("export "):
            [assignment] = shlex.split(line[len("export "):])
            name, _, value = assignment.partition("=")
            values[name] = value
    return pid, values


def apply(environ: MutableMapping[str, str], root: Path) -> str | None:
    """Fill ``environ`` from a running launcher's file; returns a line to show the operator, or None."""
    path = instance_dir(environ, root) / FILE_NAME
    if not path.is_file():
        return None
    pid, values = read(path)
    if pid is None or not process_alive(pid):
        return f"{path}: left by a make run that has stopped (pid {pid}); not used"
    taken = [name for name in values if not environ.get(name)
             and not (name.endswith("_FILE") and environ.get(name[:-len("_FILE")]))]  # the shell's own wins
    for name in taken:
        environ[name] = values[name]
    if not taken:
        return None
    return f"using make run's environment from {path} ({', '.join(taken)})"
