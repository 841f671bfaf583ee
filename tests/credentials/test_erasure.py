"""SMTP logins go with the person they name, and with their account."""

from __future__ import annotations

from sqlalchemy import select

from mailhaven.credentials import service
from mailhaven.credentials.models import SmtpCredential
from mailhaven.domains.service import owned_domain
from mailhaven.privacy.erasure import erase_account, erase_recipient
from mailhaven.services import Services
from tests.support import create_tenant


def _create(services: Services, account_id: str, domain: str, login: str) -> None:
    with services.db.transaction() as session:
        service.create(session, services.vault, owned_domain(session, account_id, domain),
                       login, "the-password", services.clock)


def _logs_in(services: Services, login: str) -> bool:
    with services.db.sessions() as session:
        return service.authenticate(session, services.vault, login, "the-password") is not None


def test_erasing_a_person_deletes_the_login_that_names_them(services, account,
                                                           domain) -> None:
    _create(services, account[0], domain, "zelda")
    _create(services, account[0], domain, "postmaster")
    with services.db.transaction() as session:
        erase_recipient(session, services.vault, account[0], f"Zelda@{domain}",
                        now=services.clock.now(), data_dir=services.settings.data_dir)
    assert not _logs_in(services, f"zelda@{domain}")
    assert _logs_in(services, f"postmaster@{domain}")
    with services.db.sessions() as session:
        total, items = service.list_page(session, services.vault,
                                         owned_domain(session, account[0], domain))
    assert (total, [c.login for c in items]) == (1, [f"postmaster@{domain}"])


def test_deleting_an_account_deletes_its_logins_only(services, account, domain) -> None:
    other = create_tenant(services)
    _create(services, account[0], domain, "alice")
    _create(services, other.account_id, other.domain, "alice")
    with services.db.transaction() as session:
        erase_account(session, services.vault, account[0], now=services.clock.now(),
                      data_dir=services.settings.data_dir)
    assert not _logs_in(services, f"alice@{domain}")
    assert _logs_in(services, f"alice@{other.domain}")
    with services.db.sessions() as session:
        assert [r.account_id for r in session.scalars(select(SmtpCredential))] == [
            other.account_id]
