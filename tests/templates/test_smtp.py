"""A message submitted over SMTP with Mailgun's template headers (X-Mailgun-Template-Name,
-Version, -Variables): the template supplies its body, its own headers stay."""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage

from tests.submission.conftest import LOGIN, PASSWORD
from tests.support import Sink, deliver_due


def test_a_submitted_message_takes_the_templates_body(api, services, domain,
                                                      submission) -> None:
    assert api.post(f"/v3/{domain}/templates", data={
        "name": "receipt", "template": "<p>v1</p>"}).status_code == 200
    assert api.post(f"/v3/{domain}/templates/receipt/versions", data={
        "tag": "v2", "template": "<p>Receipt {{number}} for {{name}}</p>",
        "headers": '{"Reply-To": "billing@mg.acme.test"}'}).status_code == 200
    message = EmailMessage()
    message["From"] = f"Shop <shop@{domain}>"
    message["To"] = "Ann <ann@example.org>"
    message["Subject"] = "Your receipt"
    message["X-Mailgun-Template-Name"] = "receipt"
    message["X-Mailgun-Template-Version"] = "v2"
    message["X-Mailgun-Template-Variables"] = json.dumps({"number": 42, "name": "Ann"})
    message.set_content("This body is replaced by the template.\n")
    message.add_attachment(b"%PDF receipt", maintype="application", subtype="pdf",
                           filename="receipt.pdf")
    with smtplib.SMTP("127.0.0.1", submission.port, timeout=60) as client:
        client.starttls(context=submission.context())
        client.login(LOGIN, PASSWORD)
        client.send_message(message, from_addr=f"shop@{domain}", to_addrs=["ann@example.org"])
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    delivered = got.message
    assert delivered["Subject"] == "Your receipt"
    assert delivered["Reply-To"] == "billing@mg.acme.test"
    assert not [name for name in delivered if name.lower().startswith("x-mailgun-t")]
    assert delivered.get_body(("html",)).get_content().strip() == "<p>Receipt 42 for Ann</p>"
    assert b"replaced by the template" not in got.data
    [attachment] = list(delivered.iter_attachments())
    assert attachment.get_content() == b"%PDF receipt"
    [accepted] = api.get(f"/v3/{domain}/events", params={"event": "accepted"}).json()["items"]
    assert accepted["template"] == {"name": "receipt", "version": "v2"}
    assert accepted["method"] == "smtp"
