"""Messages submitted over SMTP go the way of `POST /messages.mime`: accepted in one
transaction before the 250, delivered signed, told by events and webhooks — and refused
with the API's reasons as SMTP replies."""

from __future__ import annotations

import json
import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

import pytest

from mailhaven.sending.request import MAX_MESSAGE_BYTES
from tests.delivery.dkim_check import from_records, verify_each
from tests.submission.conftest import LOGIN, PASSWORD, RunningSubmission
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks

DOMAIN = "mg.acme.test"


def _message(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Acme <news@{DOMAIN}>"
    message["To"] = "Ann <ann@example.org>"
    message["Subject"] = "Your order"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hi Ann,\n\nYour order has shipped.\n")
    return message


def _wire(message: EmailMessage) -> bytes:
    """The message as a client puts it on the wire: CRLF line ends (smtplib's `data` sends
    bytes as given)."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _client(submission: RunningSubmission) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", submission.port, timeout=60)
    client.starttls(context=submission.context())
    client.login(LOGIN, PASSWORD)
    return client


def _events(api, event: str | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    params = {"ascending": "yes", **({"event": event} if event else {})}
    return api.get(f"/v3/{DOMAIN}/events", params=params).json()["items"]


def test_a_submitted_message_is_accepted_before_250_delivered_signed_and_reported(
        api, services, submission) -> None:
    message = _message(X_Mailgun_Tag="welcome", X_Mailgun_Track="no",
                       X_Mailgun_Variables=json.dumps({"order": "1234"}),
                       X_Mailgun_Dkim="yes")
    message["X-Mailgun-Tag"] = "onboarding"
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v4/domains/{DOMAIN}/webhooks",
                 data={"url": receiver.url, "event_types": ["accepted", "delivered"]})
        with _client(submission) as client:
            client.mail(f"news@{DOMAIN}")
            client.rcpt("ann@example.org")
            code, reply = client.data(_wire(message))
        assert code == 250, reply
        message_id = re.fullmatch(rb"2\.0\.0 OK: queued as <(.+)>", reply).group(1).decode()
        [accepted] = _events(api)  # committed by the time the client read its 250
        assert accepted["event"] == "accepted"
        assert accepted["message"]["headers"]["message-id"] == message_id

        deliver_due(services, sink)
        assert send_webhooks(services) == 2
    [got] = sink.received
    assert got.rcpt_tos == ["ann@example.org"]
    records = api.get(f"/v3/domains/{DOMAIN}").json()["sending_dns_records"]
    assert [verified for _, _, verified in verify_each(got.data, from_records(records))] \
        == [True]
    names = [name.lower() for name in got.message]
    assert [n for n in names if n.startswith("x-mailgun")] == ["x-mailgun-variables"]
    assert json.loads(got.message["X-Mailgun-Variables"]) == {"order": "1234"}
    assert got.message["Message-ID"] == f"<{message_id}>"
    assert got.message.get_content().replace("\r\n", "\n") == "Hi Ann,\n\nYour order has shipped.\n"

    events = _events(api)
    payloads = [hook.json["event-data"] for hook in receiver.received]
    assert sorted(e["event"] for e in events) == ["accepted", "delivered"]
    for event in [*events, *payloads]:
        assert event["method"] == "smtp"
        assert event["tags"] == ["welcome", "onboarding"]
        assert event["user-variables"] == {"order": "1234"}
    assert {p["id"] for p in payloads} == {e["id"] for e in events}


def test_the_implicit_tls_port_takes_a_batch_keyed_by_rcpt(api, services, submission) -> None:
    variables = {"ann@example.org": {"name": "Ann"}, "bob@example.org": {"name": "Bob"}}
    message = _message(X_Mailgun_Recipient_Variables=json.dumps(variables),
                       X_Mailgun_Variables=json.dumps({"greeting": "Hi %recipient.name%"}))
    with smtplib.SMTP_SSL("127.0.0.1", submission.tls_port, timeout=60,
                          context=submission.context()) as client:
        client.login(LOGIN, PASSWORD)
        refused = client.send_message(message, to_addrs=["ann@example.org",
                                                         "bob@example.org"])
    assert refused == {}
    with Sink() as sink:
        deliver_due(services, sink)
    greetings = {r.rcpt_tos[0]: json.loads(r.message["X-Mailgun-Variables"])["greeting"]
                 for r in sink.received}
    assert greetings == {"ann@example.org": "Hi Ann", "bob@example.org": "Hi Bob"}
    assert all("Recipient-Variables" not in r.data.decode() for r in sink.received)
    accepted = {e["recipient"]: e for e in _events(api, "accepted")}
    assert {r: e["user-variables"]["greeting"] for r, e in accepted.items()} \
        == {"ann@example.org": "Hi Ann", "bob@example.org": "Hi Bob"}
    assert {e["method"] for e in accepted.values()} == {"smtp"}


def test_an_envelope_sender_of_another_domain_is_refused(api, submission,
                                                         second_account) -> None:
    with _client(submission) as client:
        for sender in ("news@example.com", f"news@{second_account.domain}"):
            code, reply = client.mail(sender)
            assert code == 550, reply
            assert reply.startswith(b"5.7.1 The envelope sender's domain")
            assert b"is not a domain of this account" in reply
        assert client.mail(f"bounces@{DOMAIN}")[0] == 250  # its own is taken
        assert client.mail("news@acme.test")[0] == 503  # (one MAIL per transaction)
    assert _events(api) == []


def test_a_from_of_another_domain_is_refused_and_logged_as_rejected(api, submission) -> None:
    message = _message()
    message.replace_header("From", "CEO <ceo@bank.example>")
    with _client(submission) as client:
        client.mail(f"news@{DOMAIN}")
        client.rcpt("ann@example.org")
        code, reply = client.data(_wire(message))
    assert code == 550
    assert reply.startswith(b"5.7.1 bank.example is not a domain of this account")
    [rejected] = _events(api)
    assert rejected["event"] == "rejected" and rejected["method"] == "smtp"


def test_an_invalid_option_is_refused_with_the_api_s_message_naming_its_header(
        api, submission) -> None:
    with _client(submission) as client:
        for header, value, said in [
                ("X-Mailgun-Deliver-By", "next week",
                 b"5.6.0 X-Mailgun-Deliver-By is not a valid RFC 2822 date"),
                ("X-Mailgun-Tag", "ann@example.org", b"5.6.0 X-Mailgun-Tag can't hold an email"),
                ("X-Mailgun-Sending-Ip", "192.0.2.1",
                 b"5.6.0 X-Mailgun-Sending-Ip is not supported yet"),
                ("X-Mailgun-Variables", "[1]",
                 b"5.6.0 X-Mailgun-Variables header is not a valid JSON object")]:
            client.mail(f"news@{DOMAIN}")
            client.rcpt("ann@example.org")
            code, reply = client.data(_wire(_message(**{header.replace("-", "_"): value})))
            assert code == 554, reply
            assert reply.startswith(said), reply
        assert client.noop()[0] == 250  # the session goes on
    assert {e["event"] for e in _events(api)} <= {"rejected"}


def test_a_message_over_25_mb_is_refused_declared_or_not(api, submission) -> None:
    with _client(submission) as client:
        assert "size" in client.esmtp_features
        assert int(client.esmtp_features["size"]) == MAX_MESSAGE_BYTES
        code, reply = client.mail(f"news@{DOMAIN}", [f"SIZE={MAX_MESSAGE_BYTES + 1}"])
        assert (code, reply[:6]) == (552, b"5.3.4 ")
        client.mail(f"news@{DOMAIN}")
        client.rcpt("ann@example.org")
        big = _message()
        big.set_content("x" * 76 + "\n", subtype="plain")
        data = _wire(big) + (b"y" * 76 + b"\r\n") * (MAX_MESSAGE_BYTES // 78 + 1)
        code, reply = client.data(data)
        assert (code, reply[:6]) == (552, b"5.3.4 ")
    assert _events(api) == []


def test_recipients_past_1000_are_refused_one_by_one(submission) -> None:
    with _client(submission) as client:
        client.mail(f"news@{DOMAIN}")
        for n in range(1000):
            assert client.rcpt(f"user{n}@example.org")[0] == 250
        code, reply = client.rcpt("one-too-many@example.org")
        assert (code, reply[:6]) == (452, b"4.5.3 ")
        assert client.rset()[0] == 250


@pytest.mark.parametrize("address", ["not an address", "ann@", "ann@localhost"])
def test_a_recipient_that_is_no_address_is_refused_at_rcpt(submission, address: str) -> None:
    with _client(submission) as client:
        client.mail(f"news@{DOMAIN}")
        code, reply = client.rcpt(f"<{address}>")
        assert code in (501, 553), reply


def test_an_internationalized_message_is_taken_with_smtputf8(api, services,
                                                              submission) -> None:
    message = _message()
    message.replace_header("To", "Jürgen <jürgen@bücher.example>")
    message.replace_header("Subject", "Grüße")
    with _client(submission) as client:
        assert "smtputf8" in client.esmtp_features and "8bitmime" in client.esmtp_features
        client.send_message(message)  # smtplib asks for SMTPUTF8 itself
    [accepted] = _events(api)
    assert accepted["recipient"] == "jürgen@bücher.example"
    assert accepted["message"]["headers"]["subject"] == "Grüße"
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    assert got.rcpt_tos == ["jürgen@xn--bcher-kva.example"]
    assert got.message["Subject"] == "Grüße"


def test_drop_message_is_test_mode_and_deliver_by_schedules(api, services, submission,
                                                            clock) -> None:
    later = clock.now() + 3600
    with _client(submission) as client:
        client.send_message(_message(X_Mailgun_Drop_Message="yes"))
        client.send_message(_message(X_Mailgun_Deliver_By=formatdate(later)),
                            to_addrs=["bob@example.org"])
    with Sink() as sink:
        deliver_due(services, sink)
        assert sink.received == []  # one dropped, one not due yet
        clock.advance(3600)
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["bob@example.org"]]
    delivered = {e["recipient"]: e for e in _events(api, "delivered")}
    assert delivered["ann@example.org"]["delivery-status"]["code"] == 650
    assert delivered["ann@example.org"]["flags"]["is-test-mode"] is True
    assert delivered["bob@example.org"]["delivery-status"]["code"] == 250
