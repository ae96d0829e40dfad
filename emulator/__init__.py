"""A local stand-in for the Kraty server API (see shared/protocols/kraty.md): run it with
``python -m emulator``; build it in-process with ``emulator.app.create_app(config)``."""
