"""Issue 13's acceptance list, through the front doors a user has: routes and lists made
with the HTTP API, mail sent by smtplib to the real MX on loopback, the processor and the
route-POST sender run as `serve` runs them, the POSTs taken by a real HTTP receiver and
handed to django-anymail, copies delivered to an aiosmtpd sink, the stored message fetched
back with the API key, and the sender erased through the privacy API."""

from __future__ import annotations

import io
import json
import logging
import smtplib
import zipfile
from collections.abc import Iterator
from email import message_from_bytes, policy
from urllib.parse import parse_qs, quote, urlsplit

import django
import pytest
from django.conf import settings as django_settings_

from mailhaven.inbound import srs
from mailhaven.inbound.processor import LEASE_SECONDS
from mailhaven.inbound.service import QUEUE
from mailhaven.retention import service as retention
from mailhaven.services import Services
from tests.inbound.conftest import message, process_all, rows
from tests.inbound.test_actions_anymail import received_by_anymail
from tests.inbound.test_actions_support import a_message, send_route_posts
from tests.support import Hook, Sink, WebhookReceiver, deliver_due

MAILFROM = "bounces-9@shop.example.org"
DAY = 86_400.0


@pytest.fixture(scope="module", autouse=True)
def django_settings() -> None:
    if not django_settings_.configured:
        django_settings_.configure(INSTALLED_APPS=["anymail"], EMAIL_BACKEND=(
            "django.core.mail.backends.locmem.EmailBackend"))
        django.setup()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def quiet_library() -> Iterator[None]:
    """As `mailhaven` sets it (cli.main): aiosmtpd's per-command chatter, which names
    addresses, is not logged (the MX's, and the sink's that plays the far side)."""
    chatter = logging.getLogger("mail.log")
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    yield
    chatter.setLevel(level)


def make_route(api, expression: str, *actions: str, priority: int = 0) -> str:  # type: ignore[no-untyped-def]
    """A route as a client makes it (form fields, `action` repeated); its id."""
    made = api.post("/v3/routes", data={"priority": str(priority), "description": "e2e",
                                        "expression": expression, "action": list(actions)})
    assert made.status_code == 200, made.text
    assert made.json()["message"] == "Route has been created"
    return made.json()["route"]["id"]


def form(hook: Hook) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(hook.body.decode(), keep_blank_values=True).items()}


def run_everything(services: Services, sink: Sink | None = None) -> None:
    """What `serve` does in its own time: process the queue, make the POSTs, deliver."""
    process_all(services)
    send_route_posts(services)
    if sink is not None:
        deliver_due(services, sink)


def events(api, domain: str, event: str) -> list[dict]:  # type: ignore[no-untyped-def]
    answer = api.get(f"/v3/{domain}/events", params={"event": event})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


# 1 -----------------------------------------------------------------------------------------
def test_anymail_receives_what_a_route_made_through_the_api_forwards(
        mx, services, api, domain, receiver) -> None:
    make_route(api, f'match_recipient("support@{domain}")', f'forward("{receiver.url}")')
    make_route(api, r'match_recipient("(?P<user>[^@]+)@(.*)")',
               rf'forward("{receiver.url}/users/\g<user>/at/\2")', priority=5)
    raw = a_message(subject="Order 9", text="Invoice attached.\n\nOn Fri, Support wrote:\n"
                    "> send it\n", attachment=b"%PDF-1.4 the e2e invoice")
    assert mx.send(MAILFROM, [f"support@{domain}"], raw) == {}
    run_everything(services)

    hook, captured = sorted(receiver.received, key=lambda h: h.path)
    assert captured.path == f"/hooks/users/support/at/{domain}"  # captures, in the path
    assert hook.headers["Content-Type"].startswith("multipart/form-data")
    key = api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
    status, parsed = received_by_anymail(hook.body, hook.headers["Content-Type"], key)
    assert status == 200
    got = parsed[0].message
    assert str(got.from_email) == "Ann Buyer <ann@shop.example.org>"
    assert got["Subject"] == "Order 9"
    assert got.text.startswith("Invoice attached.")
    assert got.envelope_sender == MAILFROM
    assert got.envelope_recipient == f"support@{domain}"
    attachment, = got.attachments
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_bytes() == b"%PDF-1.4 the e2e invoice"
    with pytest.raises(Exception, match="incorrect signature"):  # somebody else's key
        received_by_anymail(hook.body, hook.headers["Content-Type"], "key-not-theirs")


# 2 -----------------------------------------------------------------------------------------
def test_store_and_notify_is_fetched_back_by_its_message_url(
        mx, services, api, domain, receiver, clock) -> None:
    make_route(api, f'match_recipient("orders@{domain}")', f'store(notify="{receiver.url}")')
    raw = a_message(subject="Order 10", attachment=b"%PDF-1.4 stored")
    mx.send(MAILFROM, [f"orders@{domain}"], raw)
    run_everything(services)

    hook, = receiver.received
    notified = form(hook)
    assert notified["recipient"] == f"orders@{domain}" and notified["subject"] == "Order 10"
    url = notified["message-url"]
    storage_key = rows(services)[0].message_id
    assert urlsplit(url).path == f"/v3/domains/{domain}/messages/{storage_key}"
    listed, = json.loads(notified["attachments"])
    assert listed["name"] == "invoice.pdf" and listed["size"] == len(b"%PDF-1.4 stored")

    stored = api.get(urlsplit(url).path)
    assert stored.status_code == 200, stored.text
    view = stored.json()
    assert view["recipients"] == f"orders@{domain}"
    assert view["sender"] == MAILFROM
    assert view["from"] == "Ann Buyer <ann@shop.example.org>"
    assert view["subject"] == "Order 10"
    assert view["body-plain"] == "Where is my parcel?\n"
    assert ["Subject", "Order 10"] in view["message-headers"]
    assert view["attachments"] == [listed]
    assert api.get(urlsplit(listed["url"]).path).content == b"%PDF-1.4 stored"
    mime = api.get(urlsplit(url).path, headers={"Accept": "message/rfc2822"})
    assert mime.status_code == 200
    assert raw.replace(b"\r\n", b"\n") in mime.json()["body-mime"].encode().replace(
        b"\r\n", b"\n")

    kept, = events(api, domain, "stored")
    assert kept["storage"]["key"] == storage_key and kept["recipient"] == f"orders@{domain}"
    accepted, = events(api, domain, "accepted")
    assert accepted["method"] == "smtp" and accepted["recipient"] == f"orders@{domain}"
    assert accepted["storage"]["key"] == storage_key

    # kept for 3 days, then gone (retention, as `serve` runs it)
    clock.advance(2 * DAY)
    retention.run(services.db, clock)
    assert api.get(urlsplit(url).path).status_code == 200
    clock.advance(2 * DAY)
    retention.run(services.db, clock)
    for path, accept in ((urlsplit(url).path, "application/json"),
                         (urlsplit(url).path, "message/rfc2822"),
                         (urlsplit(listed["url"]).path, "*/*")):
        expired = api.get(path, headers={"Accept": accept})
        assert (expired.status_code, expired.json()) == (404, {"message": "Message not found"})


# 3 -----------------------------------------------------------------------------------------
def test_priorities_stop_and_catch_all_as_mailgun_documents(
        mx, services, api, second_api, domain, receiver) -> None:
    make_route(second_api, "catch_all()", f'forward("{receiver.url}/another-account")')
    first = make_route(api, f'match_recipient("support@{domain}")',
                       f'forward("{receiver.url}/first")', "stop()", priority=0)
    make_route(api, 'match_header("subject", ".*urgent")', f'forward("{receiver.url}/urgent")',
               priority=1)
    make_route(api, "catch_all()", f'forward("{receiver.url}/catch-all")', priority=2)

    def posts() -> list[tuple[str, str, str]]:
        run_everything(services)
        got = sorted((h.path.rsplit("/", 1)[1], form(h)["recipient"], form(h)["subject"])
                     for h in receiver.received)
        receiver.received.clear()
        return got

    mx.send(MAILFROM, [f"support@{domain}", f"sales@{domain}"], message(subject="urgent help"))
    assert posts() == [("first", f"support@{domain}", "urgent help"),  # stop(): no more
                       ("urgent", f"sales@{domain}", "urgent help")]  # matched: no catch-all
    mx.send(MAILFROM, [f"sales@{domain}"], message(subject="hello"))
    assert posts() == [("catch-all", f"sales@{domain}", "hello")]  # nothing else matched

    changed = api.put(f"/v3/routes/{first}", data={"action": f'forward("{receiver.url}/first")'})
    assert changed.status_code == 200, changed.text
    mx.send(MAILFROM, [f"support@{domain}"], message(subject="urgent again"))
    assert posts() == [("first", f"support@{domain}", "urgent again"),  # without stop():
                       ("urgent", f"support@{domain}", "urgent again")]  # both fire


def test_a_failing_forward_is_visible_and_retried_on_the_webhook_schedule(
        mx, services, api, domain, clock) -> None:
    with WebhookReceiver(reply=lambda n: 503 if n == 1 else 200) as flaky:
        make_route(api, "catch_all()", f'forward("{flaky.url}")')
        mx.send(MAILFROM, [f"support@{domain}"], message())
        run_everything(services)
        post, = api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"]
        assert post["status"] == "pending" and post["recipient"] == f"support@{domain}"
        assert [a["status"] for a in post["attempts"]] == [503]
        assert send_route_posts(services) == 0  # not before its time
        clock.advance(600)
        assert send_route_posts(services) == 1
    post, = api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"]
    assert post["status"] == "sent" and [a["status"] for a in post["attempts"]] == [503, 200]
    assert len(flaky.received) == 2


# 4 -----------------------------------------------------------------------------------------
def test_forward_to_an_address_and_a_mailing_list_go_out_through_our_queue(
        mx, services, api, domain) -> None:
    make_route(api, f'match_recipient("support@{domain}")', 'forward("alice@elsewhere.test")')
    made = api.post("/v3/lists", data={"address": f"team@{domain}", "access_level": "members"})
    assert made.status_code == 200, made.text
    added = api.post(f"/v3/lists/{quote(f'team@{domain}')}/members.json", data={
        "members": json.dumps(["ann@shop.example.org", "bob@example.net", "cy@example.net"])})
    assert added.status_code == 200, added.text

    mx.send(MAILFROM, [f"support@{domain}"], a_message(subject="Forward me"))
    mx.send("ann@shop.example.org", [f"team@{domain}"], a_message(subject="For the team"))
    mx.send("eve@outsider.test", [f"team@{domain}"],
            message(sender="Eve <eve@outsider.test>", subject="Spam for the team"))
    with Sink() as sink:
        run_everything(services, sink)

    by_rcpt = {r.rcpt_tos[0]: r for r in sink.received}
    assert sorted(by_rcpt) == ["alice@elsewhere.test", "bob@example.net", "cy@example.net"]
    forwarded = by_rcpt["alice@elsewhere.test"]
    local, _, at = forwarded.mail_from.rpartition("@")
    assert at == domain and local.startswith("SRS0=")
    assert srs.reverse(services.vault, forwarded.mail_from, services.clock.now()) == MAILFROM
    assert forwarded.message["Subject"] == "Forward me"
    for member in ("bob@example.net", "cy@example.net"):  # members only, not the poster
        copy = by_rcpt[member].message
        assert copy["Subject"] == "For the team" and copy["List-Id"] == f"<team.{domain}>"
    # accepted: the three received (method smtp), then the copies queued (the forward,
    # the list's members); the outsider's post went to nobody
    accepted = sorted((e["recipient"], e["method"]) for e in events(api, domain, "accepted"))
    assert accepted == [("alice@elsewhere.test", "smtp"), ("bob@example.net", "http"),
                        ("cy@example.net", "http"), (f"support@{domain}", "smtp"),
                        (f"team@{domain}", "smtp"), (f"team@{domain}", "smtp")]


# 5 -----------------------------------------------------------------------------------------
MALFORMED = [
    b"no header separator and no colon at all\r\n",
    b"From: <<<broken@@\r\nContent-Type: multipart/mixed; boundary=\"never-closed\"\r\n"
    b"\r\n--never-closed\r\nContent-Type: text/plain\r\n\r\nhalf a part\r\n",
    b"Subject: \xff\xfe not utf-8 \x80\r\nFrom: ann@sender.test\r\n\r\nbody \xc3\x28\r\n",
]


def test_refusals_and_bad_mail_are_clear_errors_that_lose_nothing_else(
        mx, services, api, domain, receiver) -> None:
    make_route(api, "catch_all()", f'forward("{receiver.url}")')
    with mx.client() as client:
        client.ehlo()
        client.mail(MAILFROM)
        assert client.rcpt("someone@nobody-owns.test") == (550, b"5.7.1 Relaying denied")
        assert client.rcpt(f"support@{domain}")[0] == 250  # the next one is still taken
        assert client.data(message(subject="after a refused rcpt"))[0] == 250

        for n, raw in enumerate(MALFORMED):
            assert client.sendmail(MAILFROM, [f"support@{domain}"], raw) == {}
            assert client.sendmail(MAILFROM, [f"support@{domain}"],
                                   message(subject=f"after malformed {n}")) == {}

        big = message() + (b"z" * 998 + b"\r\n") * (30 * 1024 * 1024 // 1000)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(MAILFROM, [f"support@{domain}"], big)  # SIZE declared: at MAIL
        assert refused.value.smtp_code == 552 and b"5.3.4" in refused.value.smtp_error
        client.rset()
        client.mail(MAILFROM)  # SIZE not declared: read, discarded, refused after DATA
        client.rcpt(f"support@{domain}")
        code, reply = client.data(big)
        assert code == 552 and reply.startswith(b"5.3.4 Message size exceeds"), reply
        assert client.sendmail(MAILFROM, [f"support@{domain}"],
                               message(subject="after 30 MB, same connection")) == {}
    mx.send(MAILFROM, [f"support@{domain}"], message(subject="after 30 MB, new connection"))

    bomb = api.post("/v3/routes", data={"expression": 'match_recipient("(a+)+$")',
                                        "action": f'forward("{receiver.url}")'})
    assert bomb.status_code == 400
    assert bomb.json()["message"].startswith("Invalid parameter: expression")
    assert api.get("/v3/routes").json()["total_count"] == 1

    run_everything(services)
    subjects = sorted(form_or_parts(h) for h in receiver.received)
    expected = sorted(["after a refused rcpt", "after 30 MB, same connection",
                       "after 30 MB, new connection",
                       *(f"after malformed {n}" for n in range(len(MALFORMED)))])
    assert [s for s in subjects if s.startswith("after")] == expected
    # the malformed ones too, as they came: every POST sent, and one anymail can parse
    listed = api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"]
    assert [p["status"] for p in listed] == ["sent"] * (len(expected) + len(MALFORMED))
    key = api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
    for hook in receiver.received:
        status, parsed = received_by_anymail(hook.body, hook.headers["Content-Type"], key)
        assert status == 200 and parsed[0].message.envelope_recipient == f"support@{domain}"
    assert len(events(api, domain, "accepted")) == len(expected) + len(MALFORMED)
    assert {r.status for r in rows(services)} == {"processed"}


def form_or_parts(hook: Hook) -> str:
    """The subject field of a POST, urlencoded or multipart."""
    if hook.headers["Content-Type"].startswith("application/x-www-form-urlencoded"):
        return form(hook).get("subject", "")
    whole = message_from_bytes(b"Content-Type: " + hook.headers["Content-Type"].encode()
                               + b"\r\n\r\n" + hook.body, policy=policy.default)
    for part in whole.iter_parts():
        if part.get_param("name", header="content-disposition") == "subject":
            return part.get_content()
    return ""


# 6 -----------------------------------------------------------------------------------------
def test_after_a_crash_a_fresh_process_handles_the_mail_exactly_once(
        mx, services, api, domain, receiver, clock) -> None:
    make_route(api, f'match_recipient("support@{domain}")', f'forward("{receiver.url}")')
    mx.send(MAILFROM, [f"support@{domain}"], message(subject="before the crash"))
    mx.send(MAILFROM, [f"support@{domain}"], message(subject="claimed, then the crash"))
    with services.db.transaction() as session:  # the second was claimed by the dead one
        QUEUE.claim(session, owner="dead", now=clock.now(), limit=1,
                    lease_seconds=LEASE_SECONDS)

    fresh = Services.start(services.settings, clock, migrate=False)  # a new process
    try:
        assert process_all(fresh, owner="after-restart") == 1
        clock.advance(LEASE_SECONDS + 1)
        assert process_all(fresh, owner="after-restart") == 1
        assert process_all(fresh) == 0 and process_all(services) == 0
        assert send_route_posts(fresh) == 2
    finally:
        fresh.close()
    assert send_route_posts(services) == 0
    assert sorted(form(h)["subject"] for h in receiver.received) == [
        "before the crash", "claimed, then the crash"]
    assert len(events(api, domain, "accepted")) == 2
    assert {r.status for r in rows(services)} == {"processed"}


# 7 -----------------------------------------------------------------------------------------
SENDER = "zq8.sender@far-away-zq8.test"
NAME = "Zq8Ottoline Sender"
SUBJECT = "Zq8subject: my tax number 4711"
BODY = "zq8body: my tax number is 4711-zq8"
PERSONAL = (SENDER, "zq8.sender", "far-away-zq8", NAME, SUBJECT, BODY)


def _needles(value: str) -> set[bytes]:
    forms = {value, value.lower(), value.upper()}
    return {f.encode() for f in forms} | {json.dumps(f)[1:-1].encode() for f in forms}


def _the_tests_own(record: logging.LogRecord, api_url: str) -> bool:
    """The test's own HTTP client's lines (requests to the API under test, the erasure's
    path names the address), and uvicorn's access log, which `serve` turns off
    (access_log=False: its logger stops propagating) but pytest's capture hears all the
    same."""
    return record.name == "uvicorn.access" or (
        record.name.startswith(("httpx", "httpcore")) and api_url in record.getMessage())


def test_erasing_the_sender_leaves_nothing_of_them_after_all_of_it(
        quiet_library, mx, services, api, live, domain, receiver, raw_dump, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    make_route(api, f'match_recipient("support@{domain}")', f'forward("{receiver.url}")',
               f'store(notify="{receiver.url}")', 'forward("alice@elsewhere.test")')
    api.post("/v3/lists", data={"address": f"team@{domain}", "access_level": "everyone"})
    api.post(f"/v3/lists/{quote(f'team@{domain}')}/members", data={"address": "bob@example.net"})
    mx.send(SENDER, [f"support@{domain}", f"team@{domain}"],
            message(sender=f"{NAME} <{SENDER}>", subject=SUBJECT, body=BODY))
    with Sink() as sink:
        run_everything(services, sink)
    assert len(receiver.received) == 2 and len(sink.received) == 2  # it all happened
    storage_key = rows(services)[0].message_id
    exported = api.get(f"/v1/privacy/recipients/{quote(SENDER)}")
    assert exported.status_code == 200
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        mail = json.loads(archive.read("export.json"))["categories"]["received_mail"]
    assert sorted((m["role"], m["address"]) for m in mail) == [("sender", SENDER)] * 2

    erased = api.delete(f"/v1/privacy/recipients/{quote(SENDER)}")
    assert erased.status_code == 200, erased.text
    with Sink() as sink:
        run_everything(services, sink)  # nothing left to do, nothing breaks

    assert rows(services) == []
    after = api.get(f"/v1/privacy/recipients/{quote(SENDER)}")  # their export: nothing
    assert (after.status_code, after.json()) == (404, {"message": "Recipient not found"})
    # what the API still shows: the copies sent on (forward, list) no longer name them,
    # and no body of this mail, the received one or a copy, can be read
    seen = api.get(f"/v3/{domain}/events", params={"limit": 300}).json()["items"]
    assert seen and all(SENDER not in json.dumps(e) for e in seen)
    for stored in {e["storage"]["url"] for e in seen if e.get("storage")}:
        assert api.get(urlsplit(stored).path).status_code == 404
    gone = api.get(f"/v3/domains/{domain}/messages/{storage_key}")
    assert gone.status_code == 404
    dump = raw_dump()
    assert dump.holding(domain.encode())  # the scan sees what is kept in clear
    found = {v: dump.holding(n) for v in PERSONAL for n in _needles(v) if dump.holding(n)}
    assert found == {}
    logged = "\n".join(r.getMessage() for when in ("setup", "call")
                       for r in caplog.get_records(when)  # type: ignore[arg-type]
                       if not _the_tests_own(r, live.base_url))
    assert '"kind": "mx"' in logged and '"kind": "route-post"' in logged
    for value in PERSONAL:
        assert value.lower() not in logged.lower(), value
