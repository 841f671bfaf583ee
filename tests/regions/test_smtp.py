"""SMTP in a platform split into regions: a submission as an EU domain is accepted into the
EU region; MX mail is stored in the region of each recipient's domain (once per region)."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.credentials import service as credentials
from mailhaven.domains.service import owned_domain
from mailhaven.feedback.listener import FeedbackHandler
from mailhaven.inbound.listener import MXRegion, start_mx
from mailhaven.inbound.models import InboundMessage
from mailhaven.messages.models import Message
from mailhaven.services import Platform, Services
from mailhaven.submission.auth import Logins
from mailhaven.submission.server import start_submission
from mailhaven.submission.throttle import AuthThrottle
from tests.delivery.sinks import DnsServer
from tests.regions.serving import LoopThread, RegionalTenant, tenant_in

PASSWORD = "s3cret-pass"


@pytest.fixture
def smtp_platform(regions_settings: Settings, clock: FrozenClock) -> Iterator[Platform]:
    """The us+eu platform with a loopback DNS server (the MX checks SPF) and the hostname
    clients connect to."""
    with DnsServer({}) as dns:
        opened = Platform.start(regions_settings.with_(
            hostname="127.0.0.1", dns_nameserver=dns.address), clock, migrate=False)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def tenants(smtp_platform: Platform) -> dict[str, RegionalTenant]:
    return {"us": tenant_in(smtp_platform.region("us"), "Yankee Widgets", "mg.yankee.test"),
            "eu": tenant_in(smtp_platform.region("eu"), "Europa Gmbh", "mg.europa.test")}


def _inbound(services: Services) -> list[InboundMessage]:
    with services.db.sessions() as session:
        return list(session.scalars(select(InboundMessage)))


def _mail(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Ann <ann@sender.test>", to, "Hello"
    msg["Message-ID"] = "<m1@sender.test>"
    msg.set_content("Where is my parcel?\n")
    return msg.as_bytes()


def test_mx_mail_is_stored_once_in_each_recipients_region(
        smtp_platform: Platform, tenants: dict[str, RegionalTenant]) -> None:
    us, eu = smtp_platform.region("us"), smtp_platform.region("eu")
    sock = socket.create_server(("127.0.0.1", 0))
    with LoopThread() as loop:
        server = loop.run(start_mx(us, "127.0.0.1", 0, sock=sock, regions=[
            MXRegion(s, return_paths=FeedbackHandler(s)) for s in (us, eu)]))
        try:
            with smtplib.SMTP("127.0.0.1", sock.getsockname()[1], timeout=60) as client:
                assert client.sendmail("ann@sender.test", ["help@mg.europa.test"],
                                       _mail("help@mg.europa.test")) == {}
                assert client.sendmail(
                    "ann@sender.test", ["help@mg.europa.test", "desk@mg.yankee.test"],
                    _mail("undisclosed-recipients:;")) == {}
                with pytest.raises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("ann@sender.test", ["x@mg.nowhere.test"], _mail("x"))
        finally:
            loop.run(server.aclose())
    assert sorted(m.account_id for m in _inbound(eu)) == [tenants["eu"].account_id] * 2
    assert [m.account_id for m in _inbound(us)] == [tenants["us"].account_id]
    with us.db.sessions() as session:  # the US copy names the US recipient only
        [stored] = session.scalars(select(Message)).all()
        assert stored.account_id == tenants["us"].account_id


def test_a_submission_as_an_eu_domain_is_accepted_into_the_eu_region(
        smtp_platform: Platform, tenants: dict[str, RegionalTenant]) -> None:
    us, eu = smtp_platform.region("us"), smtp_platform.region("eu")
    for region, tenant in tenants.items():
        services = smtp_platform.region(region)
        with services.db.transaction() as session:
            credentials.create(session, services.vault,
                               owned_domain(session, tenant.account_id, tenant.domain),
                               f"mailer@{tenant.domain}", PASSWORD, services.clock)
    starttls = socket.create_server(("127.0.0.1", 0))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with LoopThread() as loop:
        logins = Logins(us, AuthThrottle(us.clock, delay_step=0.01))  # the delays: test_throttle's
        submission = loop.run(start_submission(us, starttls, None, logins=logins,
                                               regions=[us, eu]))
        try:
            for tenant in tenants.values():
                with smtplib.SMTP("127.0.0.1", starttls.getsockname()[1], timeout=60) as client:
                    client.starttls(context=context)
                    client.login(f"mailer@{tenant.domain}", PASSWORD)
                    msg = EmailMessage()
                    msg["From"], msg["To"] = f"news@{tenant.domain}", "reader@example.org"
                    msg["Subject"] = f"From {tenant.region}"
                    msg.set_content("Hello\n")
                    assert client.send_message(msg) == {}
            with smtplib.SMTP("127.0.0.1", starttls.getsockname()[1], timeout=60) as client:
                client.starttls(context=context)
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login("mailer@mg.europa.test", "wrong")
        finally:
            loop.run(submission.aclose())
    for region, tenant in tenants.items():
        with smtp_platform.region(region).db.sessions() as session:
            owners = session.scalars(select(Message.account_id)).all()
        assert owners == [tenant.account_id]
