"""An account holder's export: profile, domains, keys and the rest, and never a secret."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from mailhaven.accounts.service import issue_key, key_digest, revoke_keys
from mailhaven.domains.keys import private_key
from mailhaven.domains.models import DkimKey
from mailhaven.errors import NotFound
from mailhaven.exports import export_account
from mailhaven.vault import VaultKey, load_or_create_keyring
from tests.exports.archive import read, validate
from tests.support import Sink, deliver_due

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]


@pytest.fixture
def busy_account(api, services, account, domain) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The account with a sent and delivered message, a suppression, a webhook, a webhook
    signing key, a stored template, and a second API key that was revoked."""
    with services.db.transaction() as session:
        spare = issue_key(session, account[0], description="ci", clock=services.clock)
    with services.db.transaction() as session:
        revoke_keys(session, account[0], description="ci", clock=services.clock)
    assert api.post(f"/v3/domains/{domain}/webhooks", data={
        "id": "delivered", "url": "https://hooks.acme.test/mailgun"}).status_code == 200
    signing = api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
    assert api.post(f"/v3/{domain}/templates", data={
        "name": "invoice", "description": "Invoices", "template": "<p>{{amount}}</p>",
        "headers": '{"Subject": "Your invoice"}'}).status_code == 200
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"ops@{domain}", "to": "Carol <carol@example.org>", "subject": "Invoice",
        "text": "body text"})
    assert reply.status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    assert api.post(f"/v3/{domain}/complaints", data={"address": "dave@example.org"}
                    ).status_code == 200
    return {"spare": spare, "signing": signing, "message": reply.json()["id"].strip("<>")}


def test_an_account_export_holds_profile_domains_keys_and_activity(
        services, account, domain, busy_account, tmp_path) -> None:
    seen: list[tuple[int, int]] = []
    done = export_account(services.db, services.vault, account[0], tmp_path / "acme.zip",
                          lambda n, total: seen.append((n, total)), hostname="mx.test",
                          clock=services.clock)
    export = read(done.path)
    doc = export.document
    validate(doc)
    assert doc["subject"] == {"kind": "account holder", "account_id": account[0]}
    found = doc["categories"]
    assert list(found) == ["profile", "users", "domains", "api_keys", "events", "messages",
                           "suppressions", "webhooks", "smtp_credentials", "templates", "routes",
                           "list_members", "consents", "requests", "disclosures",
                           "transfers"]
    [template] = found["templates"]
    assert (template["domain"], template["name"], template["description"]) == (
        domain, "invoice", "Invoices")
    assert [(v["tag"], v["template"], v["headers"]) for v in template["versions"]] == [
        ("initial", "<p>{{amount}}</p>", {"Subject": "Your invoice"})]
    assert done.rows == {name: len(rows) for name, rows in found.items()}

    [profile] = found["profile"]
    assert (profile["name"], profile["email"], profile["region"]) == (
        "Acme", "ops@acme.test", "us")
    assert [(u["role"], u["email"]) for u in found["users"]] == [
        ("account holder", "ops@acme.test")]
    [mg] = found["domains"]
    assert mg["name"] == domain and mg["tracking"]["opens"] is False
    purposes = [r["purpose"] for r in mg["dns_records"]]
    assert (purposes[0], purposes[1][:5], purposes[-1]) == ("spf", "dkim:", "mx")
    assert mg["dns_records"][-1]["value"] == "mx.test"
    assert [k["state"] for k in mg["dkim_keys"]] == ["active"]
    keys = {k["hint"]: k for k in found["api_keys"]}
    assert set(keys) == {account[1][-4:], busy_account["spare"][-4:]}
    assert keys[busy_account["spare"][-4:]]["revoked_at"] is not None
    assert sorted(e["event"] for e in found["events"]) == ["accepted", "delivered"]
    assert [m["message_id"] for m in found["messages"]] == [busy_account["message"]]
    assert [(s["list"], s["value"]) for s in found["suppressions"]] == [
        ("complaints", "dave@example.org")]
    assert [w["url"] for w in found["webhooks"]] == ["https://hooks.acme.test/mailgun"]
    assert [len(export.csv(name)) for name in found] == [len(rows) for rows in found.values()]

    total = sum(done.rows.values())
    assert seen[-1] == (total, total)
    assert [n for n, _ in seen] == sorted(n for n, _ in seen)


def test_an_account_export_holds_no_secret(services, account, domain, busy_account,
                                           tmp_path) -> None:
    """No API key or digest, no DKIM private key, no webhook signing key, no master-key
    material: searched for in the zip's bytes and in every file it holds."""
    export = read(export_account(services.db, services.vault, account[0],
                                 tmp_path / "acme.zip").path)
    keyring = load_or_create_keyring(services.settings.resolved_master_key_file)
    secrets = [keyring.kek, keyring.index_key, base64.b64encode(keyring.kek),
               base64.b64encode(keyring.index_key), busy_account["signing"].encode()]
    for api_key in (account[1], busy_account["spare"]):
        secrets += [api_key.encode(), key_digest(api_key).encode()]
    with services.db.sessions() as session:
        for dkim in session.scalars(select(DkimKey)):
            pem = private_key(services.vault, dkim)
            body = b"".join(pem.splitlines()[1:-1])
            secrets += [dkim.private_key, pem, body[:40], body[-40:]]
        secrets += [k.wrapped_key for k in session.scalars(select(VaultKey))]
    assert len(secrets) > 10
    for secret in secrets:
        assert not export.contains(secret), secret[:12]
    assert export.contains(b"ops@acme.test")  # the search can see what is there


def test_an_unknown_account_has_no_export(services, tmp_path) -> None:
    with pytest.raises(NotFound):
        export_account(services.db, services.vault, "nope", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_the_cli_writes_either_export(settings, account, busy_account, tmp_path) -> None:
    env = {**os.environ, "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "privacy", "export", "--account", account[0], *args],
                              env=env, capture_output=True, text=True, timeout=120)

    whole = cli("--out", str(tmp_path / "acme.zip"), "--json")
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["rows"]["events"] == 2
    validate(read(tmp_path / "acme.zip").document)

    one = cli("--recipient", "carol@example.org", "--out", str(tmp_path / "carol.zip"))
    assert one.returncode == 0, one.stderr
    assert "carol.zip" in one.stdout
    assert read(tmp_path / "carol.zip").document["subject"]["address"] == "carol@example.org"

    missing = cli("--recipient", "nobody@example.org", "--out", str(tmp_path / "no.zip"))
    assert missing.returncode == 2 and "Recipient not found" in missing.stderr
    assert not (tmp_path / "no.zip").exists()
