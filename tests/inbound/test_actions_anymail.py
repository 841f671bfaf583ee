"""django-anymail's Mailgun inbound webhook view receives what a route's forward() POSTs —
the fully parsed form with an attachment, and the raw MIME — checks its signature with the
account's webhook signing key and parses the message."""

from __future__ import annotations

import django
import pytest
from django.conf import settings
from django.test import RequestFactory
from django.test.utils import override_settings

from mailhaven.routes.expressions import RouteAction
from mailhaven.webhooks.service import signing_key
from tests.inbound.test_actions_support import (
    a_message,
    run_actions,
    send_route_posts,
    store_inbound,
)
from tests.support import WebhookReceiver

RECIPIENT = "support@mg.acme.test"


@pytest.fixture(scope="module", autouse=True)
def django_settings() -> None:
    if not settings.configured:
        settings.configure(INSTALLED_APPS=["anymail"], EMAIL_BACKEND=(
            "django.core.mail.backends.locmem.EmailBackend"))
        django.setup()


def received_by_anymail(body: bytes, content_type: str, key: str) -> tuple[int, list]:
    from anymail.signals import inbound
    from anymail.webhooks.mailgun import MailgunInboundWebhookView

    events = []

    def handler(sender, event, esp_name, **kwargs) -> None:  # type: ignore[no-untyped-def]
        events.append(event)

    inbound.connect(handler, weak=False)
    try:
        with override_settings(ANYMAIL={"MAILGUN_WEBHOOK_SIGNING_KEY": key}):
            request = RequestFactory().generic("POST", "/anymail/mailgun/inbound/",
                                               data=body, content_type=content_type)
            response = MailgunInboundWebhookView.as_view()(request)
    finally:
        inbound.disconnect(handler)
    return response.status_code, events


def forwarded_post(services, account, domain, url_path: str, raw: bytes):  # type: ignore[no-untyped-def]
    key = store_inbound(services, account[0], domain, raw, to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT,
                    [RouteAction("0123456789abcdef01234567", "forward",
                                 receiver.url + url_path)])
        send_route_posts(services)
    hook, = receiver.received
    with services.db.transaction() as session:
        secret = signing_key(session, services.vault, account[0])
    return hook, secret


def test_anymail_receives_a_forwarded_message_with_an_attachment(
        services, account, domain) -> None:
    raw = a_message(text="Invoice attached.\n\nOn Fri, Support wrote:\n> send it\n",
                    attachment=b"%PDF-1.4 the invoice")
    hook, secret = forwarded_post(services, account, domain, "", raw)
    assert hook.headers["Content-Type"].startswith("multipart/form-data")
    status, events = received_by_anymail(hook.body, hook.headers["Content-Type"], secret)
    assert status == 200
    event, = events
    message = event.message
    assert message["Subject"] == "Order 77"
    assert str(message.from_email) == "Ann Buyer <ann@shop.example.org>"
    assert message.envelope_recipient == RECIPIENT
    assert message.envelope_sender == "bounces-77@shop.example.org"
    assert message.text.startswith("Invoice attached.")
    assert message.stripped_text == "Invoice attached."
    attachment, = message.attachments
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_bytes() == b"%PDF-1.4 the invoice"
    assert message.spam_detected is None or message.spam_detected is False


def test_anymail_refuses_a_post_signed_with_another_key(services, account, domain) -> None:
    from anymail.exceptions import AnymailWebhookValidationFailure

    hook, _ = forwarded_post(services, account, domain, "", a_message())
    # a SuspiciousOperation: Django's handler answers it with a 400
    with pytest.raises(AnymailWebhookValidationFailure, match="incorrect signature"):
        received_by_anymail(hook.body, hook.headers["Content-Type"], "key-somebody-elses")


def test_anymail_parses_the_raw_mime_of_a_url_ending_in_mime(
        services, account, domain) -> None:
    hook, secret = forwarded_post(services, account, domain, "/mime",
                                  a_message(attachment=b"%PDF-raw"))
    status, events = received_by_anymail(hook.body, hook.headers["Content-Type"], secret)
    assert status == 200
    message = events[0].message
    assert message["Message-ID"] == "<order-77@shop.example.org>"
    assert [a.get_content_bytes() for a in message.attachments] == [b"%PDF-raw"]
