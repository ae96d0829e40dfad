"""The apps of the ``app``, ``make_app`` and console fixtures, built once per set of settings: ``create_app``
spends most of its half second compiling the routes and the OpenAPI document, the same for every test with the
same settings. A test gets the app built by ``create_app`` for its settings, its config as built and a new
``Services`` (engine, Redis, store clients and their caches) from the settings, catalog, storefronts and sinks
``create_app`` loaded: nothing a test did to the last test's services or config is seen by the next."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

from flask import Flask

from app import build_services, create_app
from config.settings import load_settings
from middleware import logs
from middleware.metrics import tracing
from middleware.services import Services


class Built:
    """One app as ``create_app`` returned it: its config and what its services were made of."""

    def __init__(self, app: Flask):
        self.app = app
        self.config = dict(app.config)
        svc: Services = app.extensions["kraty_bridge"]
        self.parts = (svc.settings, svc.catalog, svc.storefronts, svc.sinks)
        self.fresh = True   # its first test uses the Services create_app made


class AppCache:
    """The last ``size`` apps built, by their settings overrides."""

    def __init__(self, size: int = 6):
        self.size = size
        self._built: OrderedDict[str, Built] = OrderedDict()

    def app(self, overrides: dict, besides: tuple[Flask, ...] = ()) -> Flask:
        """The app of ``overrides``; ``besides``: apps in use, a new (uncached) app if it would be one of them."""
        key = _key(overrides)
        built = self._built.get(key)
        if built is not None and built.app in besides:
            app = create_app(overrides)
            app.config["TESTING"] = True
            return app
        if built is None:
            app = create_app(overrides)
            app.config["TESTING"] = True
            built = self._built[key] = Built(app)
            while len(self._built) > self.size:
                self._built.popitem(last=False)
        self._built.move_to_end(key)
        if built.fresh:
            built.fresh = False
            return built.app
        settings = built.parts[0]
        logs.configure_logging(settings.log_level, settings.log_json)   # another app may have changed it
        tracing.configure(settings)   # as create_app: the exporter when KB_OTEL_ENABLED (once per process)
        built.app.config.clear()
        built.app.config.update(built.config)
        built.app.extensions["kraty_bridge"] = build_services(*built.parts)
        return built.app

    def clear(self) -> None:
        self._built.clear()


def _key(overrides: dict) -> str:
    """The settings the overrides and the environment (KB_*) make, and the config files they name as they are."""
    settings = load_settings(**overrides)
    files = [Path(p).read_bytes() if p and Path(p).is_file() else None
             for p in (settings.catalog_path, settings.storefronts_path, settings.sinks_path)]
    return repr((sorted(asdict(settings).items()), files))   # every field (repr leaves the secrets out)
