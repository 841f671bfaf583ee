"""Templates through Mailgun's official Python SDK (`mailgun==1.10.0`), its calls made as its
templates examples make them (`client.templates…`, `MailgunMessageBuilder.set_template…`),
against the live server; only the base URL changes (the `client` fixture: conftest.py)."""

from __future__ import annotations

from mailgun.builders import MailgunMessageBuilder

from tests.support import Sink, deliver_due
from tests.test_mailgun_sdk import ok


def test_the_sdks_template_lifecycle(client, domain) -> None:
    # As templates_examples.py does each step.
    created = ok(client.templates.create(domain=domain, data={
        "name": "sdk-template", "description": "template description",
        "template": "{{fname}} {{lname}}", "engine": "handlebars",
        "comment": "version comment"}))
    assert created["message"] == "template has been stored"
    assert created["template"]["version"]["template"] == "{{fname}} {{lname}}"

    listed = ok(client.templates.get(domain=domain, filters={"limit": 1}))
    assert [t["name"] for t in listed["items"]] == ["sdk-template"]
    active = ok(client.templates.get(domain=domain, filters={"active": "yes"},
                                     template_name="sdk-template"))
    assert active["template"]["version"]["tag"] == "initial"
    assert ok(client.templates.put(domain=domain, template_name="sdk-template",
                                   data={"description": "new template description"})) \
        == {"message": "template has been updated", "template": {"name": "sdk-template"}}

    version = ok(client.templates.create(domain=domain, template_name="sdk-template",
                                         versions=True, data={
                                             "tag": "v1", "template": "{{fname}} updated",
                                             "engine": "handlebars", "active": "yes"}))
    assert version["template"]["version"]["active"] is True
    versions = ok(client.templates.get(domain=domain, template_name="sdk-template",
                                       versions=True))
    assert [v["tag"] for v in versions["template"]["versions"]] == ["initial", "v1"]
    one = ok(client.templates.get(domain=domain, template_name="sdk-template",
                                  versions=True, tag="v1"))
    assert one["template"]["version"]["template"] == "{{fname}} updated"
    ok(client.templates.put(domain=domain, template_name="sdk-template", versions=True,
                            tag="v1", data={"template": "<h1>Hello {{fname}}</h1>",
                                            "comment": "Updated"}))
    copied = ok(client.templates.put(domain=domain, template_name="sdk-template",
                                     versions=True, tag="v1", copy=True, new_tag="v2",
                                     filters={"comment": "An updated version comment"}))
    assert copied["message"] == "version has been copied"
    assert copied["version"]["comment"] == "An updated version comment"
    assert copied["version"]["template"] == "<h1>Hello {{fname}}</h1>"
    assert ok(client.templates.delete(domain=domain, template_name="sdk-template",
                                      versions=True, tag="v2"))["message"] \
        == "version has been deleted"
    assert ok(client.templates.delete(domain=domain, template_name="sdk-template")) \
        == {"message": "template has been deleted", "template": {"name": "sdk-template"}}
    missing = client.templates.get(domain=domain, template_name="non_existent_template")
    assert missing.status_code == 404
    assert missing.json() == {"message": "template not found"}
    ok(client.templates.create(domain=domain, data={"name": "another"}))
    assert ok(client.templates.delete(domain=domain)) == {
        "message": "templates have been deleted"}
    assert ok(client.templates.get(domain=domain))["items"] == []


def test_a_message_built_with_the_sdks_template_setters_arrives_rendered(client, services,
                                                                         domain) -> None:
    ok(client.templates.create(domain=domain, data={
        "name": "promo-template", "template": "<p>v1</p>"}))
    ok(client.templates.create(domain=domain, template_name="promo-template", versions=True,
                               data={"tag": "v2", "template": "<p>Use {{code}}: "
                                                              "{{discount}} off</p>"}))
    payload, files = (MailgunMessageBuilder(f"marketing@{domain}")
                      .add_recipient("ann@example.org")
                      .set_subject("Special Offer Inside!")
                      .set_template("promo-template")
                      .set_template_version("v2")
                      .set_template_text(enable=True)
                      .set_template_variables({"discount": "20%", "code": "SAVE20"})
                      .build())
    assert ok(client.messages.create(domain=domain, data=payload, files=files))["message"] \
        == "Queued. Thank you."
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    message = got.message
    assert message["Subject"] == "Special Offer Inside!"
    assert message.get_body(("html",)).get_content().strip() == "<p>Use SAVE20: 20% off</p>"
    assert message.get_body(("plain",)).get_content().strip() == "Use SAVE20: 20% off"
    [accepted] = ok(client.events.get(domain=domain, filters={"event": "accepted"}))["items"]
    assert accepted["template"] == {"name": "promo-template", "version": "v2"}
