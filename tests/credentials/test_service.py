"""The credentials service on both databases: what SMTP AUTH may log in with, and what is
stored of it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import select, update

from mailhaven.audit import open_sealed
from mailhaven.audit.models import AuditEntry
from mailhaven.credentials import service
from mailhaven.credentials.models import SmtpCredential
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.domains.service import create_domain, delete_domain, owned_domain
from mailhaven.errors import BadRequest, NotFound
from mailhaven.services import Services
from tests.support import DatabaseDump, create_tenant

PASSWORD = "correct horse 42"
DOMAIN = "mg.acme.test"


def _create(services: Services, account_id: str, login: str, password: str = PASSWORD,
            domain: str = DOMAIN) -> service.Credential:
    with services.db.transaction() as session:
        return service.create(session, services.vault, owned_domain(session, account_id, domain),
                              login, password, services.clock, actor="cli")


def _auth(services: Services, login: str, password: str) -> service.Credential | None:
    with services.db.sessions() as session:
        return service.authenticate(session, services.vault, login, password)


def _on_domain(services: Services, account_id: str, work: Callable, domain: str = DOMAIN):  # type: ignore[no-untyped-def, type-arg]
    with services.db.transaction() as session:
        return work(session, owned_domain(session, account_id, domain))


def test_a_login_authenticates_with_its_password_only(services, account, domain) -> None:
    created = _create(services, account[0], f"alice@{domain}")
    assert created.login == f"alice@{domain}"

    found = _auth(services, f"alice@{domain}", PASSWORD)
    assert found == created
    assert (found.account_id, found.domain_name, found.login) == (account[0], domain,
                                                                   f"alice@{domain}")
    assert _auth(services, f"alice@{domain}", "correct horse 43") is None
    assert _auth(services, f"bob@{domain}", PASSWORD) is None
    assert _auth(services, "alice@mg.nobody.test", PASSWORD) is None
    assert _auth(services, "alice", PASSWORD) is None
    assert _auth(services, "", PASSWORD) is None


def test_a_bare_local_part_gets_the_domain_and_logins_ignore_case(services, account,
                                                                   domain) -> None:
    created = _create(services, account[0], "  Alice.Smith ")
    assert created.login == f"alice.smith@{domain}"
    assert _auth(services, "ALICE.Smith@MG.Acme.Test", PASSWORD) == created
    with pytest.raises(BadRequest, match="already exists"):
        _create(services, account[0], f"alice.smith@{domain.upper()}")


@pytest.mark.parametrize(("login", "message"), [
    ("", "Parameter 'login' is missing"),
    ("   ", "Parameter 'login' is missing"),
    ("alice@mg.other.test", "must be an address of the domain mg.acme.test"),
    ("alice@acme.test", "must be an address of the domain"),
    ("@mg.acme.test", "is not a valid login"),
    ("al ice", "is not a valid login"),
    ("a/b", "is not a valid login"),
    (".alice", "is not a valid login"),
    ("al..ice", "is not a valid login"),
    ("a" * 65, "is not a valid login"),
])
def test_logins_mailgun_would_not_take_are_refused(services, account, domain, login,
                                                   message) -> None:
    with pytest.raises(BadRequest, match=message):
        _create(services, account[0], login)


def test_passwords_must_be_5_to_32_characters(services, account, domain) -> None:
    for password in ("1234", "x" * 33, ""):
        with pytest.raises(BadRequest) as refused:
            _create(services, account[0], "alice", password)
        assert refused.value.message == "password should be in range 5-32 characters"
    _create(services, account[0], "five", "12345")
    _create(services, account[0], "long", "é" * 32)  # characters, not bytes
    assert _auth(services, f"five@{domain}", "12345") is not None
    assert _auth(services, f"long@{domain}", "é" * 32) is not None


def test_a_changed_password_replaces_the_old_one(services, account, domain) -> None:
    _create(services, account[0], "alice")
    changed = _on_domain(services, account[0], lambda s, d: service.change_password(
        s, services.vault, d, f"alice@{domain}", "new secret", services.clock))
    assert changed.login == f"alice@{domain}"
    assert _auth(services, f"alice@{domain}", PASSWORD) is None
    assert _auth(services, f"alice@{domain}", "new secret") == changed
    _on_domain(services, account[0], lambda s, d: service.change_password(
        s, services.vault, d, "alice", "newer secret", services.clock))  # bare, as the SDK
    assert _auth(services, f"alice@{domain}", "newer secret") is not None
    for login in ("bob", "alice@mg.other.test", "a/b"):
        with pytest.raises(NotFound, match="Credentials not found"):
            _on_domain(services, account[0], lambda s, d: service.change_password(
                s, services.vault, d, login, "whatever", services.clock))
    with pytest.raises(BadRequest, match="5-32"):
        _on_domain(services, account[0], lambda s, d: service.change_password(
            s, services.vault, d, "alice", "1234", services.clock))


def test_deleting_one_login_and_then_all(services, account, domain) -> None:
    for login in ("alice", "bob", "carol"):
        _create(services, account[0], login)
    spec = _on_domain(services, account[0],
                      lambda s, d: service.delete(s, services.vault, d, "alice"))
    assert spec == f"alice@{domain}"
    assert _auth(services, f"alice@{domain}", PASSWORD) is None
    assert _auth(services, f"bob@{domain}", PASSWORD) is not None
    with pytest.raises(NotFound, match="Credentials not found"):
        _on_domain(services, account[0],
                   lambda s, d: service.delete(s, services.vault, d, "alice"))

    assert _on_domain(services, account[0],
                      lambda s, d: service.delete_all(s, services.vault, d)) == 2
    assert _auth(services, f"bob@{domain}", PASSWORD) is None
    assert _on_domain(services, account[0],
                      lambda s, d: service.delete_all(s, services.vault, d)) == 0


def test_a_page_of_logins_oldest_first_with_the_total(services, account, domain,
                                                      clock) -> None:
    for n in range(5):
        _create(services, account[0], f"user{n}", "password")
        clock.advance(1)
    other = create_tenant(services)
    _create(services, other.account_id, "user9", domain=other.domain)

    def page(skip: int, limit: int) -> tuple[int, list[str]]:
        total, items = _on_domain(services, account[0], lambda s, d: service.list_page(
            s, services.vault, d, skip=skip, limit=limit))
        return total, [c.login for c in items]

    assert page(0, 100) == (5, [f"user{n}@{domain}" for n in range(5)])
    assert page(1, 2) == (5, [f"user1@{domain}", f"user2@{domain}"])
    assert page(5, 2) == (5, [])


def test_each_account_logs_in_to_its_own_copy_until_one_verifies_the_name(services,
                                                                          account) -> None:
    """Unverified copies of one name may be in several accounts, each with its own logins;
    once an account verifies the name, only its logins work."""
    shared = "mg.shared.test"
    other = create_tenant(services, domain=shared)
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": shared}, services.clock)
    mine = _create(services, account[0], "postmaster", "mine-secret", domain=shared)
    theirs = _create(services, other.account_id, "postmaster", "their-secret", domain=shared)

    assert _auth(services, f"postmaster@{shared}", "mine-secret") == mine
    assert _auth(services, f"postmaster@{shared}", "their-secret") == theirs
    assert mine.account_id == account[0] and theirs.account_id == other.account_id

    with services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.id == theirs.domain_id)
                        .values(state=ACTIVE_DOMAIN))
    assert _auth(services, f"postmaster@{shared}", "mine-secret") is None
    assert _auth(services, f"postmaster@{shared}", "their-secret") == theirs


def test_a_login_and_password_in_two_accounts_proves_neither(services, account) -> None:
    """While several accounts hold unverified copies of a name, the same login with the same
    password in two of them is nobody's: AUTH can't tell whose submission it is."""
    shared = "mg.shared.test"
    other = create_tenant(services, domain=shared)
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": shared}, services.clock)
    mine = _create(services, account[0], "postmaster", "same-secret", domain=shared)
    assert _auth(services, f"postmaster@{shared}", "same-secret") == mine
    _create(services, other.account_id, "postmaster", "same-secret", domain=shared)
    assert _auth(services, f"postmaster@{shared}", "same-secret") is None


def test_an_unknown_login_costs_one_verification_as_a_wrong_password_does(
        services, account, domain, monkeypatch) -> None:
    """No timing in tests: instead, count the argon2id verifications each attempt makes."""
    _create(services, account[0], "alice")
    verified: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(service, "HASHER", Counting.from_parameters(
        profiles.RFC_9106_LOW_MEMORY))  # the service's parameters: the same cost
    for login in (f"alice@{domain}", f"nobody@{domain}", "nobody@mg.nowhere.test", "junk"):
        verified.clear()
        assert _auth(services, login, "wrong password") is None
        assert len(verified) == 1, login
        assert verified[0].startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_only_sealed_login_and_argon2id_hash_are_stored(services, account, domain,
                                                       raw_dump) -> None:
    _create(services, account[0], "zelda.private", "hunter2-secret")
    dump: DatabaseDump = raw_dump()
    assert dump.holding(b"zelda.private") == []
    assert dump.holding(b"hunter2-secret") == []
    with services.db.sessions() as session:
        row = session.scalars(select(SmtpCredential)).one()
        assert row.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert row.key_id is not None and row.account_id == account[0]


def test_credential_changes_are_audited_with_the_login_sealed(services, account,
                                                              domain) -> None:
    _create(services, account[0], "alice")
    _on_domain(services, account[0], lambda s, d: service.change_password(
        s, services.vault, d, "alice", "another one", services.clock, actor="cli"))
    _on_domain(services, account[0], lambda s, d: service.delete(
        s, services.vault, d, "alice", services.clock, actor="cli"))
    _create(services, account[0], "bob")
    _on_domain(services, account[0], lambda s, d: service.delete_all(
        s, services.vault, d, services.clock, actor="cli"))
    with services.db.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).where(
            AuditEntry.action.like("credentials.%")).order_by(AuditEntry.id)))
        assert [e.action for e in entries] == [
            "credentials.created", "credentials.password_changed", "credentials.deleted",
            "credentials.created", "credentials.deleted_all"]
        assert [open_sealed(session, services.vault, e) for e in entries] == [
            {"login": f"alice@{domain}"}] * 3 + [{"login": f"bob@{domain}"}, None]
        assert all(f"@{domain}" not in (e.details or "") for e in entries)
        assert json.loads(entries[-1].details)["count"] == 1


def test_deleting_the_domain_deletes_its_logins(services, account, domain) -> None:
    _create(services, account[0], "alice")
    with services.db.transaction() as session:
        delete_domain(session, account[0], domain)
    with services.db.sessions() as session:
        assert session.scalars(select(SmtpCredential)).all() == []
    assert _auth(services, f"alice@{domain}", PASSWORD) is None


def test_a_login_has_one_canonical_spelling(services, account, domain) -> None:
    """AUTH takes a login however its domain is spelled; the spellings have one form, the
    one failed logins are counted under."""
    made = _create(services, account[0], "alice")
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in domain)
    spellings = [f"alice@{domain}", f" ALICE@{domain.upper()}. ", f"alice@{domain}...",
                 f"alice@{wide}"]
    assert {service.canonical_login(s) for s in spellings} == {f"alice@{domain}"}
    for spelling in spellings:
        assert _auth(services, spelling, PASSWORD) == made, spelling
