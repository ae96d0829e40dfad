import hashlib
import hmac
import re
from pathlib import Path

import pytest

import config.storefronts as storefronts_module
from config.storefronts import Storefront, StorefrontsError, hash_token, load_storefronts, new_token

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "storefronts.toml"
OLD, NEW = "old-token", "new-token"


def write(tmp_path, text):
    path = tmp_path / "storefronts.toml"
    path.write_text(text)
    return path


def problems(tmp_path, text, **kwargs):
    with pytest.raises(StorefrontsError) as info:
        load_storefronts(write(tmp_path, text), **kwargs)
    return info.value


def assert_problem(error, path, fragment):
    assert any(line.startswith(f"{error.source}: {path}: ") and fragment in line
               for line in str(error).splitlines()), str(error)


def test_example_authenticates_the_demo_token():
    storefronts = load_storefronts(EXAMPLE, known_namespaces=["demo"])
    demo = storefronts.authenticate("demo-storefront-token")
    assert demo == Storefront("demo_store", frozenset({"demo"}))
    assert demo.may_access("demo") and not demo.may_access("other")
    assert storefronts.get("demo_store") is demo and len(storefronts) == 1
    assert storefronts.source == str(EXAMPLE)


@pytest.mark.parametrize("token", ["wrong", "demo-storefront-token ", "", None, "Demo-storefront-token", "\udcff"])
def test_wrong_or_empty_token_is_refused(token):
    assert load_storefronts(EXAMPLE).authenticate(token) is None


def test_rotation_with_two_hashes(tmp_path):
    text = f"""
[storefronts.acme]
token_sha256 = ["{hash_token(NEW)}", "{hash_token(OLD).upper()}"]
namespaces = ["demo", "other"]
[storefronts.beta]
token_sha256 = "{hash_token('beta')}"
namespaces = ["demo"]
"""
    storefronts = load_storefronts(write(tmp_path, text))
    assert storefronts.authenticate(NEW).name == "acme"
    assert storefronts.authenticate(OLD).name == "acme"
    assert storefronts.authenticate("beta").name == "beta"
    assert storefronts.authenticate("gamma") is None
    assert storefronts.authenticate(NEW).namespaces == frozenset({"demo", "other"})


def test_authenticate_compares_every_hash(tmp_path, monkeypatch):
    text = "".join(f'[storefronts.s{i}]\ntoken_sha256 = "{hash_token(f"t{i}")}"\nnamespaces = ["demo"]\n' for i in range(3))
    storefronts = load_storefronts(write(tmp_path, text))
    calls, real_compare = [], hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real_compare(a, b)

    monkeypatch.setattr(storefronts_module.hmac, "compare_digest", counting)
    for token in ("t0", "t2", "nope"):
        calls.clear()
        storefronts.authenticate(token)
        assert len(calls) == 3


def test_hash_token_and_new_token():
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    token = new_token()
    assert re.fullmatch(r"kbsf_[A-Za-z0-9_-]{43}", token) and token != new_token()


def test_empty_file_means_no_storefronts(tmp_path):
    storefronts = load_storefronts(write(tmp_path, ""))
    assert len(storefronts) == 0 and storefronts.authenticate("anything") is None


GOOD_HASH = hash_token("x")


@pytest.mark.parametrize("body, path, fragment", [
    ('token_sha256 = "abc"\nnamespaces = ["demo"]', "acme.token_sha256", "64 hex characters"),
    (f'token_sha256 = "{GOOD_HASH[:-1]}g"\nnamespaces = ["demo"]', "acme.token_sha256", "64 hex characters"),
    ('token_sha256 = []\nnamespaces = ["demo"]', "acme.token_sha256", "non-empty list"),
    (f'token_sha256 = ["{GOOD_HASH}", 5]\nnamespaces = ["demo"]', "acme.token_sha256", "SHA-256"),
    ('namespaces = ["demo"]', "acme.token_sha256", "is required"),
    (f'token_sha256 = "{GOOD_HASH}"', "acme.namespaces", "is required"),
    (f'token_sha256 = "{GOOD_HASH}"\nnamespaces = []', "acme.namespaces", "non-empty list"),
    (f'token_sha256 = "{GOOD_HASH}"\nnamespaces = "demo"', "acme.namespaces", "non-empty list"),
    (f'token_sha256 = "{GOOD_HASH}"\nnamespaces = ["de mo"]', "acme.namespaces", "1-64 characters"),
    (f'token_sha256 = "{GOOD_HASH}"\nnamespaces = ["demo"]\ntoken = "x"', "acme.token", "unknown key"),
    (f'token_sha256 = ["{GOOD_HASH}", "{GOOD_HASH}"]\nnamespaces = ["demo"]', "acme.token_sha256", "more than once"),
])
def test_invalid_entries(tmp_path, body, path, fragment):
    error = problems(tmp_path, f"[storefronts.acme]\n{body}\n")
    assert_problem(error, f"storefronts.{path}", fragment)


def test_invalid_top_level(tmp_path):
    assert_problem(problems(tmp_path, "apikeys = 1\n"), "apikeys", "unknown key")
    assert_problem(problems(tmp_path, "storefronts = 1\n"), "storefronts", "must be a table")
    assert_problem(problems(tmp_path, '[storefronts."a b"]\n'), 'storefronts."a b"', "invalid name")


def test_all_problems_are_reported(tmp_path):
    error = problems(tmp_path, '[storefronts.a]\ntoken_sha256 = "x"\nnamespaces = []\n[storefronts.b]\nnamespaces = ["demo"]\n')
    assert len(error.problems) == 3 and len(str(error).splitlines()) == 3


def test_one_token_cannot_belong_to_two_storefronts(tmp_path):
    text = f'[storefronts.a]\ntoken_sha256 = "{GOOD_HASH}"\nnamespaces = ["demo"]\n'
    text += f'[storefronts.b]\ntoken_sha256 = "{GOOD_HASH.upper()}"\nnamespaces = ["demo"]\n'
    assert_problem(problems(tmp_path, text), "storefronts.b.token_sha256", "already a token of storefront a")


def test_unknown_namespace_with_known_namespaces(tmp_path):
    text = f'[storefronts.a]\ntoken_sha256 = "{GOOD_HASH}"\nnamespaces = ["demo", "ghost"]\n'
    assert load_storefronts(write(tmp_path, text)).get("a").may_access("ghost")
    error = problems(tmp_path, text, known_namespaces={"demo"})
    assert error.problems == [("storefronts.a.namespaces", "unknown namespace 'ghost'")]


def test_bad_toml_names_file_and_line(tmp_path):
    error = problems(tmp_path, "[storefronts.a]\ntoken_sha256 = \n")
    assert str(error).startswith(f"{tmp_path / 'storefronts.toml'}: line 2, column 16: invalid TOML: ")


def test_missing_file(tmp_path):
    with pytest.raises(StorefrontsError, match="cannot read file"):
        load_storefronts(tmp_path / "nope.toml")
