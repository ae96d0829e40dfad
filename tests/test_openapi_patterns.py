"""The id pattern the OpenAPI description documents says what the API refuses, read as the fuzzer reads it
(regression for the CI flake of tests/test_openapi_fuzz.py on ``GET /v1/players/{player_id}/export``).

The pattern's ``\\xHH`` escapes read the same in ECMA 262 (OpenAPI's dialect), Python ``re`` and the Rust
engine behind schemathesis's validator: each reading refuses every control character the API refuses
(U+0000-U+001F, U+007F-U+009F) and accepts every other ASCII character the API accepts. The flake came from the
wire instead: schemathesis sends a path parameter's ``%XX`` undecoded (tests/support/schemathesis_paths.py)."""
from __future__ import annotations

import re
from urllib.parse import quote

import jsonschema
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.core.jsonschema import FANCY_REGEX_OPTIONS
from schemathesis.core.jsonschema.patterns import compile_ecma_pattern

from mappers.accelbyte import is_clean_id

from tests.support.ops_ledger import key
from tests.support.schemathesis_paths import sent_as_generated

EXPORT = "/v1/players/{player_id}/export"
CONTROL = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
CHECKED = range(0x00, 0xA0)   # ASCII and Latin-1's control characters: where the pattern names all the API refuses


@pytest.fixture
def spec(client) -> dict:
    return client.get("/openapi.json").get_json()


def id_schema(spec: dict) -> dict:
    parameters = spec["paths"][EXPORT].get("parameters", []) + spec["paths"][EXPORT]["get"].get("parameters", [])
    return next(p for p in parameters if p["name"] == "player_id")["schema"]


def readings(schema: dict) -> dict:
    """How each tool reads the documented schema: whether it takes a value as valid."""
    generator = compile_ecma_pattern(schema["pattern"])
    return {"python re (jsonschema)": jsonschema.Draft4Validator(schema).is_valid,
            "jsonschema-rs (schemathesis's validator)": jsonschema_rs.Draft4Validator(schema).is_valid,
            "jsonschema-rs, fancy-regex": jsonschema_rs.Draft4Validator(
                schema, pattern_options=FANCY_REGEX_OPTIONS).is_valid,
            "schemathesis's generator": lambda value: bool(generator.fullmatch(value))}


def test_the_documented_id_pattern_is_what_the_api_checks(spec):
    schema = id_schema(spec)
    assert "\\x00-\\x1f" in schema["pattern"] and "\\x7f-\\x9f" in schema["pattern"], schema
    for tool, valid in readings(schema).items():
        differ = [f"U+{code:04X}" for code in CHECKED if valid(f"a{chr(code)}b") != is_clean_id(f"a{chr(code)}b")]
        assert not differ, f"{tool} reads the id pattern otherwise than the API for {differ}"
        assert not any(valid(chr(code)) for code in CONTROL), tool


def test_the_api_refuses_exactly_the_control_characters_in_a_path_id(client, services):
    headers = key(services, "operator")
    for code in CHECKED:
        if chr(code) in "/?#%":   # a path's own delimiters, and the escape character itself
            continue
        answer = client.get(f"/v1/players/{quote(f'a{chr(code)}b', safe='')}/export", headers=headers)
        expected = 404 if is_clean_id(f"a{chr(code)}b") else 400   # a valid id holding nothing: player_not_found
        assert answer.status_code == expected, (f"U+{code:04X}", answer.json)
        assert (code in CONTROL or chr(code) == " ") == (expected == 400)


def test_a_percent_in_a_generated_id_reaches_the_server_as_generated(spec, client, services):
    """``a%17b`` is a valid id (printable, no whitespace). schemathesis alone sends it as ``a%17b`` on the wire,
    which the server decodes to ``a<U+0017>b`` and refuses; with the hook the server reads ``a%17b``."""
    operation = schemathesis.openapi.from_dict(spec)[EXPORT]["GET"]
    generated = "a%17b"
    assert all(valid(generated) for valid in readings(id_schema(spec)).values()) and is_clean_id(generated)

    def url(case) -> str:
        return case.as_transport_kwargs(base_url="http://127.0.0.1")["url"].removeprefix("http://127.0.0.1")

    bare = operation.Case(path_parameters={"player_id": generated})
    assert url(bare) == "/v1/players/a%17b/export"   # what made the flake: no longer true -> drop the hook
    hooked = sent_as_generated(None, operation.Case(path_parameters={"player_id": generated}))
    assert url(hooked) == "/v1/players/a%2517b/export"
    headers = key(services, "operator")
    assert client.get(url(bare), headers=headers).status_code == 400
    answer = client.get(url(hooked), headers=headers)
    assert answer.status_code == 404 and answer.json["error"]["code"] == "player_not_found", answer.json
    assert re.fullmatch(id_schema(spec)["pattern"], generated)
