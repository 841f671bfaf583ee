"""SPF, DKIM and DMARC at intake, resolved through a loopback DNS server: what they found is
recorded on the queue row and told in the stored message's Authentication-Results and
Mailgun's X-Mailgun-* headers. Failing mail is still accepted (recorded, not enforced)."""

from __future__ import annotations

import base64
import socket
import tracemalloc

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailhaven.clock import monotonic
from mailhaven.inbound.auth import authenticate
from tests.inbound.conftest import message, parsed, rows, stored_mime

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _txt(value: str) -> str:
    """A TXT record's text as zone files write it: quoted strings of at most 255 octets."""
    return " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))


ZONE = {
    "good.test": {"TXT": [_txt("v=spf1 ip4:127.0.0.1 -all")]},
    "_dmarc.good.test": {"TXT": [_txt("v=DMARC1; p=reject")]},
    "sel._domainkey.good.test": {"TXT": [_txt(f"v=DKIM1; k=rsa; p={PUBLIC}")]},
    "bad.test": {"TXT": [_txt("v=spf1 ip4:192.0.2.1 -all")]},
    "_dmarc.bad.test": {"TXT": [_txt("v=DMARC1; p=quarantine")]},
    "sel._domainkey.bad.test": {"TXT": [_txt(f"v=DKIM1; k=rsa; p={PUBLIC}")]},
    "soft.test": {"TXT": [_txt("v=spf1 ip4:192.0.2.1 ~all")]},
    # the organizational domain's policy covers its subdomains (relaxed alignment)
    "_dmarc.org.test": {"TXT": [_txt("v=DMARC1; p=none; aspf=r")]},
    "mail.org.test": {"TXT": [_txt("v=spf1 ip4:127.0.0.1 -all")]},
}


@pytest.fixture
def zone() -> dict[str, dict[str, list[str]]]:
    return ZONE


def _signed(domain: str, **fields: str) -> bytes:
    raw = message(sender=f"Ann <ann@{domain}>", **fields)
    return dkim.sign(raw, b"sel", domain.encode(), PRIVATE,
                     include_headers=[b"from", b"to", b"subject"]) + raw


def _received(services):  # type: ignore[no-untyped-def]
    [row] = rows(services)
    return row, parsed(stored_mime(services, row.message_id))


def test_spf_dkim_and_dmarc_pass(mx, services) -> None:
    mx.send("ann@good.test", ["support@mg.acme.test"], _signed("good.test"))
    row, got = _received(services)
    assert (row.spf, row.dkim, row.dmarc) == ("pass", "pass", "pass")
    assert got["X-Mailgun-Spf"] == "Pass"
    assert got["X-Mailgun-Dkim-Check-Result"] == "Pass"
    results = " ".join(got["Authentication-Results"].split())
    assert results.startswith("mx.mailhaven.test;")
    assert "spf=pass smtp.mailfrom=good.test" in results
    assert "dkim=pass header.d=good.test" in results
    assert "dmarc=pass (p=reject) header.from=good.test" in results
    assert dkim.verify(stored_mime(services, row.message_id),  # our headers break nothing
                       dnsfunc=lambda *_a, **_k: f"v=DKIM1; k=rsa; p={PUBLIC}".encode())


def test_spf_fail_a_broken_signature_and_dmarc_fail_are_recorded_not_refused(mx,
                                                                              services) -> None:
    signed = _signed("bad.test").replace(b"Where is my parcel?", b"Pay this invoice now!")
    mx.send("ann@bad.test", ["support@mg.acme.test"], signed)
    row, got = _received(services)
    assert (row.spf, row.dkim, row.dmarc) == ("fail", "fail", "fail")
    assert got["X-Mailgun-Spf"] == "Fail"
    assert got["X-Mailgun-Dkim-Check-Result"] == "Fail"
    results = " ".join(got["Authentication-Results"].split())
    assert "spf=fail" in results and "dkim=fail" in results
    assert "dmarc=fail (p=quarantine) header.from=bad.test" in results


def test_softfail_and_no_records_at_all(mx, services) -> None:
    mx.send("ann@soft.test", ["a@mg.acme.test"], message(sender="ann@soft.test"))
    mx.send("ann@nothing.test", ["b@mg.acme.test"], message(sender="ann@nothing.test"))
    soft, nothing = rows(services)
    assert (soft.spf, soft.dkim, soft.dmarc) == ("softfail", "none", "none")
    assert parsed(stored_mime(services, soft.message_id))["X-Mailgun-Spf"] == "SoftFail"
    assert (nothing.spf, nothing.dkim, nothing.dmarc) == ("none", "none", "none")
    got = parsed(stored_mime(services, nothing.message_id))
    assert (got["X-Mailgun-Spf"], got["X-Mailgun-Dkim-Check-Result"]) == ("None", "None")


def test_dmarc_aligns_a_subdomain_with_its_organizational_domain(mx, services) -> None:
    mx.send("bounces@mail.org.test", ["a@mg.acme.test"], message(sender="news@org.test"))
    row, got = _received(services)
    assert (row.spf, row.dmarc) == ("pass", "pass")
    assert "dmarc=pass (p=none) header.from=org.test" in " ".join(
        got["Authentication-Results"].split())


def test_a_null_sender_is_checked_by_its_helo_and_kept_empty(mx, services) -> None:
    mx.send("", ["a@mg.acme.test"], message(sender="MAILER-DAEMON@good.test"))
    row, got = _received(services)
    assert row.sender_sealed is None and row.sender_index is None
    assert got["X-Envelope-From"] == "<>"


def test_forged_authentication_headers_are_renamed_and_ours_alone_count(mx, services) -> None:
    forged = (b"Authentication-Results: mx.mailhaven.test;\r\n\tspf=pass smtp.mailfrom=ceo.test\r\n"
              b"Authentication-Results: relay.example.org; dkim=pass header.d=example.org\r\n"
              b"X-Mailgun-Spf: Pass\r\nX-Mailgun-Sflag: No\r\nX-Mailgun-Sscore: -10\r\n"
              b"X-Mailgun-Dkim-Check-Result: Pass\r\nX-Mailgun-Incoming: Yes\r\n"
              b"x-envelope-from: <ceo@acme.test>\r\n")
    mx.send("ann@soft.test", ["support@mg.acme.test"], forged + message())
    _, got = _received(services)
    # ours are the only ones of their names: a route matching a value sees ours only
    assert got.get_all("X-Mailgun-Spf") == ["SoftFail"]
    assert got.get_all("X-Mailgun-Sscore") == ["0.0"]
    assert got.get_all("X-Mailgun-Dkim-Check-Result") == ["None"]
    assert got.get_all("X-Mailgun-Incoming") == ["Yes"]
    assert got.get_all("X-Envelope-From") == ["<ann@soft.test>"]
    [ours, relay] = got.get_all("Authentication-Results")
    assert ours.startswith("mx.mailhaven.test;") and "spf=softfail" in ours
    assert relay.startswith("relay.example.org;")  # another host's: not ours to judge
    # what the sender wrote is kept, under names nobody trusts
    assert got["X-Original-X-Mailgun-Spf"] == "Pass"
    assert got["X-Original-X-Envelope-From"] == "<ceo@acme.test>"
    assert "smtp.mailfrom=ceo.test" in got["X-Original-Authentication-Results"]


def test_a_nameserver_that_never_answers_ends_the_checks_at_their_deadline() -> None:
    """The thread must stop with its budget (its caller stops waiting then): each lookup's
    lifetime is cut to what is left, and none starts after the deadline."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blackhole:
        blackhole.bind(("127.0.0.1", 0))  # takes the queries, answers none
        verdicts = authenticate(
            _signed("good.test"), ip="127.0.0.1", helo="client.good.test",
            mail_from="ann@good.test", from_header="Ann <ann@good.test>",
            nameserver=blackhole.getsockname(), deadline=monotonic() + 0.5)
    assert (verdicts.spf, verdicts.dkim, verdicts.dmarc) == (
        "temperror", "temperror", "temperror")


def test_authenticating_a_message_of_empty_lines_holds_about_its_size() -> None:
    """dkimpy split a whole message into a list of lines: 25 MB of empty lines held a
    gigabyte. Now the body is handed over whole."""
    raw = _signed("good.test") + b"\r\n" * (4 * 1024 * 1024)
    tracemalloc.start()
    try:
        authenticate(raw, ip="127.0.0.1", helo="client.good.test", mail_from="ann@good.test",
                     from_header="Ann <ann@good.test>", nameserver=("127.0.0.1", 9),
                     deadline=monotonic())  # no lookups: memory only
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(raw)
