"""flask keys and the /v1 API description (/openapi.json, /docs)."""
from __future__ import annotations

from middleware.ledger import api_keys


def test_keys_create_list_revoke(runner, services):
    created = runner.invoke(args=["keys", "create", "studio", "receipts", "--namespace", "demo"])
    assert created.exit_code == 0, created.output
    key = created.output.split()[1]
    assert key.startswith("kb_") and "shown once" in created.output
    with services.session() as session:
        row = api_keys.find(session, key)
        assert row.role == "receipts" and row.namespaces == ["demo"] and row.key_sha256 != key
    listed = runner.invoke(args=["keys", "list"])
    assert "studio" in listed.output and key not in listed.output
    assert runner.invoke(args=["keys", "revoke", "studio"]).exit_code == 0
    with services.session() as session:
        assert api_keys.find(session, key) is None


def test_keys_bad_input(runner):
    assert runner.invoke(args=["keys", "create", "x", "root"]).exit_code != 0
    assert runner.invoke(args=["keys", "create", "x", "receipts", "--namespace", "nope"]).exit_code != 0
    assert runner.invoke(args=["keys", "create", "dup", "viewer"]).exit_code == 0
    again = runner.invoke(args=["keys", "create", "dup", "viewer"])
    assert again.exit_code != 0 and "exists" in again.output
    assert runner.invoke(args=["keys", "revoke", "nobody"]).exit_code != 0


def test_roles():
    assert api_keys.allows("admin", "receipts") and api_keys.allows("operator", "viewer")
    assert not api_keys.allows("viewer", "operator") and not api_keys.allows("receipts", "viewer")
    assert not api_keys.allows("operator", "receipts")


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["info"]["title"] == "kraty-bridge"
    post = spec["paths"]["/v1/receipts/app-store"]["post"]
    assert {"200", "202"} <= set(post["responses"]) and post["security"] == [{"apiKey": []}]
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"openapi.json" in docs.data
