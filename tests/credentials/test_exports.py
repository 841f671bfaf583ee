"""SMTP logins in the access and portability exports: the login, never the password."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select

from mailhaven.credentials.models import SmtpCredential
from mailhaven.exports import export_account
from tests.exports.archive import read, validate

CREDENTIALS = "/v3/domains/mg.acme.test/credentials"


def test_the_account_export_lists_logins_without_passwords(api, services, account, domain,
                                                            tmp_path) -> None:
    assert api.post(CREDENTIALS, data={"login": ["alice", "bob"],
                                       "password": ["alice-secret", "bob-secret"]}
                    ).status_code == 200
    export = read(export_account(services.db, services.vault, account[0],
                                 tmp_path / "acme.zip").path)
    validate(export.document)
    rows = export.document["categories"]["smtp_credentials"]
    assert sorted((r["domain"], r["login"]) for r in rows) == [
        (domain, f"alice@{domain}"), (domain, f"bob@{domain}")]
    assert len(export.csv("smtp_credentials")) == 2
    with services.db.sessions() as session:
        hashes = [row.password_hash for row in session.scalars(select(SmtpCredential))]
    for secret in (b"alice-secret", b"bob-secret", *(h.encode() for h in hashes)):
        assert not export.contains(secret)


def test_a_recipient_export_holds_the_login_that_names_them_only(api, domain) -> None:
    assert api.post(CREDENTIALS, data={"login": ["alice", "bob"],
                                       "password": ["alice-secret", "bob-secret"]}
                    ).status_code == 200
    reply = api.get(f"/v1/privacy/recipients/{quote(f'Alice@{domain}', safe='')}")
    assert reply.status_code == 200, reply.text
    export = read(reply.content)
    validate(export.document)
    [row] = export.document["categories"]["smtp_credentials"]
    assert row["login"] == f"alice@{domain}"
    assert not export.contains(f"bob@{domain}".encode())
