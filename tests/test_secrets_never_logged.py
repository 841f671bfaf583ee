"""Secrets are never logged (SPEC N14): every flow that handles an API key, a webhook
signing key, an SMTP password, a panel password or a one-time link runs here with every
logger captured, and none of those values appears in any record."""

from __future__ import annotations

import base64
import logging
import re
import smtplib

import pytest

from mailhaven.services import Services
from tests.submission.conftest import RunningSubmission, on_loopback
from tests.support import LiveServer, Sink, deliver_due, with_relay
from tests.web.helpers import PASSWORD, add_user, http_log_in

SMTP_PASSWORD = "smtp-pass-9f8e7d6c5b4a"
WRONG_KEY = "key-0123456789abcdef0123456789abcdef"


def test_no_secret_reaches_the_log(services: Services, live: LiveServer, api,  # type: ignore[no-untyped-def]
                                   account: tuple[str, str], domain: str,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [account[1], WRONG_KEY, SMTP_PASSWORD, PASSWORD]

    # the API key at work, a wrong one, the webhook signing key read and rotated
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi",
        "text": "Hello"}).status_code == 200
    with live.client(WRONG_KEY) as stranger:
        assert stranger.get("/v3/domains").status_code == 401
    secrets.append(api.get("/v5/accounts/http_signing_key").json()["http_signing_key"])
    secrets.append(api.post("/v5/accounts/http_signing_key").json()["http_signing_key"])

    # an SMTP login made through the API, used, and guessed wrong
    assert api.post(f"/v3/domains/{domain}/credentials", data={
        "login": f"mailer@{domain}", "password": SMTP_PASSWORD}).status_code == 200
    with RunningSubmission(on_loopback(services)) as smtp:
        for password, expected in ((SMTP_PASSWORD, 235), ("wrong-" + SMTP_PASSWORD, 535)):
            with smtplib.SMTP("127.0.0.1", smtp.port, timeout=30) as client:
                client.starttls(context=smtp.context())
                client.ehlo()
                assert client.docmd("AUTH", _plain(f"mailer@{domain}", password))[0] == expected

    # a panel login, a wrong password, and a recipient's one-time privacy link
    add_user(services, account[0], email="ops@acme.test")
    with live.client() as browser:
        assert http_log_in(browser, "ops@acme.test", "not the password").status_code != 303
        assert http_log_in(browser, "ops@acme.test").status_code == 303
        assert browser.post("/v1/privacy/requests", data={
            "domain": domain, "email": "ann@example.org", "type": "access"}).status_code == 202
        with Sink() as sink:
            deliver_due(with_relay(services, sink), sink)
            mail = next(r.message for r in sink.received
                        if r.message["Subject"] == "Confirm your privacy request")
        [token] = re.findall(r"/v1/privacy/verify/(\S+)", mail.get_content())
        secrets.append(token)
        assert browser.get(f"/v1/privacy/verify/{token}").status_code == 200

    # Ours at every level; any library's from INFO up (below that, the test's own sink
    # traces what it receives), but for the test's own HTTP client and uvicorn's access log,
    # which `mailhaven serve` turns off (cli.main: it would log raw paths)
    ours = [r for r in caplog.records
            if r.name.startswith("mailhaven") or (
                r.levelno >= logging.INFO
                and not r.name.startswith(("httpx", "httpcore", "uvicorn.access")))]
    logged = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in ours)
    assert len(ours) > 10  # the flows above were logged, one line each at least
    for secret in secrets:
        assert secret not in logged


def _plain(login: str, password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{login}\0{password}".encode()).decode()
