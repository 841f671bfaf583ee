"""django-anymail's Mailgun backend with a stored template (`template_id`) and merge data
(`merge_global_data`, `merge_data`), pointed at the live server as its settings say:
ANYMAIL's MAILGUN_API_URL is the server's URL and `/v3`. Anymail sends the merge data as
`recipient-variables` and `v:key=%recipient.key%` fields; each recipient's copy arrives
rendered with their own values."""

from __future__ import annotations

import django
import pytest
from django.conf import settings
from django.core import mail
from django.test.utils import override_settings

from tests.support import LiveServer, Sink, deliver_due

TEMPLATE = ("<p>Hi {{name}}, your order {{order_no}} ships {{ship_date}}.</p>"
            "{{#if vip}}<p>VIP</p>{{/if}}")


@pytest.fixture(scope="module", autouse=True)
def django_settings() -> None:
    """Django configured once per process (other tests may have done it): each test sets
    what it needs with override_settings."""
    if not settings.configured:
        settings.configure(INSTALLED_APPS=["anymail"], EMAIL_BACKEND=(
            "django.core.mail.backends.locmem.EmailBackend"))
        django.setup()


def anymail(live: LiveServer, api_key: str, domain: str) -> override_settings:
    return override_settings(
        EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend",
        ANYMAIL={"MAILGUN_API_KEY": api_key, "MAILGUN_API_URL": f"{live.base_url}/v3",
                 "MAILGUN_SENDER_DOMAIN": domain})


def test_a_template_id_with_merge_data_arrives_rendered_for_each_recipient(
        live, api, account, services, domain) -> None:
    reply = api.post(f"/v3/{domain}/templates", data={"name": "order-shipped",
                                                        "template": TEMPLATE})
    assert reply.status_code == 200, reply.text
    with anymail(live, account[1], domain):
        message = mail.EmailMessage(from_email=f"Shop <shop@{domain}>",
                                    to=["Ann <ann@example.org>", "bob@example.org"],
                                    subject="Your order")
        message.template_id = "order-shipped"  # type: ignore[attr-defined]
        message.merge_global_data = {"ship_date": "May 15"}  # type: ignore[attr-defined]
        message.merge_data = {  # type: ignore[attr-defined]
            "ann@example.org": {"name": "Ann", "order_no": "12345", "vip": "yes"},
            "bob@example.org": {"name": "Bob", "order_no": "54321"},
        }
        assert message.send() == 1
    status = message.anymail_status  # type: ignore[attr-defined]
    assert status.status == {"queued"}
    assert status.message_id.startswith("<") and status.message_id.endswith(">")

    with Sink() as sink:
        deliver_due(services, sink)
    copies = {got.rcpt_tos[0]: got.message for got in sink.received}
    assert sorted(copies) == ["ann@example.org", "bob@example.org"]
    ann = copies["ann@example.org"].get_body(("html",)).get_content().strip()
    bob = copies["bob@example.org"].get_body(("html",)).get_content().strip()
    assert ann == "<p>Hi Ann, your order 12345 ships May 15.</p><p>VIP</p>"
    assert bob == "<p>Hi Bob, your order 54321 ships May 15.</p>"
    assert copies["bob@example.org"]["To"] == "bob@example.org"  # a batch: each their own
    assert all(m["Subject"] == "Your order" for m in copies.values())


def test_a_template_id_with_global_merge_data_alone(live, api, account, services,
                                                    domain) -> None:
    reply = api.post(f"/v3/{domain}/templates", data={
        "name": "notice", "template": "<p>Maintenance on {{day}}.</p>",
        "headers": '{"Subject": "Planned maintenance"}'})
    assert reply.status_code == 200, reply.text
    with anymail(live, account[1], domain):
        message = mail.EmailMessage(from_email=f"ops@{domain}", to=["ann@example.org"])
        message.template_id = "notice"  # type: ignore[attr-defined]
        message.merge_global_data = {"day": "Sunday"}  # type: ignore[attr-defined]
        assert message.send() == 1
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    assert got.message.get_body(("html",)).get_content().strip() == \
        "<p>Maintenance on Sunday.</p>"
    assert got.message["Subject"] == "Planned maintenance"  # the message set none
