"""The platform's own mail: from MAILHAVEN_SYSTEM_FROM, through our queue, DKIM-signed."""

from __future__ import annotations

import threading

import dkim
import pytest
from sqlalchemy import func, select

from mailhaven.accounts.models import Account, ApiKey
from mailhaven.config import Settings
from mailhaven.domains.models import Domain
from mailhaven.domains.reserved import is_reserved, operator_names
from mailhaven.domains.service import expected_records
from mailhaven.events.models import Event
from mailhaven.services import Services
from mailhaven.site.mail import platform_account, platform_domain, send_system_mail
from mailhaven.site.models import Platform
from tests.support import Sink, deliver_due


def _dns(services: Services):  # type: ignore[no-untyped-def]
    """A dkimpy `dnsfunc` serving the platform domain's DKIM records as we list them."""
    with services.db.sessions() as session:
        domain = session.scalar(select(Domain).join(Platform,
                                                    Platform.account_id == Domain.account_id))
        records = {e.name.lower(): e.value for e in expected_records(
            domain, services.settings.hostname) if e.kind.startswith("dkim:")}

    def dnsfunc(query: bytes, timeout: float = 5) -> bytes | None:
        value = records.get(query.decode().rstrip(".").lower())
        return value.encode() if value else None
    return dnsfunc


def test_the_default_sender_is_no_reply_at_the_host_name() -> None:
    assert Settings(hostname="mx.example.org").system_from == \
        "Mailhaven <no-reply@mx.example.org>"
    assert Settings(hostname="a.example.org").with_(hostname="b.example.org").system_from \
        == "Mailhaven <no-reply@b.example.org>"
    assert Settings(system_from="Acme <hello@acme.example>").with_(
        hostname="b.example.org").system_from == "Acme <hello@acme.example>"


def test_no_account_may_add_the_system_senders_domain() -> None:
    settings = Settings(hostname="mx.example.org", system_from="Team <team@example.com>")
    assert is_reserved("example.com", operator_names(settings))


def test_a_system_mail_reaches_the_recipient_from_the_platform_signed(services) -> None:  # type: ignore[no-untyped-def]
    services.settings = services.settings.with_(require_verified_domains=True)
    with services.db.transaction() as session:
        send_system_mail(session, services, to="ann@example.net",
                         subject="Confirm your address", text="Follow this link: https://x/1\n")
    with Sink() as sink:
        deliver_due(services, sink)

    [got] = sink.received
    message = got.message
    assert got.rcpt_tos == ["ann@example.net"]
    assert message["From"] == "Mailhaven <no-reply@mx.mailhaven.test>"
    assert message["Subject"] == "Confirm your address"
    assert got.mail_from.endswith("@mx.mailhaven.test")
    assert "Follow this link: https://x/1" in message.get_payload(decode=True).decode()
    assert b"/o/" not in got.data and b"X-Mailgun-Track: yes" not in got.data  # no tracking
    assert dkim.verify(got.data, dnsfunc=_dns(services))
    assert b"d=mx.mailhaven.test" in got.data
    with services.db.sessions() as session:
        tags = session.scalars(select(Event.event).where(
            Event.account_id == platform_account(session, services))).all()
    assert "delivered" in tags


def test_the_platform_account_is_made_once(services) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        first = platform_account(session, services)
    with services.db.transaction() as session:
        assert platform_account(session, services) == first
        send_system_mail(session, services, to="bob@example.net", subject="Hi", text="Hi\n")
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Platform)) == 1
        assert session.scalar(select(func.count()).select_from(Account)) == 1
        assert session.scalar(select(func.count()).select_from(Domain)) == 1
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 0  # nobody holds one


def test_two_processes_starting_at_once_make_one_platform(services) -> None:  # type: ignore[no-untyped-def]
    start, found, errors = threading.Barrier(2), [], []

    def first_use() -> None:
        try:
            start.wait()
            with services.db.transaction() as session:
                found.append(platform_domain(session, services).id)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert found[0] == found[1]
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 1
        assert session.scalar(select(func.count()).select_from(Domain)) == 1


def test_a_new_system_from_gets_its_domain_in_the_same_account(services) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        first = platform_domain(session, services)
    services.settings = services.settings.with_(system_from="Acme <hello@acme.example>")
    with services.db.transaction() as session:
        second = platform_domain(session, services)
    assert (second.name, second.account_id) == ("acme.example", first.account_id)


def test_a_system_from_not_at_a_domain_name_is_a_clear_error(services) -> None:  # type: ignore[no-untyped-def]
    services.settings = services.settings.with_(hostname="laptop")
    with pytest.raises(ValueError, match="MAILHAVEN_SYSTEM_FROM"), \
            services.db.transaction() as session:
        platform_domain(session, services)
