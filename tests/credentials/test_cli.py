"""`mailhaven credentials add|list|delete`, run as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mailhaven.credentials import service
from mailhaven.services import Services
from tests.support import create_tenant

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]


def _cli(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([*CLI, "credentials", *args], env={**os.environ, **env},
                          input=stdin, capture_output=True, text=True, timeout=120)


def _logs_in(services: Services, login: str, password: str) -> bool:
    with services.db.sessions() as session:
        return service.authenticate(session, services.vault, login, password) is not None


def test_add_generates_a_password_shown_once_then_list_and_delete(settings, services,
                                                                   account, domain) -> None:
    added = _cli(settings, "add", f"alice@{domain}", "--json")
    assert added.returncode == 0, added.stderr
    made = json.loads(added.stdout)
    assert made["login"] == f"alice@{domain}" and len(made["password"]) == 32
    assert _logs_in(services, f"alice@{domain}", made["password"])

    human = _cli(settings, "add", f"bob@{domain}")
    assert human.returncode == 0, human.stderr
    [password] = [line.split(": ", 1)[1] for line in human.stdout.splitlines()
                  if line.startswith("Password (shown this once)")]
    assert _logs_in(services, f"bob@{domain}", password)

    chosen = _cli(settings, "add", f"carol@{domain}", "--password-stdin", "--json",
                  stdin="carol-secret\n")
    assert chosen.returncode == 0, chosen.stderr
    assert "password" not in json.loads(chosen.stdout)  # the operator's own: not echoed
    assert _logs_in(services, f"carol@{domain}", "carol-secret")

    listed = _cli(settings, "list", domain, "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["total_count"] == 3
    assert sorted(i["login"] for i in body["items"]) == [
        f"alice@{domain}", f"bob@{domain}", f"carol@{domain}"]
    assert made["password"] not in listed.stdout
    table = _cli(settings, "list", domain)
    assert table.returncode == 0 and f"carol@{domain}" in table.stdout

    deleted = _cli(settings, "delete", f"alice@{domain}", "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["spec"] == f"alice@{domain}"
    assert not _logs_in(services, f"alice@{domain}", made["password"])


def test_refusals_are_one_line_and_status_2(settings, services, account, domain) -> None:
    for args, stdin, message in [
        (("add", "alice"), None, "not a full login"),
        (("add", "alice@mg.nowhere.test"), None, "Domain not found"),
        (("add", f"alice@{domain}", "--password-stdin"), "1234\n", "range 5-32"),
        (("delete", f"nobody@{domain}"), None, "Credentials not found"),
        (("list", "mg.nowhere.test"), None, "Domain not found"),
    ]:
        result = _cli(settings, *args, stdin=stdin)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_a_name_in_several_accounts_needs_the_account(settings, services, account) -> None:
    create_tenant(services, domain="mg.shared.test")
    create_tenant(services, name="Cee", domain="mg.shared.test")
    result = _cli(settings, "add", "alice@mg.shared.test")
    assert result.returncode == 2 and "--account" in result.stderr
