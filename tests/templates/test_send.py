"""Sending with a stored template (`template`, `t:version`, `t:text`, `t:variables`): the
message each recipient's server receives (a real aiosmtpd sink), its headers, events, and
Mailgun's refusals."""

from __future__ import annotations

import json
from email.message import EmailMessage

import httpx
import pytest

from mailhaven.sending.request import HTML_AND_TEMPLATE
from tests.support import Received, Sink, deliver_due

FROM = "Acme <news@mg.acme.test>"
WELCOME = ("<html><body><h1>Hello {{name}}</h1>\n"
           "{{#if vip}}<p>Thanks for being a VIP.</p>\n{{else}}<p>Welcome aboard.</p>\n{{/if}}"
           "<ul>\n{{#each items}}\n  <li>{{this.title}}: {{{this.link}}}</li>\n{{/each}}\n</ul>"
           "</body></html>")


def ok(reply: httpx.Response) -> dict:
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def store(api: httpx.Client, domain: str, name: str, template: str, **fields: str) -> None:
    ok(api.post(f"/v3/{domain}/templates", data={"name": name, "template": template,
                                                   **fields}))


def delivered(services) -> list[Received]:  # type: ignore[no-untyped-def]
    with Sink() as sink:
        deliver_due(services, sink)
    return sink.received


def html_of(got: Received) -> str:
    return _part(got, "html")


def text_of(got: Received) -> str:
    return _part(got, "plain")


def _part(got: Received, kind: str) -> str:
    part = got.message.get_body((kind,))
    assert part is not None, got.data
    return part.get_content().replace("\r\n", "\n")  # as received, lines end in CRLF


def send(api: httpx.Client, domain: str, **fields: object) -> str:
    data = {"from": FROM, "to": "ann@example.org", **fields}
    body = ok(api.post(f"/v3/{domain}/messages", data=data))
    assert body["message"] == "Queued. Thank you."
    return body["id"]


def test_the_template_is_rendered_with_t_variables_and_html_escaped(api, services,
                                                                     domain) -> None:
    store(api, domain, "welcome", WELCOME)
    send(api, domain, subject="Hi", template="welcome", **{"t:variables": json.dumps({
        "name": "Ann <& Co>", "vip": True,
        "items": [{"title": "Docs", "link": "<a href='https://x.test'>x</a>"}]})})
    [got] = delivered(services)
    assert html_of(got) == (
        "<html><body><h1>Hello Ann &lt;&amp; Co&gt;</h1>\n<p>Thanks for being a VIP.</p>\n"
        "<ul>\n  <li>Docs: <a href='https://x.test'>x</a></li>\n</ul></body></html>\n")
    assert got.message["Subject"] == "Hi"
    assert got.message.get_content_type() == "text/html"  # no text part unless t:text


def test_v_variables_reach_the_template_and_t_variables_override_them(api, services,
                                                                       domain) -> None:
    store(api, domain, "greet", "<p>{{greeting}}, {{name}} ({{order.id}})</p>")
    send(api, domain, subject="Hi", template="greet", **{
        "v:greeting": "Hello", "v:name": "from v", "v:order": '{"id": 77}',
        "t:variables": json.dumps({"name": "Ann"})})
    [got] = delivered(services)
    assert html_of(got).strip() == "<p>Hello, Ann (77)</p>"
    # The v: variables stay metadata too, as without a template.
    assert json.loads(got.message["X-Mailgun-Variables"]) == {
        "greeting": "Hello", "name": "from v", "order": '{"id": 77}'}


def test_a_v_variable_nested_too_deep_reaches_the_template_as_text(api, services,
                                                                   domain) -> None:
    store(api, domain, "deep", "<p>{{#if shallow.a}}{{shallow.a}}{{/if}} {{deep}}</p>")
    shallow = '{"a":' * 32 + "1" + "}" * 32
    deep = "[" * 33 + "]" * 33
    send(api, domain, subject="Hi", template="deep", **{"v:deep": deep, "v:shallow": shallow})
    [got] = delivered(services)
    assert html_of(got).strip() == f"<p>{'map[a:' * 31}1{']' * 31} {deep}</p>"


def test_the_versions_stored_headers_apply_unless_the_message_sets_them(api, services,
                                                                         domain) -> None:
    store(api, domain, "headed", "<p>{{name}}</p>", headers=json.dumps({
        "From": "Acme Billing <billing@mg.acme.test>", "Subject": "Your invoice",
        "Reply-To": "help@mg.acme.test"}))
    # No from, no subject: the template's.
    ok(api.post(f"/v3/{domain}/messages", data={
        "to": "ann@example.org", "template": "headed", "t:variables": '{"name": "Ann"}'}))
    # The message's own win.
    send(api, domain, to="bob@example.org", subject="Overridden", template="headed",
         **{"h:Reply-To": "bob-desk@mg.acme.test"})
    copies = {got.rcpt_tos[0]: got.message for got in delivered(services)}
    ann, bob = copies["ann@example.org"], copies["bob@example.org"]
    assert ann["From"] == "Acme Billing <billing@mg.acme.test>"
    assert ann["Subject"] == "Your invoice" and ann["Reply-To"] == "help@mg.acme.test"
    assert bob["From"] == FROM
    assert bob["Subject"] == "Overridden" and bob["Reply-To"] == "bob-desk@mg.acme.test"
    assert len(bob.get_all("Reply-To")) == 1


def test_without_a_from_anywhere_the_domains_postmaster_sends(api, services, domain) -> None:
    store(api, domain, "bare", "<p>hi</p>")
    ok(api.post(f"/v3/{domain}/messages", data={"to": "ann@example.org", "template": "bare"}))
    [got] = delivered(services)
    assert got.message["From"] == f"postmaster@{domain}"


def test_t_text_adds_a_text_part_made_from_the_html(api, services, domain) -> None:
    store(api, domain, "welcome", WELCOME)
    send(api, domain, subject="Hi", template="welcome", **{"t:text": "yes", "t:variables":
         json.dumps({"name": "Ann", "items": [{"title": "Docs", "link": "d"}]})})
    [got] = delivered(services)
    assert got.message.get_content_type() == "multipart/alternative"
    assert text_of(got) == "Hello Ann\n\nWelcome aboard.\n\n- Docs: d\n"
    assert "<h1>Hello Ann</h1>" in html_of(got)


def test_t_version_picks_a_version_and_active_switches_the_default(api, services,
                                                                    domain) -> None:
    store(api, domain, "promo", "<p>first</p>")
    ok(api.post(f"/v3/{domain}/templates/promo/versions",
                data={"tag": "v2", "template": "<p>second</p>"}))
    send(api, domain, to="a@example.org", subject="x", template="promo")
    send(api, domain, to="b@example.org", subject="x", template="promo", **{"t:version": "V2"})
    ok(api.put(f"/v3/{domain}/templates/promo/versions/v2", data={"active": "yes"}))
    send(api, domain, to="c@example.org", subject="x", template="promo")
    bodies = {got.rcpt_tos[0]: html_of(got).strip() for got in delivered(services)}
    assert bodies == {"a@example.org": "<p>first</p>", "b@example.org": "<p>second</p>",
                      "c@example.org": "<p>second</p>"}


def test_a_message_keeps_the_template_as_it_was_when_accepted(api, services, domain) -> None:
    store(api, domain, "news", "<p>before</p>")
    send(api, domain, subject="x", template="news")
    ok(api.put(f"/v3/{domain}/templates/news/versions/initial",
               data={"template": "<p>after</p>"}))
    ok(api.delete(f"/v3/{domain}/templates/news"))
    [got] = delivered(services)
    assert html_of(got).strip() == "<p>before</p>"


def test_a_batch_renders_each_recipients_own_variables(api, services, domain) -> None:
    store(api, domain, "batch", "<p>Dear {{recipient.first}}, order {{recipient.order.id}}"
                                " for %recipient.first% &middot; {{shop}}</p>")
    people = {"ann@example.org": {"first": "Ann", "order": {"id": 1}},
              "bob@example.org": {"first": "Bob", "order": {"id": 2}}}
    send(api, domain, to=list(people), subject="Hi %recipient.first%", template="batch",
         **{"recipient-variables": json.dumps(people), "t:variables": '{"shop": "Acme"}'})
    copies = {got.rcpt_tos[0]: got for got in delivered(services)}
    assert html_of(copies["ann@example.org"]).strip() == \
        "<p>Dear Ann, order 1 for Ann &middot; Acme</p>"
    assert html_of(copies["bob@example.org"]).strip() == \
        "<p>Dear Bob, order 2 for Bob &middot; Acme</p>"
    assert copies["bob@example.org"].message["Subject"] == "Hi Bob"
    assert copies["bob@example.org"].message["To"] == "bob@example.org"


def test_v_variables_indirected_through_recipient_variables_reach_each_copy(
        api, services, domain) -> None:
    """What django-anymail sends for merge data with a stored template."""
    store(api, domain, "merge", "<p>{{name}} / {{plan}}</p>")
    send(api, domain, to=["ann@example.org", "bob@example.org"], subject="x", template="merge",
         **{"v:name": "%recipient.name%", "v:plan": "%recipient.plan%",
            "recipient-variables": json.dumps({
                "ann@example.org": {"name": "Ann", "plan": "gold"},
                "bob@example.org": {"name": "Bob", "plan": ""}})})
    bodies = {got.rcpt_tos[0]: html_of(got).strip() for got in delivered(services)}
    assert bodies == {"ann@example.org": "<p>Ann / gold</p>", "bob@example.org": "<p>Bob / </p>"}


def test_events_name_the_template_and_its_version(api, services, domain) -> None:
    store(api, domain, "welcome", "<p>hi</p>", tag="v1")
    message_id = send(api, domain, subject="x", template="welcome")
    send(api, domain, subject="x", text="no template")
    delivered(services)
    items = ok(api.get(f"/v3/{domain}/events", params={"ascending": "yes"}))["items"]
    templated = [e for e in items if e["message"]["headers"]["message-id"]
                 == message_id.strip("<>")]
    assert sorted(e["event"] for e in templated) == ["accepted", "delivered"]
    assert all(e["template"] == {"name": "welcome", "version": "v1"} for e in templated)
    assert all("template" not in e for e in items if e not in templated)


@pytest.mark.parametrize(("fields", "message"), [
    ({"template": "welcome", "html": "<p>x</p>"}, HTML_AND_TEMPLATE),
    ({"template": "missing"}, "template 'missing' not found"),
    ({"template": "welcome", "t:version": "v9"}, "template 'welcome' has no version 'v9'"),
    # A NUL no name or tag can hold (PostgreSQL would refuse it in the query): not found.
    ({"template": "wel\x00come"}, "template 'wel\x00come' not found"),
    ({"template": "welcome", "t:version": "v\x001"},
     "template 'welcome' has no version 'v\x001'"),
    ({"template": "welcome", "t:variables": "[1, 2]"},
     "'t:variables' parameter is not a valid JSON"),
    # Nesting deeper than 32 would fail the message's copy (a 500): refused as not JSON.
    ({"template": "welcome", "t:variables": '{"a":' * 900 + "1" + "}" * 900},
     "'t:variables' parameter is not a valid JSON"),
    ({"template": "welcome", "t:variables": '{"a":' * 33 + "1" + "}" * 33},
     "'t:variables' parameter is not a valid JSON"),
    ({"template": "welcome", "t:variables": '{"a": "\\ud800"}'},
     "'t:variables' parameter holds text that is not valid Unicode"),
    ({"text": "x", "t:version": "v1"},
     "t:version can't be used without the template parameter"),
])
def test_a_send_mailgun_would_refuse_is_refused_and_logged(api, domain, fields,
                                                            message) -> None:
    store(api, domain, "welcome", "<p>hi</p>")
    reply = api.post(f"/v3/{domain}/messages", data={"from": FROM, "to": "ann@example.org",
                                                     "subject": "x", **fields})
    assert reply.status_code == 400, reply.text
    assert reply.json() == {"message": message}
    rejected = ok(api.get(f"/v3/{domain}/events", params={"event": "rejected"}))["items"]
    assert [e["reject"]["reason"] for e in rejected] == [message]


def test_a_template_without_an_active_version_needs_t_version(api, services, domain) -> None:
    store(api, domain, "promo", "<p>first</p>")
    ok(api.post(f"/v3/{domain}/templates/promo/versions",
                data={"tag": "v2", "template": "<p>second</p>"}))
    ok(api.delete(f"/v3/{domain}/templates/promo/versions/initial"))
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": FROM, "to": "ann@example.org", "template": "promo"})
    assert reply.status_code == 400
    assert reply.json()["message"] == \
        "template 'promo' has no active version: name one with t:version"
    send(api, domain, template="promo", **{"t:version": "v2"})
    [got] = delivered(services)
    assert html_of(got).strip() == "<p>second</p>"


def test_a_mime_message_keeps_its_headers_and_takes_the_templates_body(api, services,
                                                                      domain) -> None:
    store(api, domain, "receipt", "<p>Receipt for {{name}}</p>",
          headers=json.dumps({"Subject": "Stored subject", "Reply-To": "help@mg.acme.test"}))
    mime = EmailMessage()
    mime["From"] = FROM
    mime["To"] = "Ann <ann@example.org>"
    mime["X-Order"] = "77"
    mime.set_content("this body is replaced")
    mime.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf",
                        filename="receipt.pdf")
    ok(api.post(f"/v3/{domain}/messages.mime", data={
        "to": "ann@example.org", "template": "receipt", "t:variables": '{"name": "Ann"}',
        "t:text": "yes"}, files={"message": ("message.mime", mime.as_bytes())}))
    [got] = delivered(services)
    message = got.message
    assert message["From"] == FROM and message["X-Order"] == "77"
    assert message["Subject"] == "Stored subject"  # the MIME message set none
    assert message["Reply-To"] == "help@mg.acme.test"
    assert html_of(got).strip() == "<p>Receipt for Ann</p>"
    assert text_of(got) == "Receipt for Ann\n"
    assert b"this body is replaced" not in got.data
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "receipt.pdf"
    assert attachment.get_content() == b"%PDF-1.4 receipt"


def test_a_mime_messages_own_subject_wins(api, services, domain) -> None:
    store(api, domain, "receipt", "<p>x</p>", headers='{"Subject": "Stored"}')
    raw = (b"From: news@mg.acme.test\r\nTo: ann@example.org\r\nSubject: Own subject\r\n"
           b"Content-Type: text/plain\r\n\r\nold body\r\n")
    ok(api.post(f"/v3/{domain}/messages.mime", data={"to": "ann@example.org",
                                                      "template": "receipt"},
                files={"message": ("m.mime", raw)}))
    [got] = delivered(services)
    assert got.message.get_all("Subject") == ["Own subject"]
    assert html_of(got).strip() == "<p>x</p>"


def test_a_hostile_template_fails_its_copy_instead_of_running_on(api, services,
                                                                 domain) -> None:
    store(api, domain, "loops", "{{#each a}}{{#each ../a}}{{#each ../../a}}{{#each "
                                "../../../a}}x{{/each}}{{/each}}{{/each}}{{/each}}")
    send(api, domain, subject="x", template="loops",
         **{"t:variables": json.dumps({"a": list(range(100))})})
    assert delivered(services) == []
    failed = ok(api.get(f"/v3/{domain}/events", params={"event": "failed"}))["items"]
    assert [(e["severity"], e["delivery-status"]["code"]) for e in failed] == [
        ("permanent", 554)]
    assert failed[0]["delivery-status"]["message"] == (
        "Template could not be rendered: the template took more than 1000000 steps to render")


def test_the_stored_message_shows_the_rendered_template(api, services, domain) -> None:
    store(api, domain, "welcome", "<p>Hello {{name}}</p>")
    send(api, domain, subject="x", template="welcome", **{"t:variables": '{"name": "Ann"}'})
    accepted = ok(api.get(f"/v3/{domain}/events", params={"event": "accepted"}))["items"]
    key = accepted[0]["storage"]["key"]
    stored = ok(api.get(f"/v3/domains/{domain}/messages/{key}"))
    assert stored["body-html"].strip() == "<p>Hello Ann</p>"
    assert stored["X-Mailgun-Template-Name"] == "welcome"
    assert json.loads(stored["X-Mailgun-Template-Variables"]) == {"name": "Ann"}


def test_a_send_through_smtp_headers_fields_works_on_messages_mime(api, services,
                                                                  domain) -> None:
    """SMTP submission maps X-Mailgun-Template-Name/-Version/-Variables to these fields."""
    store(api, domain, "smtp", "<p>v1 {{x}}</p>")
    ok(api.post(f"/v3/{domain}/templates/smtp/versions",
                data={"tag": "v2", "template": "<p>v2 {{x}}</p>"}))
    raw = b"From: news@mg.acme.test\r\nTo: ann@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    ok(api.post(f"/v3/{domain}/messages.mime", files={
        "message": ("m.mime", raw), "to": (None, "ann@example.org"),
        "template": (None, "smtp"), "t:version": (None, "v2"),
        "t:variables": (None, '{"x": "y"}')}))
    [got] = delivered(services)
    assert html_of(got).strip() == "<p>v2 y</p>"


def test_a_stored_from_passes_the_same_sender_check_as_a_from_field(api, domain) -> None:
    store(api, domain, "spoof", "<p>x</p>", headers='{"From": "Bank <alerts@bank.example>"}')
    reply = api.post(f"/v3/{domain}/messages", data={"to": "ann@example.org",
                                                     "template": "spoof"})
    assert reply.status_code == 403, reply.text
    assert "bank.example" in reply.json()["message"]
