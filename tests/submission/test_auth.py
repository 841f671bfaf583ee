"""AUTH PLAIN and LOGIN, only under TLS; wrong passwords slowed and throttled; and no
message without a login."""

from __future__ import annotations

import base64
import smtplib

import pytest
from prometheus_client import REGISTRY

from mailhaven.credentials import service as credentials
from mailhaven.domains.service import owned_domain
from mailhaven.submission.throttle import WINDOW, AuthThrottle
from tests.submission.conftest import LOGIN, PASSWORD, RunningSubmission, on_loopback

DOMAIN = "mg.acme.test"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _plain(login: str = LOGIN, password: str = PASSWORD) -> str:
    """AUTH PLAIN's argument: no authorization identity, the login, the password."""
    return "PLAIN " + _b64(f"\0{login}\0{password}")


def _starttls(submission: RunningSubmission, source: str = "127.0.0.1") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", submission.port, timeout=60,
                          source_address=(source, 0))
    client.starttls(context=submission.context())
    client.ehlo()
    return client


def test_auth_is_neither_offered_nor_taken_before_starttls(submission) -> None:
    with smtplib.SMTP("127.0.0.1", submission.port, timeout=60) as client:
        client.ehlo()
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        code, reply = client.docmd("AUTH", _plain())
        assert (code, reply) == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert client.mail(f"news@{DOMAIN}")[0] == 530
        client.starttls(context=submission.context())
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]


def test_the_implicit_tls_port_offers_auth_at_once(submission) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", submission.tls_port, timeout=60,
                          context=submission.context()) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert "starttls" not in client.esmtp_features
        assert client.mail(f"news@{DOMAIN}") == (530, b"5.7.0 Authentication required")
        assert client.login(LOGIN, PASSWORD)[0] == 235
        assert client.mail(f"news@{DOMAIN}")[0] == 250


def test_plain_and_login_with_or_without_an_initial_response(submission) -> None:
    exchanges = [
        [("AUTH", _plain())],
        [("AUTH", "PLAIN"), (_plain().split()[1], "")],
        [("AUTH", f"LOGIN {_b64(LOGIN)}"), (_b64(PASSWORD), "")],
        [("AUTH", "LOGIN"), (_b64(LOGIN), ""), (_b64(PASSWORD), "")],
    ]
    for exchange in exchanges:
        with _starttls(submission) as client:
            replies = [client.docmd(command, argument) for command, argument in exchange]
            assert [code for code, _ in replies] == [334] * (len(exchange) - 1) + [235]
            assert client.mail(f"news@{DOMAIN}")[0] == 250
    with _starttls(submission) as client:
        assert client.docmd("AUTH", "LOGIN")[1] == _b64("Username:").encode()
        assert client.docmd("*")[0] == 501  # the client may cancel (RFC 4954)
        assert client.mail(f"news@{DOMAIN}")[0] == 530


@pytest.mark.parametrize(("login", "password"), [
    (LOGIN, "wrong-pass"), (LOGIN.upper(), "wrong-pass"), ("nobody@mg.acme.test", PASSWORD),
    ("mailer", PASSWORD), ("", PASSWORD)])
def test_a_wrong_login_or_password_is_535(submission, login: str, password: str) -> None:
    before = REGISTRY.get_sample_value("mailhaven_smtp_auth_failures_total",
                                       {"reason": "credentials"}) or 0
    with _starttls(submission) as client:
        code, reply = client.docmd("AUTH", _plain(login, password))
        assert (code, reply) == (535, b"5.7.8 Authentication credentials invalid")
        assert client.mail(f"news@{DOMAIN}")[0] == 530
    assert REGISTRY.get_sample_value("mailhaven_smtp_auth_failures_total",
                                     {"reason": "credentials"}) == before + 1


def test_a_guessed_login_is_throttled_but_its_own_sender_still_logs_in(
        services, credential, clock) -> None:
    """127.0.0.2 is the sender's server, 127.0.0.1 someone guessing its password."""
    throttle = AuthThrottle(clock, login_limit=3, delay_step=0)
    with RunningSubmission(on_loopback(services), throttle) as submission:
        with _starttls(submission, source="127.0.0.2") as client:
            client.login(LOGIN, PASSWORD)
        for _ in range(3):
            with _starttls(submission) as client, pytest.raises(smtplib.SMTPAuthenticationError):
                client.login(LOGIN, "guess")
        with _starttls(submission) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.login(LOGIN, PASSWORD)  # the right one: not even looked at
            assert (refused.value.smtp_code, refused.value.smtp_error) \
                == (454, b"4.7.0 Too many failed logins: try again later")
        with _starttls(submission, source="127.0.0.2") as client:
            assert client.login(LOGIN, PASSWORD)[0] == 235
        clock.advance(WINDOW)
        with _starttls(submission) as client:
            assert client.login(LOGIN, PASSWORD)[0] == 235


def test_a_network_failing_with_many_logins_is_throttled(services, credential, clock) -> None:
    throttle = AuthThrottle(clock, network_limit=3, delay_step=0)
    with RunningSubmission(on_loopback(services), throttle) as submission:
        with _starttls(submission) as client:
            for n in range(3):
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login(f"user{n}@{DOMAIN}", "guess")
            code, _ = client.docmd("AUTH", _plain())
            assert code == 454
        with _starttls(submission, source="127.0.0.3") as client:  # elsewhere: not at all
            assert client.login(LOGIN, PASSWORD)[0] == 235


def test_a_deleted_login_or_changed_password_stops_working_at_once(services, account,
                                                                  submission) -> None:
    """The server remembers a login and password it verified (saving argon2 for the next
    connection), but never past a change."""
    def change(work) -> None:  # type: ignore[no-untyped-def]
        with services.db.transaction() as session:
            work(session, owned_domain(session, account[0], DOMAIN))

    for _ in range(2):  # the second login is remembered
        with _starttls(submission) as client:
            assert client.login(LOGIN, PASSWORD)[0] == 235
    change(lambda s, d: credentials.change_password(s, services.vault, d, LOGIN, "n3w-pass"))
    with _starttls(submission) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login(LOGIN, PASSWORD)
    with _starttls(submission) as client:
        assert client.login(LOGIN, "n3w-pass")[0] == 235
    change(lambda s, d: credentials.delete(s, services.vault, d, LOGIN))
    with _starttls(submission) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login(LOGIN, "n3w-pass")


def test_auth_plain_acts_only_as_its_own_login(submission) -> None:
    """RFC 4616's authorization identity may be empty or the login itself (however
    spelled); a login can't act as another."""
    for authorize in ("", LOGIN, LOGIN.upper()):
        with _starttls(submission) as client:
            assert client.docmd("AUTH", "PLAIN " + _b64(f"{authorize}\0{LOGIN}\0{PASSWORD}"))[0] \
                == 235
    with _starttls(submission) as client:
        assert client.docmd("AUTH", "PLAIN " + _b64(f"ceo@{DOMAIN}\0{LOGIN}\0{PASSWORD}")) \
            == (535, b"5.7.8 Authentication credentials invalid")
        assert client.mail(f"news@{DOMAIN}")[0] == 530


def test_auth_is_refused_during_a_mail_transaction(submission) -> None:
    """RFC 4954 4: AUTH after MAIL FROM is a 503; after RSET it may come again (and be
    refused, once logged in, as a second AUTH)."""
    with _starttls(submission) as client:
        assert client.login(LOGIN, PASSWORD)[0] == 235
        assert client.mail(f"news@{DOMAIN}")[0] == 250
        assert client.docmd("AUTH", _plain()) == (
            503, b"5.5.1 AUTH not permitted during a mail transaction")
        assert client.rcpt("ann@example.org")[0] == 250
        client.rset()
        assert client.docmd("AUTH", _plain()) == (503, b"5.5.1 Already authenticated")


@pytest.mark.parametrize("change", ["delete", "password"])
def test_an_open_session_stops_sending_once_its_login_is_deleted_or_changed(
        api, services, account, submission, change: str) -> None:
    """Each MAIL checks the login AUTH proved is still there with the same password: a
    deleted credential stops at once, not when its sessions end."""
    message = f"From: news@{DOMAIN}\r\nTo: ann@example.org\r\nSubject: hi\r\n\r\nhi\r\n"
    with _starttls(submission) as client:
        assert client.login(LOGIN, PASSWORD)[0] == 235
        assert client.sendmail(f"news@{DOMAIN}", ["ann@example.org"], message) == {}
        with services.db.transaction() as session:
            domain = owned_domain(session, account[0], DOMAIN)
            if change == "delete":
                credentials.delete(session, services.vault, domain, LOGIN)
            else:
                credentials.change_password(session, services.vault, domain, LOGIN, "n3w-pass")
        assert client.mail(f"news@{DOMAIN}") == (
            530, b"5.7.0 Authentication required: the login was deleted or its password "
                 b"changed")
        assert client.mail(f"news@{DOMAIN}")[0] == 530
        if change == "password":  # the session may log in again, with the new password
            client.ehlo()
            assert client.login(LOGIN, "n3w-pass")[0] == 235
            assert client.mail(f"news@{DOMAIN}")[0] == 250
    items = api.get(f"/v3/{DOMAIN}/events", params={"event": "accepted"}).json()["items"]
    assert len(items) == 1


def test_a_login_sends_as_its_own_account_only(api, services, submission,
                                               second_account) -> None:
    """Bee's login submits as Bee: Acme's events never see it, and Acme's domain is not
    Bee's to send from."""
    with services.db.transaction() as session:
        credentials.create(session, services.vault,
                           owned_domain(session, second_account.account_id,
                                        second_account.domain),
                           f"app@{second_account.domain}", "bee-pass")
    with _starttls(submission) as client:
        client.login(f"app@{second_account.domain}", "bee-pass")
        assert client.mail(f"news@{DOMAIN}")[0] == 550
        client.sendmail(f"news@{second_account.domain}", ["ann@example.org"],
                        f"From: news@{second_account.domain}\r\nTo: ann@example.org\r\n"
                        "Subject: hi\r\n\r\nhi\r\n")
    assert api.get(f"/v3/{DOMAIN}/events").json()["items"] == []
