"""The data inventory, checked against what is really stored (SPEC N1, N2; issue 11).

`test_inventory.py` checks the declarations themselves; this writes personal values through
every public API that takes them — sending (urlencoded, multipart, MIME, batch) and
resending, the four suppression lists (form, JSON, CSV import), one-click unsubscribe,
webhooks, tags, privacy requests and consents, SMTP credentials, stored templates and sends
with them, routes, mailing lists' members (form, JSON, CSV) and sends to lists — then reads
every column of every table: none may hold any of them in clear, whatever the column says it
holds. A personal column must hold them sealed or as a keyed index; a column declared
non-personal must not hold them at all. Domains, retention and tracking settings take no
personal data, and events are only read.

Every personal value carries the token `pv5qz`, so any piece of one (a domain, a name, an
address's local part) is found, in any case. Free-text fields customers fill and we keep in
clear (tags, descriptions, reasons, sources) may refuse an address with a 400, or take it
and keep it sealed; a 500 never.
"""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import quote, urlsplit

from mailhaven.models import metadata
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks

TOKEN = b"pv5qz"
TAG = "campaign-spring"  # not personal: kept in clear, where the scan must see it
RECIPIENT = "ingrid.pv5qz@pv5qz-to.test"
MIME = (b"From: Pv5qz Sender <billing@mg.acme.test>\r\n"
        b"To: Mime Pv5qz <mime.pv5qz@pv5qz-mime.test>\r\n"
        b"Subject: pv5qz mime subject\r\nMIME-Version: 1.0\r\n"
        b"Message-ID: <mime-order.pv5qz@shop.test>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\npv5qz mime body\r\n")
ACCEPTED, REFUSED = (200, 201, 202), 400


def _ok(reply, allowed=ACCEPTED) -> None:  # type: ignore[no-untyped-def]
    assert reply.status_code in allowed, (reply.request.url, reply.status_code, reply.text)


def _free_text(reply) -> None:  # type: ignore[no-untyped-def]
    """A clear-text field given an address: refused, or taken (then it must be sealed)."""
    _ok(reply, (*ACCEPTED, REFUSED))


def _send(api, domain: str) -> None:  # type: ignore[no-untyped-def]
    base = f"/v3/{domain}/messages"
    _ok(api.post(base, data={
        "from": f"Pv5qz Sender Person <billing@{domain}>",
        "to": f"Ingrid Pv5qz-Holm <{RECIPIENT}>",
        "cc": "Carl Pv5qz <carl.pv5qz@pv5qz-cc.test>", "bcc": "bea.pv5qz@pv5qz-bcc.test",
        "subject": "pv5qz subject", "text": "pv5qz body text", "html": "<p>pv5qz html</p>",
        "v:ref": "pv5qz-variable-value", "h:Reply-To": "reply.pv5qz@pv5qz-reply.test",
        "h:X-Customer": "pv5qz custom header", "h:Message-ID": "<order-77.pv5qz@shop.test>",
        "o:tag": TAG}))
    _ok(api.post(base, data={
        "from": f"billing@{domain}", "to": "attach.pv5qz@pv5qz-multipart.test",
        "subject": "pv5qz multipart", "text": "pv5qz multipart body", "o:tag": TAG},
        files={"attachment": ("pv5qz-invoice.txt", b"pv5qz attachment", "text/plain")}))
    _ok(api.post(base, data={
        "from": f"billing@{domain}", "to": ["one.pv5qz@pv5qz-batch.test",
                                             "two.pv5qz@pv5qz-batch.test"],
        "subject": "Hi %recipient.first%", "text": "Dear %recipient.first%",
        "recipient-variables": json.dumps({
            "one.pv5qz@pv5qz-batch.test": {"first": "Pv5qzOne"},
            "two.pv5qz@pv5qz-batch.test": {"first": "Pv5qzTwo"}})}))
    _ok(api.post(f"{base}.mime", data={"to": "mime.pv5qz@pv5qz-mime.test"},
                 files={"message": ("message.mime", MIME, "message/rfc822")}))
    _free_text(api.post(base, data={
        "from": f"billing@{domain}", "to": "tagged.pv5qz@pv5qz-tag.test", "subject": "x",
        "text": "x", "o:tag": "customer:tagged.pv5qz@pv5qz-tag.test"}))
    accepted = api.get(f"/v3/{domain}/events", params={"event": "accepted"}).json()["items"]
    for url in sorted({e["storage"]["url"] for e in accepted}):  # each message resent
        _ok(api.post(url, data={"to": ["Resent Pv5qz <resent.pv5qz@pv5qz-resend.test>",
                                       "two.pv5qz@pv5qz-batch.test"]},
                     params={"to": "query.pv5qz@pv5qz-resend.test"}))


def _suppress(api, domain: str) -> None:  # type: ignore[no-untyped-def]
    for kind in ("bounces", "unsubscribes", "complaints", "whitelists"):
        base = f"/v3/{domain}/{kind}"
        _ok(api.post(base, data={"address": f"form.{kind}.pv5qz@pv5qz-{kind}.test",
                                 "code": "550", "error": f"pv5qz {kind} error",
                                 "tag": TAG}))
        _ok(api.post(base, content=json.dumps([{
            "address": f"json.{kind}.pv5qz@pv5qz-{kind}.test", "code": "551",
            "error": f"pv5qz {kind} json error"}]),
            headers={"Content-Type": "application/json"}))
        csv = (f"address,code,error\nimport.{kind}.pv5qz@pv5qz-{kind}.test,552,"
               f"pv5qz {kind} import error\n").encode()
        _ok(api.post(f"{base}/import", files={"file": (f"{kind}.csv", csv, "text/csv")}))
    _ok(api.post(f"/v3/{domain}/whitelists", data={"domain": "pv5qz-allowed-domain.test"}))
    _free_text(api.post(f"/v3/{domain}/unsubscribes", data={
        "address": "tagged.pv5qz@pv5qz-unsubscribes.test",
        "tag": "list:tagged.pv5qz@pv5qz-unsubscribes.test"}))


def _privacy(api, live, domain: str) -> None:  # type: ignore[no-untyped-def]
    with live.client() as anonymous:
        _ok(anonymous.post("/v1/privacy/requests", data={
            "type": "access", "email": "form.pv5qz@pv5qz-privacy.test", "domain": domain,
            "name": "Pv5qz Form Requester"}))
    _ok(api.post("/v1/privacy/requests", data={
        "type": "restriction", "email": "relayed.pv5qz@pv5qz-privacy.test",
        "name": "Pv5qz Relayed"}))
    _ok(api.post("/v1/privacy/requests", data={
        "type": "rectification", "email": "old.pv5qz@pv5qz-privacy.test",
        "new_email": "new.pv5qz@pv5qz-privacy.test"}))
    [open_request] = [r for r in api.get("/v1/privacy/requests").json()["items"]
                      if r["state"] == "identity_unverified"]
    _free_text(api.post(f"/v1/privacy/requests/{open_request['id']}/extend", data={
        "months": "1", "reason": "waiting on ext.pv5qz@pv5qz-privacy.test"}))
    _ok(api.post("/v1/privacy/consents", data={
        "email": "consent.pv5qz@pv5qz-consent.test", "purpose": "tracking",
        "granted": "yes", "source": "signup-form"}))
    _free_text(api.post("/v1/privacy/consents", data={
        "email": "consent.pv5qz@pv5qz-consent.test", "purpose": "tracking",
        "granted": "no", "source": "src.pv5qz@pv5qz.test"}))


def _smtp_credentials(api, domain: str) -> None:  # type: ignore[no-untyped-def]
    """A login (a mailbox name can be a person's) and passwords: sealed, indexed, hashed."""
    base = f"/v3/domains/{domain}/credentials"
    _ok(api.post(base, data={"login": f"smtp.pv5qz@{domain}", "password": "pv5qz-first"}))
    _ok(api.put(f"{base}/smtp.pv5qz", data={"password": "pv5qz-second"}))
    _ok(api.post(base, files=[("login", (None, "smtp2.pv5qz")),
                              ("password", (None, "pv5qz-multipart"))]))


def _customer_text(api, domain: str, hook_url: str) -> None:  # type: ignore[no-untyped-def]
    """Clear-text fields a customer fills, given an address."""
    _ok(api.post(f"/v4/domains/{domain}/webhooks", data={
        "url": hook_url, "event_types": ["delivered", "unsubscribed"]}))
    _free_text(api.post("/v1/webhooks", data={
        "url": "https://hooks.example.com/mailhaven", "event_types": "opened",
        "description": "for hooks.pv5qz@pv5qz-webhook.test"}))
    _free_text(api.post("/v1/webhooks", data={
        "url": "https://hooks.example.com/mailhaven?owner=url.pv5qz@pv5qz-webhook.test",
        "event_types": "clicked"}))
    _free_text(api.put(f"/v3/{domain}/tags/{TAG}",
                       data={"description": "asked by tagdesc.pv5qz@pv5qz-tag.test"}))


def _templates(api, domain: str) -> None:  # type: ignore[no-untyped-def]
    """A template's content, description, author, comments and stored headers are the
    customer's content, sealed; its name and tags are identifiers, which hold no address."""
    base = f"/v3/{domain}/templates"
    _ok(api.post(base, data={
        "name": "welcome", "description": "for desc.pv5qz@pv5qz-tpl.test",
        "createdBy": "Pv5qz Author <author.pv5qz@pv5qz-tpl.test>",
        "template": "<p>Dear Pv5qz {{name}}, write to help.pv5qz@pv5qz-tpl.test</p>",
        "comment": "asked by comment.pv5qz@pv5qz-tpl.test", "headers": json.dumps({
            "From": f"Pv5qz Billing <billing@{domain}>", "Subject": "pv5qz subject",
            "Reply-To": "reply.pv5qz@pv5qz-tpl.test"})}))
    _ok(api.post(f"{base}/welcome/versions", files={
        "tag": (None, "v2"), "template": (None, "<p>v2 for v2.pv5qz@pv5qz-tpl.test</p>"),
        "comment": (None, "pv5qz second")}))
    _ok(api.put(f"{base}/welcome/versions/v2/copy/v3",
                params={"comment": "copy.pv5qz@pv5qz-tpl.test"}))
    _free_text(api.post(base, data={"name": "tpl.pv5qz@pv5qz-tpl.test"}))
    _ok(api.post(f"/v3/{domain}/messages", data={
        "to": "templated.pv5qz@pv5qz-tpl.test", "template": "welcome",
        "t:variables": json.dumps({"name": "Pv5qz Variable"})}))


def _routes(api) -> None:  # type: ignore[no-untyped-def]
    """A route's expression, actions and description may name anyone: all sealed."""
    _ok(api.post("/v3/routes", data={
        "expression": 'match_recipient("bob.pv5qz@pv5qz-route.test") and '
                      'match_header("subject", "pv5qz")',
        "action": ['forward("ann.pv5qz@pv5qz-route.test")',
                   'forward("https://hooks.acme.test/pv5qz?to=carl.pv5qz@pv5qz-route.test")',
                   'store(notify="https://hooks.acme.test/pv5qz")', "stop()"],
        "description": "for dora.pv5qz@pv5qz-route.test"}))


def _lists(api, domain: str) -> None:  # type: ignore[no-untyped-def]
    """A mailing list's members (form, JSON, CSV; their addresses, names and vars) are
    personal data, sealed; the list's name and description are customer text, sealed. The
    list's address is the customer's own on its domain (kept in clear, to route its mail)."""
    _ok(api.post("/v3/lists", data={
        "address": f"club@{domain}", "name": "Pv5qz Club",
        "description": "run by desc.pv5qz@pv5qz-list.test"}))
    base = f"/v3/lists/{quote(f'club@{domain}')}"
    _ok(api.post(f"{base}/members", data={
        "address": "Form Pv5qz <form.pv5qz@pv5qz-member.test>",
        "vars": json.dumps({"first": "Pv5qzFirst"})}))
    _ok(api.post(f"{base}/members.json", data={"members": json.dumps([
        "json.pv5qz@pv5qz-member.test",
        {"address": "obj.pv5qz@pv5qz-member.test", "name": "Obj Pv5qz",
         "vars": {"city": "pv5qz-city"}}])}))
    _ok(api.post(f"{base}/members.csv", files={"members": (
        "m.csv", b"address,name\ncsv.pv5qz@pv5qz-member.test,Csv Pv5qz\n", "text/csv")}))
    _ok(api.put(f"{base}/members/{quote('json.pv5qz@pv5qz-member.test')}",
                data={"name": "Renamed Pv5qz", "vars": json.dumps({"n": "pv5qz-var"})}))
    _ok(api.post(f"/v3/{domain}/messages", data={
        "from": f"club@{domain}", "to": f"club@{domain}", "subject": "Hi %recipient.first%",
        "text": "Dear %recipient_name%: %mailing_list_unsubscribe_url%"}))


def _deliver_and_unsubscribe(api, live, services, domain: str) -> None:  # type: ignore[no-untyped-def]
    """Every copy delivered to a sink; the first recipient unsubscribes in one click."""
    _ok(api.put(f"/v3/domains/{domain}/tracking/unsubscribe", data={"active": "yes"}))
    tracked = dataclasses.replace(services, settings=services.settings.with_(
        public_url=live.base_url))
    with WebhookReceiver() as receiver, Sink() as sink:
        _customer_text(api, domain, receiver.url)
        _send(api, domain)
        _templates(api, domain)
        deliver_due(tracked, sink)
        to_ingrid = next(r for r in sink.received if r.rcpt_tos == [RECIPIENT])
        one_click = to_ingrid.message["List-Unsubscribe"].strip("<>")
        _ok(api.post(urlsplit(one_click).path, content=b"List-Unsubscribe=One-Click"))
        assert send_webhooks(services) >= 2
    assert any(TOKEN in hook.body for hook in receiver.received)  # the customer is told


def test_no_column_holds_a_personal_value_in_clear(api, live, services, domain,
                                                   raw_dump) -> None:
    _suppress(api, domain)
    _privacy(api, live, domain)
    _smtp_credentials(api, domain)
    _routes(api)
    _lists(api, domain)
    _deliver_and_unsubscribe(api, live, services, domain)
    # Everything written is there to read back through the API (so, stored sealed).
    events = api.get(f"/v3/{domain}/events", params={"limit": 300}).json()["items"]
    assert {"accepted", "delivered", "unsubscribed"} <= {e["event"] for e in events}
    assert api.get(f"/v3/{domain}/unsubscribes/{quote(RECIPIENT)}").status_code == 200
    assert len(api.get(f"/v3/domains/{domain}/credentials").json()["items"]) == 2

    dump = raw_dump()
    findings = []
    for table in metadata.sorted_tables:
        for col in table.columns:
            name = f"{table.name}.{col.name}"
            declared = col.info["classification"].category
            held = sorted({v[:120] for v in dump.columns[name] if TOKEN in v.lower()})
            if held:
                findings.append(f"{name} (declared {declared}) holds in clear: "
                                f"{', '.join(map(repr, held[:3]))}")
    assert not findings, "personal values in clear:\n" + "\n".join(findings)
    # The dump reads every column: the tag, not personal, is there in clear.
    assert TAG.encode() in dump.columns["tags.tag"]


def test_one_person_in_two_accounts_cannot_be_linked_in_the_dump(
        api, second_api, second_account, domain, raw_dump) -> None:
    """Blind indexes are keyed per account: whoever reads the database cannot tell that two
    customers hold the same address, nor look one up with an index computed elsewhere."""
    for client, name in ((api, domain), (second_api, second_account.domain)):
        _ok(client.post(f"/v3/{name}/bounces", data={"address": RECIPIENT}))
    dump = raw_dump()
    indexes = dump.columns["suppressions.value_index"]
    assert len(indexes) == 2 and len(set(indexes)) == 2
    assert dump.holding(RECIPIENT.encode()) == []
