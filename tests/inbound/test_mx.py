"""The MX with real SMTP clients on loopback: mail for an account's domain is taken, sealed
and queued before its 250; anything else is refused at RCPT (never an open relay); the
return paths still take bounces; STARTTLS; size limits and malformed mail lose nothing else."""

from __future__ import annotations

import smtplib
import ssl
import time

import pytest
from sqlalchemy import select, update

from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.inbound.models import WAITING
from mailhaven.messages.models import Message
from mailhaven.submission.tls import SELF_SIGNED_FILE
from tests.feedback.test_reports import _delivered, _dsn, _events
from tests.inbound.conftest import (
    RunningMx,
    message,
    parsed,
    process_all,
    rows,
    stored_mime,
    with_nameserver,
)

TRACE = ("Received", "Authentication-Results", "X-Mailgun-Sflag", "X-Mailgun-Sscore",
         "X-Mailgun-Spf", "X-Mailgun-Dkim-Check-Result")


def test_mail_for_an_owned_domain_is_sealed_and_queued_before_250(mx, services,
                                                                  account) -> None:
    with mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        assert client.rcpt("support@mg.acme.test")[0] == 250
        assert client.rcpt("Sales@MG.ACME.TEST")[0] == 250
        code, reply = client.data(message())
    assert code == 250 and reply.startswith(b"2.0.0 OK: queued as ")
    storage_key = reply.decode().rsplit(" ", 1)[1]
    queued = rows(services)
    assert [r.status for r in queued] == [WAITING, WAITING]
    assert {r.message_id for r in queued} == {storage_key}
    assert {r.account_id for r in queued} == {account[0]}
    # the addresses are sealed: the rows hold no address in clear
    assert all(b"sender.test" not in r.recipient_sealed for r in queued)
    raw = stored_mime(services, storage_key)
    got = parsed(raw)
    for name in TRACE:
        assert got[name], name
    assert raw.index(b"Received:") < raw.index(b"From: Ann Sender")  # prepended
    assert got["X-Mailgun-Sflag"] == "No" and got["X-Mailgun-Sscore"] == "0.0"
    assert got.get_content().strip() == "Where is my parcel?"


def test_the_accepted_event_says_smtp_once_processed(mx, services, api, domain) -> None:
    mx.send("ann@sender.test", [f"support@{domain}"], message())
    assert _events(api, domain, "accepted") == []  # not yet: the processor records it
    assert process_all(services) == 1
    [event] = _events(api, domain, "accepted")
    assert event["method"] == "smtp"
    assert event["recipient"] == f"support@{domain}"
    assert event["envelope"]["sender"] == "ann@sender.test"
    assert event["message"]["headers"]["subject"] == "Order 42"
    assert event["message"]["headers"]["message-id"] == "m42@sender.test"
    assert event["storage"]["key"] == rows(services)[0].message_id
    assert rows(services)[0].status == "processed"
    assert process_all(services) == 0  # once


@pytest.mark.parametrize("rcpt", ["someone@example.org", "support@acme.test",
                                  "support@sub.mg.acme.test", "no-at-sign", "a@b@mg.acme.test"])
def test_other_recipients_are_refused_never_relayed(mx, services, rcpt) -> None:
    with mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        code, reply = client.rcpt(rcpt)
    assert code in (550, 553), reply
    if "@" in rcpt and rcpt.count("@") == 1:
        assert (code, reply) == (550, b"5.7.1 Relaying denied")
    assert rows(services) == []


def test_each_account_receives_its_own_domains_mail(mx, services, account,
                                                    second_account) -> None:
    mx.send("ann@sender.test", ["a@mg.acme.test", f"b@{second_account.domain}"], message())
    by_account = {r.account_id: r for r in rows(services)}
    assert set(by_account) == {account[0], second_account.account_id}
    with services.db.sessions() as session:
        owners = {m.id: m.account_id for m in session.scalars(select(Message))}
    # one stored message per receiving domain, each its account's
    assert {owners[r.message_id] for r in by_account.values()} == set(by_account)
    assert by_account[account[0]].message_id != by_account[second_account.account_id].message_id


def test_a_bounce_to_a_return_path_still_becomes_a_failed_event(mx, api, services,
                                                                  domain) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    mx.send("", [return_path], _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown"))
    [failed] = _events(api, domain, "failed")
    assert failed["recipient"] == "ann@example.org"
    assert rows(services) == []  # a report is no received mail
    forged = return_path.replace("bounce+", "bounce+9")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mx.send("", [forged], _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown"))


def test_starttls_is_offered_and_auth_is_not(services, dns_server, domain) -> None:
    loopback = with_nameserver(services, dns_server, hostname="127.0.0.1")
    with RunningMx(loopback) as mx, mx.client() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        context = ssl.create_default_context(
            cafile=str(loopback.settings.data_dir / SELF_SIGNED_FILE))
        client.starttls(context=context)
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGFubgBzZWNyZXQ=")[0] == 502
        client.sendmail("ann@sender.test", ["support@mg.acme.test"], message())
    raw = stored_mime(services, rows(services)[0].message_id)
    assert "with ESMTPS" in parsed(raw)["Received"]


def test_a_30_mb_message_is_refused_and_the_connection_still_works(mx, services) -> None:
    big = message(body="x" * 76 + "\n") + b"y" * 76 + b"\r\n"
    big += (b"z" * 998 + b"\r\n") * (30 * 1024 * 1024 // 1000)
    with mx.client() as client:
        client.ehlo()
        # said up front (SIZE): refused at MAIL
        code, reply = client.mail("ann@sender.test", [f"SIZE={len(big)}"])
        assert code == 552 and reply.startswith(b"5.3.4 Message size exceeds"), reply
        client.rset()
        # not said: read, discarded, refused at the end of DATA
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        code, reply = client.data(big)
        assert code == 552 and b"5.3.4" in reply and b"26214400 bytes" in reply, reply
        # the same connection takes the next message
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        assert client.data(message(subject="small one"))[0] == 250
    mx.send("bob@sender.test", ["support@mg.acme.test"], message(subject="another client"))
    subjects = {parsed(stored_mime(services, r.message_id))["Subject"] for r in rows(services)}
    assert subjects == {"small one", "another client"}


@pytest.mark.parametrize("raw", [
    b"no header separator and no colon at all\r\n",
    b"From: <<<broken@@\r\nContent-Type: multipart/mixed; boundary=\"never-closed\"\r\n"
    b"\r\n--never-closed\r\nContent-Type: text/plain\r\n\r\nhalf a part\r\n",
    b"Subject: \xff\xfe not utf-8 \x80\r\nFrom: ann@sender.test\r\n\r\nbody \xc3\x28\r\n",
])
def test_malformed_mail_is_accepted_and_loses_nothing_else(mx, services, api, domain,
                                                           raw) -> None:
    with mx.client() as client:
        assert client.sendmail("ann@sender.test", [f"support@{domain}"], raw) == {}
        assert client.sendmail("bob@sender.test", [f"help@{domain}"], message()) == {}
    stored = [stored_mime(services, r.message_id) for r in rows(services)]
    assert stored[0].endswith(raw) and stored[1].endswith(message().replace(b"\n", b"\r\n")
                                                          .replace(b"\r\r\n", b"\r\n"))
    assert process_all(services) == 2
    assert {r.status for r in rows(services)} == {"processed"}
    assert len(_events(api, domain, "accepted")) == 2


def test_the_banner_names_mailhaven_not_the_library(mx) -> None:
    with smtplib.SMTP() as client:
        code, banner = client.connect("127.0.0.1", mx.port)
        _, features = client.ehlo()
    assert code == 220 and banner.decode() == "mx.mailhaven.test Mailhaven ESMTP"
    assert b"aiosmtpd" not in features.lower() and b"python" not in banner.lower()


def _connect_when_a_session_is_free(mx: RunningMx) -> smtplib.SMTP:
    """The server counts a closed session out when it sees the close: a moment later."""
    for _ in range(200):
        try:
            return mx.client()
        except smtplib.SMTPConnectError:
            time.sleep(0.05)
    raise AssertionError("no session came free")


@pytest.mark.parametrize("cap", [{"mx_max_sessions": 2}, {"mx_max_sessions_per_ip": 2}])
def test_sessions_over_the_cap_are_told_421_at_connect(services, dns_server, domain,
                                                       cap) -> None:
    with RunningMx(with_nameserver(services, dns_server, **cap)) as mx:
        first, second = mx.client(), mx.client()
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            mx.client()
        assert refused.value.smtp_code == 421
        assert refused.value.smtp_error.startswith(b"4.7.0 Too many connections")
        # the sessions open still work; once one ends, a newcomer is served
        assert second.sendmail("ann@sender.test", ["support@mg.acme.test"], message()) == {}
        first.quit()
        with _connect_when_a_session_is_free(mx) as third:
            assert third.sendmail("bob@sender.test", ["help@mg.acme.test"], message()) == {}
        second.quit()
    assert len(rows(services)) == 2


def test_a_header_over_1_mib_is_refused_and_the_connection_still_works(mx, services) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 60) for i in range(16_000))
    huge = filler + message()
    with mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        code, reply = client.data(huge)
        assert code == 552 and reply.startswith(b"5.3.4 Message header exceeds"), reply
        assert b"1048576 bytes" in reply
        # a large header under the limit is taken, on the same connection
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        assert client.data(filler[:900_000].rpartition(b"\r\n")[0] + b"\r\n"
                           + message(subject="big header"))[0] == 250
    [row] = rows(services)
    assert parsed(stored_mime(services, row.message_id))["Subject"] == "big header"


def test_where_verification_is_required_an_unverified_domain_receives_nothing(
        services, dns_server, domain, account) -> None:
    strict = with_nameserver(services, dns_server, require_verified_domains=True)
    with RunningMx(strict) as mx, mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        # a newcomer's unverified claim to a name whose MX points here takes no mail
        assert client.rcpt(f"support@{domain}") == (550, b"5.7.1 Relaying denied")
    with services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.name == domain)
                        .values(state=ACTIVE_DOMAIN))
    with RunningMx(strict) as mx:
        assert mx.send("ann@sender.test", [f"support@{domain}"], message()) == {}
    assert [r.account_id for r in rows(services)] == [account[0]]


@pytest.mark.parametrize("report_first", [False, True])
def test_a_report_and_received_mail_go_in_separate_transactions(mx, api, services, domain,
                                                                report_first) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    first, second = ((return_path, f"support@{domain}") if report_first
                     else (f"support@{domain}", return_path))
    with mx.client() as client:
        client.ehlo()
        client.mail("")
        assert client.rcpt(first)[0] == 250
        # the other kind waits for a transaction of its own (each has its own reply)
        assert client.rcpt(second) == (
            452, b"4.5.3 Please send to this recipient in another transaction")
        report = _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown")
        assert client.data(report)[0] == 250
        client.mail("")
        assert client.rcpt(second)[0] == 250
        assert client.data(report)[0] == 250
    [failed] = _events(api, domain, "failed")  # the report was handled, once
    assert failed["recipient"] == "ann@example.org"
    assert len(rows(services)) == 1  # and the received mail was stored, once


def test_a_message_that_went_round_too_often_is_refused_as_a_loop(mx, services) -> None:
    def hops(count: int) -> bytes:
        return b"".join(b"Received: from relay%d.example.org by relay%d.example.org;\r\n"
                        b"\tSat, 5 Dec 2026 10:00:00 +0000\r\n" % (i, i + 1)
                        for i in range(count))

    with mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        assert client.data(hops(51) + message()) == (554, b"5.4.6 Too many hops: a mail loop")
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        assert client.data(hops(50) + message(subject="50 hops"))[0] == 250
    [row] = rows(services)
    assert parsed(stored_mime(services, row.message_id))["Subject"] == "50 hops"


def test_a_deleted_domain_receives_nothing_from_the_moment_it_is_deleted(mx, api,
                                                                        domain) -> None:
    with mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        assert client.rcpt(f"support@{domain}")[0] == 250  # looked up, and remembered
        client.rset()
        assert api.delete(f"/v3/domains/{domain}").status_code == 200
        client.mail("ann@sender.test")
        assert client.rcpt(f"support@{domain}") == (550, b"5.7.1 Relaying denied")


def test_data_is_taken_as_sent_dots_and_all_and_an_overlong_line_is_refused(mx,
                                                                         services) -> None:
    body = "..leading dots stay\n.\n. \nlast\n"
    with mx.client() as client:
        client.ehlo()
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        assert client.data(message(body=body))[0] == 250
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        code, _ = client.data(message() + b"x" * 1200 + b"\r\n")
        assert code == 500  # RFC 5321 4.5.3.1.6: a line is at most 1000 octets
        client.mail("ann@sender.test")
        client.rcpt("support@mg.acme.test")
        assert client.data(message(subject="after"))[0] == 250
    stored = [parsed(stored_mime(services, r.message_id)) for r in rows(services)]
    assert stored[0].get_content().replace("\r\n", "\n") == body
    assert [m["Subject"] for m in stored] == ["Order 42", "after"]
