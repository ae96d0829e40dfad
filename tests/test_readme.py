"""The docs stay true: every setting in config.settings.SETTINGS is in README.md's configuration
table and in .env.example with its real default, and neither documents a KB_* setting that doesn't exist."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.embedded import LAUNCHER_VARIABLES
from config.settings import ROOT, SETTINGS

README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


def readme_table_rows() -> dict[str, list[str]]:
    """`| `NAME` | default | meaning |` rows of the README's tables, by name."""
    rows = {}
    for line in README.splitlines():
        match = re.match(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def env_example_values() -> dict[str, str]:
    return dict(re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, re.MULTILINE))


def documented_default(name: str) -> str | None:
    """The default as the docs write it, or None where it is described rather than shown."""
    _field, kind, default, _meaning = SETTINGS[name]
    if default is None:
        return None
    if kind is bool:
        return "true" if default else "false"
    if isinstance(default, str) and default.startswith(str(ROOT)):
        return Path(default).relative_to(ROOT).as_posix()
    return str(default)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_setting_is_in_the_readme_table_with_its_default(name):
    rows = readme_table_rows()
    assert name in rows, f"{name} is missing from README.md's configuration table"
    default = documented_default(name)
    if default is not None:
        assert f"`{default}`" in rows[name][0], f"README.md: {name}'s default should read `{default}`"
    assert rows[name][1], f"README.md: {name} has no meaning"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_setting_is_in_env_example_with_its_default(name):
    values = env_example_values()
    assert name in values, f"{name} is missing from .env.example"
    default = documented_default(name)
    if default is not None:
        assert values[name] == default, f".env.example: {name} should show {default}"


def test_docs_name_no_setting_that_does_not_exist():
    known = set(SETTINGS) | set(LAUNCHER_VARIABLES)
    for source, names in (("README.md", set(readme_table_rows())), (".env.example", set(env_example_values()))):
        stale = {n for n in names if n.startswith("KB_") and n not in known}
        assert not stale, f"{source} documents unknown settings: {sorted(stale)}"


def test_launcher_variables_are_documented():
    rows, values = readme_table_rows(), env_example_values()
    for name in LAUNCHER_VARIABLES:
        assert name in rows and name in values, name


def test_the_console_walkthrough_key_may_do_what_it_says():
    """The README's console walkthrough makes a key and names the actions it can then do: that key's role
    allows every one of them (it once made an operator key and said it could resolve)."""
    from middleware.ledger import api_keys
    from middleware.ops.base import ACTION_ROLES
    section = README.split("### The ops console", 1)[1].split("\n## ", 1)[0]
    role = re.search(r"keys create \S+ (\w+)", section).group(1)
    sentence = re.search(r"open an order, and ([^.]*)", section).group(1)
    named = [action for action in ACTION_ROLES if action.replace("-", " ") in sentence or action in sentence]
    assert {"retry", "revoke", "resolve"} <= set(named), sentence
    for action in named:
        assert api_keys.allows(role, ACTION_ROLES[action]), f"a {role} key cannot {action}"
