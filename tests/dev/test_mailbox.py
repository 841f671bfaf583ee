"""The development mailbox (`serve --dev`'s /dev/mailbox): what it captured, newest first with
times, searched, paged; a message's views, attachments, DKIM result; HTML kept in a box."""

from __future__ import annotations

import dataclasses
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from urllib.parse import unquote

import httpx
import pytest
from aiosmtpd.controller import Controller

from mailhaven.dev.mailbox import MailboxHandler, search_captured
from mailhaven.dev.message import open_message
from mailhaven.dev.mode import mailbox_folder
from mailhaven.services import Services
from tests.support import LiveServer, deliver_due, free_port

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b1e5c10000000049454e44ae426082")


@pytest.fixture
def live(services: Services) -> Iterator[LiveServer]:
    """The app as `serve --dev` runs it: with /dev/mailbox."""
    with LiveServer(services, dev=True) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as opened:
        yield opened


@contextmanager
def capturing(services: Services) -> Iterator[tuple[Services, int]]:
    """The dev mailbox's capture server on loopback, and services that deliver to it."""
    handler = MailboxHandler(mailbox_folder(services.settings), services.clock)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield (dataclasses.replace(services, settings=services.settings.with_(
            relayhost=("127.0.0.1", controller.port))), controller.port)
    finally:
        controller.stop()


def multipart(subject: str = "Your invoice", text: str = "Total: 42 EUR") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.net>"
    message["To"] = "Zoë <zoe@example.org>"
    message["Subject"] = subject
    message.set_content(text)
    message.add_alternative(
        '<p>Total: <b>42 EUR</b></p><img alt="logo" src="cid:logo@shop">'
        '<img alt="tracker" src="http://example.invalid/x.png">', subtype="html")
    message.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@shop>")
    message.add_attachment(b"%PDF-1.4 invoice", maintype="application", subtype="pdf",
                           filename="Rechnung März.pdf")
    return message


def send(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(message, from_addr="shop@example.net", to_addrs=["zoe@example.org"])


def test_a_message_taken_apart() -> None:
    opened = open_message(multipart().as_bytes())
    assert (opened.sender, opened.to, opened.subject) == (
        "Shop <shop@example.net>", "Zoë <zoe@example.org>", "Your invoice")
    assert opened.text == "Total: 42 EUR\n"
    assert opened.html is not None and "cid:" not in opened.html
    assert "data:image/png;base64," in opened.html  # the message's own image, inlined
    assert 'src="http://example.invalid/x.png"' in opened.html  # left for the CSP to block
    assert [(a.filename, a.content_type, a.inline) for a in opened.attachments] == [
        ("part-1.png", "image/png", True), ("Rechnung März.pdf", "application/pdf", False)]
    assert opened.attachments[1].data == b"%PDF-1.4 invoice"
    assert ("Subject", "Your invoice") in opened.headers


def test_a_malformed_message_is_shown_not_raised() -> None:
    data = (b"Subject: =?x-unknown?q?caf=E9?=\r\nContent-Type: text/plain; charset=x-nope\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64\xff\r\n")
    opened = open_message(data)
    assert opened.text is not None and opened.html is None and opened.attachments == []


def test_the_list_newest_first_with_times_search_and_dkim(api, client, services, domain,
                                                         clock) -> None:
    with capturing(services) as (relayed, port):
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"Billing <billing@{domain}>", "to": "ann@example.org",
            "subject": "Signed receipt", "text": "Thanks for the Gooseberry order"}
            ).status_code == 200
        deliver_due(relayed)
        clock.advance(90)
        send(port, multipart())
    page = client.get("/dev/mailbox")
    assert page.status_code == 200 and "style-src 'self'" in page.headers[
        "content-security-policy"]
    body = page.text
    assert body.index("Your invoice") < body.index("Signed receipt")  # newest first
    assert [line for line in body.splitlines() if "<time" in line][0].strip().endswith(
        " UTC</time></td>")
    assert '"pass">valid signature<' in body and '"fail">no valid signature<' in body
    [signed] = [m for m in search_captured(mailbox_folder(services.settings))[0]
                if m.subject == "Signed receipt"]
    assert f"valid signature (d={domain}, s=" in client.get(f"/dev/mailbox/{signed.id}").text

    def found(q: str) -> list[str]:
        return [m.subject for m in search_captured(mailbox_folder(services.settings), q)[0]]
    assert found("gooseberry") == ["Signed receipt"]  # the text body, any case
    assert found("ZOE@example") == ["Your invoice"]  # a recipient
    assert found("billing@") == ["Signed receipt"]  # the sender
    assert found("INVOICE") == ["Your invoice"]  # the subject
    assert found("nothing like it") == []
    searched = client.get("/dev/mailbox", params={"q": "GOOSEBERRY"}).text
    assert "Signed receipt" in searched and "Your invoice" not in searched
    assert 'value="GOOSEBERRY"' in searched


def test_many_messages_are_paged(client, services) -> None:
    with capturing(services) as (_, port), smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(55):
            smtp.sendmail("a@example.net", ["b@example.org"],
                          f"Subject: Number {n}\r\n\r\nbody {n}\r\n".encode())
    first = client.get("/dev/mailbox").text
    assert "Number 54" in first and "Number 5<" in first and "Number 4<" not in first
    assert "page 1 of 2" in first and 'href="/dev/mailbox?page=2"' in first
    second = client.get("/dev/mailbox", params={"page": "2"}).text
    assert "Number 4<" in second and "Number 0<" in second and "Number 54" not in second
    assert 'href="/dev/mailbox"' in second  # back to the newest
    assert client.get("/dev/mailbox", params={"page": "x"}).status_code == 200


def test_a_message_page_its_views_and_attachments(client, services) -> None:
    with capturing(services) as (_, port):
        send(port, multipart())
    [captured], _ = search_captured(mailbox_folder(services.settings))
    base = f"/dev/mailbox/{captured.id}"
    page = client.get(base)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert f'<iframe class="html" sandbox src="{base}/html"' in page.text
    assert "no valid signature: the message is not signed" in page.text
    assert f'href="{base}/attachments/1"' in page.text and "Rechnung März.pdf" in page.text
    assert "Total: 42 EUR" in client.get(base, params={"view": "text"}).text
    assert "Content-Type" in client.get(base, params={"view": "headers"}).text
    assert "Content-Transfer-Encoding" in client.get(base, params={"view": "raw"}).text

    raw = client.get(f"{base}/raw")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.content == captured.data

    html = client.get(f"{base}/html")
    policy = html.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:")
    assert "script-src" not in policy and "sandbox" in policy
    assert "<b>42 EUR</b>" in html.text

    pdf = client.get(f"{base}/attachments/1")
    assert pdf.content == b"%PDF-1.4 invoice"
    assert pdf.headers["content-type"] == "application/pdf"
    disposition = pdf.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Rechnung M_rz.pdf"')
    assert unquote(disposition.split("UTF-8''")[1]) == "Rechnung März.pdf"
    assert client.get(f"{base}/attachments/0").content == PNG

    for missing in (f"{base}/attachments/2", "/dev/mailbox/0-nothing/raw",
                    "/dev/mailbox/0-nothing/html", "/dev/mailbox/..%2Fdemo/raw"):
        assert client.get(missing).status_code == 404, missing
    gone = client.get("/dev/mailbox/0-nothing")
    assert gone.status_code == 404 and "No such message" in gone.text
    assert client.get("/static/mailbox.css").headers["content-type"].startswith(
        "text/css")
