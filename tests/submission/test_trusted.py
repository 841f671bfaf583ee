"""Trusted networks: a client the operator vouches for (MAILHAVEN_SMTP_TRUSTED_NETWORKS)
submits as its domain without TLS or AUTH; everyone else still must authenticate, and the
trusted client is still held to its account's domains."""

from __future__ import annotations

import dataclasses
import smtplib

import pytest

from mailhaven.config import parse_trusted_networks
from mailhaven.services import Services
from mailhaven.submission.trusted import TrustedNetworks
from tests.submission.conftest import RunningSubmission

DOMAIN = "mg.acme.test"
MESSAGE = (f"From: Printer <scanner@{DOMAIN}>\r\nTo: ann@example.org\r\n"
           "Subject: Scan\r\n\r\nYour scan.\r\n").encode()


def _trusting(services: Services, networks: str) -> Services:
    settings = services.settings.with_(hostname="127.0.0.1",
                                       smtp_trusted_networks=parse_trusted_networks(networks))
    return dataclasses.replace(services, settings=settings)


def test_a_trusted_client_submits_without_tls_or_auth(api, services, domain) -> None:
    with RunningSubmission(_trusting(services, f"127.0.0.0/8={DOMAIN}")) as running, \
            smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        assert not client.has_extn("auth")  # no AUTH offered in the clear, even here
        refused = client.sendmail(f"scanner@{DOMAIN}", ["ann@example.org"], MESSAGE)
        assert refused == {}
    [accepted] = api.get(f"/v3/{DOMAIN}/events", params={"event": "accepted"}).json()["items"]
    assert accepted["recipient"] == "ann@example.org"
    assert accepted["method"] == "smtp"


def test_a_trusted_client_is_still_held_to_its_domains(services, domain) -> None:
    with RunningSubmission(_trusting(services, f"127.0.0.1/32={DOMAIN}")) as running, \
            smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        code, reply = client.mail("someone@elsewhere.example")
        assert (code, reply[:5]) == (550, b"5.7.1")


def test_a_client_outside_the_networks_must_authenticate(services, domain) -> None:
    with RunningSubmission(_trusting(services, f"192.0.2.0/24={DOMAIN}")) as running, \
            smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        code, _ = client.mail(f"scanner@{DOMAIN}")
        assert code == 530  # STARTTLS first, then AUTH


def test_a_network_naming_no_domain_here_is_a_temporary_refusal(services, domain) -> None:
    with RunningSubmission(_trusting(services, "127.0.0.0/8=unknown.example")) as running, \
            smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        code, reply = client.mail("scanner@unknown.example")
        assert code == 451 and b"MAILHAVEN_SMTP_TRUSTED_NETWORKS" in reply


def test_the_most_specific_network_decides(services) -> None:
    trusted = TrustedNetworks(_trusting(
        services, "10.0.0.0/8=wide.example, 10.1.2.0/24=narrow.example 2001:db8::/32=v6.example"))
    assert trusted.network_of("10.1.2.3").domain == "narrow.example"
    assert trusted.network_of("10.9.9.9").domain == "wide.example"
    assert trusted.network_of("::ffff:10.1.2.3").domain == "narrow.example"
    assert trusted.network_of("2001:db8::1").domain == "v6.example"
    assert trusted.network_of("192.0.2.1") is None
    assert trusted.network_of(None) is None


@pytest.mark.parametrize("value", ["10.0.0.0/8", "nonsense=mg.example.com", "10.0.0.0/8="])
def test_a_malformed_setting_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(ValueError, match="MAILHAVEN_SMTP_TRUSTED_NETWORKS"):
        parse_trusted_networks(value)
