"""DKIM: what arrives verifies against the key the domain API tells the user to publish."""

from __future__ import annotations

import base64

import dkim
import dkim.util

from tests.delivery.dkim_check import from_records, signatures, verify_each
from tests.delivery.sinks import send
from tests.support import Sink, deliver_due


def dkim_record(api, domain: str) -> dict:  # type: ignore[no-untyped-def]
    records = api.get(f"/v3/domains/{domain}").json()["sending_dns_records"]
    [record] = [r for r in records if "._domainkey." in r["name"]]
    return record


def published_key(api, domain: str):  # type: ignore[no-untyped-def]
    """A dkimpy `dnsfunc` serving the TXT record from GET /v3/domains/{domain}."""
    record = dkim_record(api, domain)
    key = record["value"].split("p=", 1)[1].strip()

    def dnsfunc(query: bytes, timeout: float = 5) -> bytes | None:
        if query.decode().rstrip(".").lower() == record["name"].lower():
            return f"v=DKIM1; k=rsa; p={key}".encode()
        return None
    return dnsfunc


def signature_tags(data: bytes) -> dict[str, str]:
    headers, _ = dkim.rfc822_parse(data)
    value = next(v for k, v in headers if k.lower() == b"dkim-signature")
    return {k.decode(): b"".join(v.split()).decode()
            for k, v in dkim.util.parse_tag_value(value).items()}


def test_a_delivered_message_carries_a_valid_signature(api, services, domain) -> None:
    send(api, domain, {"text": "Hi Ann,\n\nYour order has shipped.\n", "html": "<p>Shipped</p>",
                       "h:Reply-To": "help@mg.acme.test", "v:order": "1234"})
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received

    assert dkim.verify(got.data, dnsfunc=published_key(api, domain))
    tags = signature_tags(got.data)
    assert tags["d"] == domain
    assert tags["s"] == dkim_record(api, domain)["name"].split("._domainkey.")[0]
    assert tags["a"] == "rsa-sha256"
    signed = tags["h"].lower().split(":")
    for header in ("from", "to", "subject", "date", "message-id", "reply-to",
                   "x-mailgun-variables"):
        assert header in signed


def test_tampering_with_the_body_breaks_the_signature(api, services, domain) -> None:
    send(api, domain, {"text": "Pay invoice 1001 to account 12345"})
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    dnsfunc = published_key(api, domain)
    assert dkim.verify(got.data, dnsfunc=dnsfunc)

    assert b"12345" in got.data
    assert not dkim.verify(got.data.replace(b"12345", b"99999"), dnsfunc=dnsfunc)
    assert not dkim.verify(got.data.replace(b"Subject: Hello", b"Subject: Hellp"),
                           dnsfunc=dnsfunc)


def test_a_message_sent_with_dkim_off_is_not_signed(api, services, domain) -> None:
    send(api, domain, {"o:dkim": "no"})
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    assert got.message["DKIM-Signature"] is None
    assert b"dkim-signature" not in got.data.lower()


def test_a_non_ascii_message_with_an_attachment_still_verifies(
        api, services, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": "Zoë <news@mg.acme.test>", "to": "Ann <ann@example.org>",
        "subject": "Grüße aus Köln — Ihr Paket", "text": "Schöne Grüße!\n" + "ä" * 300,
        "html": "<p>Schöne Grüße!</p>",
    }, files={"attachment": ("bericht.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 20,
                             "application/pdf")})
    assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    assert got.message["Subject"] == "Grüße aus Köln — Ihr Paket"
    assert dkim.verify(got.data, dnsfunc=published_key(api, domain))


def test_a_mime_message_with_bare_newlines_is_signed_and_verifies(
        api, services, domain) -> None:
    mime = ("From: Acme <news@mg.acme.test>\n"
            "To: ann@example.org\n"
            "Subject: Raw MIME\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "\n"
            "Line one\n"
            "Line two\n")
    reply = api.post(f"/v3/{domain}/messages.mime",
                     data={"to": "ann@example.org", "message": mime})
    assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    assert got.message["Subject"] == "Raw MIME"
    assert dkim.verify(got.data, dnsfunc=published_key(api, domain))
    signed = signature_tags(got.data)["h"].lower().split(":")
    for header in ("from", "to", "subject", "message-id"):
        assert header in signed


# -- Ed25519 (RFC 8463), signed beside RSA -------------------------------------------------
RFC8463_SIGNED = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    b" subject : date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    b" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    b"From: Joe SixPack <joe@football.example.com>\r\n"
    b"To: Suzie Q <suzie@shopping.example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    b"\r\n"
    b"Hi.\r\n"
    b"\r\n"
    b"We lost the game.  Are you hungry yet?\r\n"
    b"\r\n"
    b"Joe.\r\n"
)
RFC8463_RECORD = {"name": "brisbane._domainkey.football.example.com",
                  "value": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}


def test_the_ed25519_check_accepts_rfc_8463s_example_and_nothing_else() -> None:
    """What the tests below lean on, checked against a signature made elsewhere."""
    dnsfunc = from_records([RFC8463_RECORD])
    assert verify_each(RFC8463_SIGNED, dnsfunc) == [("ed25519-sha256", "brisbane", True)]
    for tampered in (RFC8463_SIGNED.replace(b"hungry", b"angry"),
                     RFC8463_SIGNED.replace(b"dinner", b"lunch")):
        assert verify_each(tampered, dnsfunc) == [("ed25519-sha256", "brisbane", False)]


def test_an_ed25519_domain_signs_with_rsa_and_ed25519_and_both_verify(api, services) -> None:
    reply = api.post("/v3/domains", data={"name": "ed.acme.test", "dkim_algorithm": "ed25519",
                                          "dkim_key_size": "1024", "dkim_selector": "s1"})
    assert reply.status_code == 200, reply.text
    records = reply.json()["sending_dns_records"]
    dkim_records = [(r["name"], r["value"].split("p=")[0]) for r in records
                    if "._domainkey." in r["name"]]
    assert dkim_records == [("s1._domainkey.ed.acme.test", "k=rsa; "),
                            ("s1-ed._domainkey.ed.acme.test", "v=DKIM1; k=ed25519; ")]
    ed_key = base64.b64decode(records[2]["value"].split("p=")[1])
    assert len(ed_key) == 32  # the bare Ed25519 key, as RFC 8463 publishes it

    send(api, "ed.acme.test", {"text": "Hi Ann,\n\nYour order has shipped.\n"})
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received

    dnsfunc = from_records(records)
    assert verify_each(got.data, dnsfunc) == [("rsa-sha256", "s1", True),
                                              ("ed25519-sha256", "s1-ed", True)]
    assert dkim.verify(got.data, dnsfunc=dnsfunc)  # a receiver that reads only the top one
    assert verify_each(got.data.replace(b"shipped", b"shopped"), dnsfunc) == [
        ("rsa-sha256", "s1", False), ("ed25519-sha256", "s1-ed", False)]
    assert all(t["d"] == "ed.acme.test" for t in signatures(got.data))
