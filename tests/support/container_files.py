"""Reading the shipped container files: the Dockerfile's final stage and the compose files' services."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from config.settings import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILES = ("compose.yaml", "compose.prod.yaml")


def compose(name: str = "compose.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def final_stage() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile's last stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages[-1]


def image_cmd() -> list[str]:
    [cmd] = [arguments for instruction, arguments in final_stage() if instruction == "CMD"]
    return json.loads(cmd)


def image_paths() -> list[str]:
    """What the final stage copies from the build context (not from another stage)."""
    paths = []
    for instruction, arguments in final_stage():
        if instruction == "COPY" and not arguments.startswith("--from"):
            paths.extend(arguments.split()[:-1])
    return paths


def image_env() -> dict[str, str]:
    env = {}
    for instruction, arguments in final_stage():
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", arguments))
    return env


def workdir_copy(destination: Path) -> Path:
    """The image's /app: the final stage's COPY sources under ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for source in image_paths():
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, destination / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / source, destination / source)
    return destination
