"""config/gunicorn.conf.py: gunicorn's control socket is off unless GUNICORN_CONTROL_SOCKET names this instance's
own path (its default, ~/.gunicorn/gunicorn.ctl or $XDG_RUNTIME_DIR/gunicorn.ctl, is shared by every gunicorn of
the user). test_image_commands.py checks a running gunicorn leaves no socket in its home."""
from __future__ import annotations

import runpy

from gunicorn.config import Config

from config.settings import ROOT

CONF = str(ROOT / "config/gunicorn.conf.py")


def control_settings(monkeypatch, path: str | None) -> dict:
    if path is None:
        monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    else:
        monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", path)
    values = runpy.run_path(CONF)
    known = Config().settings   # gunicorn ignores a name it does not know: a typo would go unnoticed
    return {name: value for name, value in values.items() if name.startswith("control_socket") and name in known}


def test_the_control_socket_is_off_by_default(monkeypatch):
    assert control_settings(monkeypatch, None) == {"control_socket_disable": True}


def test_an_instance_of_its_own_may_have_one(monkeypatch, tmp_path):
    path = str(tmp_path / "web.ctl")
    assert control_settings(monkeypatch, path) == {"control_socket_disable": False, "control_socket": path}
