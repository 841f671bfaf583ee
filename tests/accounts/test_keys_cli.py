"""`mailhaven keys list|create|revoke`: an operator manages an account's API keys without
the panel (an account the CLI made has no panel user), through the same service functions
as `/v1/keys`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mailhaven.cli import app
from mailhaven.config import Settings


def _cli(settings: Settings, *args: str, status: int = 0) -> str:
    env = {"MAILHAVEN_DATA_DIR": str(settings.data_dir),
           "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_HOSTNAME": settings.hostname}
    done = CliRunner().invoke(app, ["keys", *args], env=env)
    assert done.exit_code == status, (done.stdout, done.stderr, done.exception)
    return done.stdout if status == 0 else done.stderr


def test_keys_create_list_and_revoke_without_the_panel(settings, live, account) -> None:  # type: ignore[no-untyped-def]
    made = json.loads(_cli(settings, "create", "--account", account[0], "--role", "basic",
                           "--description", "dashboards", "--json"))
    assert made["role"] == "basic" and made["secret"].startswith("key-")
    with live.client(made["secret"]) as analyst:
        assert analyst.get("/v3/domains").status_code == 200  # looked up, now cached

        listed = _cli(settings, "list", "--account", account[0], "--json")
        assert made["secret"] not in listed and account[1] not in listed
        rows = json.loads(listed)
        assert [(r["id"], r["role"], r["hint"]) for r in rows if r["id"] == made["id"]] == \
            [(made["id"], "basic", "…" + made["secret"][-4:])]
        assert sorted(r["role"] for r in rows) == ["admin", "basic"]  # with accounts create's

        first = next(r["id"] for r in rows if r["id"] != made["id"])
        assert "revoked" in _cli(settings, "revoke", "--account", account[0], first)
        with live.client(account[1]) as admin:
            assert admin.get("/v3/domains").status_code == 401
        assert analyst.get("/v3/domains").status_code == 200
    assert [r["id"] for r in json.loads(_cli(settings, "list", "--account", account[0],
                                             "--json"))] == [made["id"]]
    table = _cli(settings, "list", "--account", account[0])
    assert "dashboards" in table and made["secret"][-4:] in table  # the hint: a table
    assert made["secret"] not in table                              # wraps long ids


def test_keys_refuse_unknown_keys_roles_and_accounts_in_one_line(settings, account,
                                                                 second_account) -> None:  # type: ignore[no-untyped-def]
    theirs = json.loads(_cli(settings, "list", "--account", second_account.account_id,
                             "--json"))[0]["id"]
    refused = _cli(settings, "revoke", "--account", account[0], theirs, status=2)
    assert f"No key {theirs} in use by account {account[0]}" in refused
    assert "No key nope" in _cli(settings, "revoke", "--account", account[0], "nope", status=2)
    assert "kind `domain`" in _cli(settings, "create", "--account", account[0], "--role",
                                   "sending", status=2)
    assert "Account not found" in _cli(settings, "list", "--account", "nobody", status=2)
    assert len(json.loads(_cli(settings, "list", "--account", second_account.account_id,
                               "--json"))) == 1  # still theirs
