"""schemathesis's hooks for tests/test_openapi_fuzz.py, loaded by ``hooks`` in tests/schemathesis.toml."""
from __future__ import annotations

import schemathesis

from tests.support.schemathesis_paths import sent_as_generated

schemathesis.hook("map_case")(sent_as_generated)
