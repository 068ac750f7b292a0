"""The `rix` commands a new server is set up with, run as an operator runs them: fixtures
elsewhere make trusts, users, tokens, AEs and agreements in process (the same functions,
as the same principal), so these are the tests that the commands themselves work."""

from __future__ import annotations

import json

import httpx

from tests.peers.server import RixServer


def test_commands_add_a_trust_a_user_and_a_token_the_server_accepts(
    rix_server: RixServer,
) -> None:
    said = rix_server.rix("trust", "add", "CLI", "--name", "Command Line Trust").stdout
    assert "trust CLI (Command Line Trust), issuer CLI" in said
    said = rix_server.rix("user", "add", "cli.admin", "--roles", "region-admin").stdout
    assert "user cli.admin of the region: region-admin" in said
    token = rix_server.rix("token", "create", "cli.admin").stdout.strip()
    origin = f"http://127.0.0.1:{rix_server.http_port}"
    with httpx.Client(base_url=origin, headers={"Authorization": f"Bearer {token}"}) as api:
        me = api.get("/api/me")
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "cli.admin"
        said = rix_server.rix(
            "user", "add", "cli.clinician", "--roles", "clinician", "--trust", "CLI"
        ).stdout
        assert "user cli.clinician of CLI: clinician" in said
        users = {u["username"]: u for u in api.get("/api/users").json()}
        assert users["cli.clinician"]["trust"] == "CLI"


def test_commands_register_an_ae_and_make_and_end_an_agreement(rix_server: RixServer) -> None:
    rix_server.rix("trust", "add", "CLIA", "--name", "A")
    rix_server.rix("trust", "add", "CLIB", "--name", "B")
    rix_server.rix("ae", "add", "CLI_PEER", "--host", "127.0.0.1", "--port", "11999")
    assert "CLI_PEER" in rix_server.rix("ae", "list").stdout
    rix_server.rix(
        "ae", "add", "CLI_CT", "--host", "127.0.0.1", "--port", "11998", "--kind", "modality"
    )
    kinds = {
        a["title"]: a["kind"] for a in json.loads(rix_server.rix("ae", "list", "--json").stdout)
    }
    assert kinds["CLI_PEER"] == "pacs" and kinds["CLI_CT"] == "modality"
    assert "agreement CLIA <-> CLIB" in rix_server.rix("agreement", "add", "CLIA", "CLIB").stdout
    assert "CLIA <-> CLIB" in rix_server.rix("trust", "list").stdout
    assert "removed" in rix_server.rix("agreement", "remove", "CLIA", "CLIB").stdout
    assert "CLIA <-> CLIB" not in rix_server.rix("trust", "list").stdout
