"""One new customer's whole journey, in a real browser: sign up and confirm by mail, log in,
turn on the second factor and log in with it, add a domain, make a key and send with it,
watch the delivery arrive in the live logs, open the message, add and remove a suppression,
invite an Analyst whom the panel limits; a recipient's privacy request confirmed by mail; a
visitor's cookie choice; and the account deleted. Every request of every browser context
stays on our server."""

from __future__ import annotations

import re

import httpx
import pyotp
from playwright.sync_api import Browser, BrowserContext, Page

from mailhaven.services import Services
from tests.support import Sink, deliver_due

PASSWORD = "plum tulip orbit canoe"
TEAMMATE_PASSWORD = "an analyst's own passphrase"
NAME = "mg.startup.test"


class Mailbox:
    """The recipients' mail servers: the queue delivered to a sink, its mail read back."""

    def __init__(self, services: Services, sink: Sink) -> None:
        self.services, self.sink = services, sink

    def deliver(self) -> None:
        deliver_due(self.services, self.sink)

    def mail_to(self, address: str, subject: str) -> str:
        """The text of the one mail delivered to the address with that subject."""
        self.deliver()
        [text] = [r.message.get_body(("plain",)).get_content() for r in self.sink.received
                  if r.rcpt_tos == [address] and r.message["Subject"] == subject]
        return text


def _watched(context: BrowserContext, requested: list[str], failed: dict[str, str]) -> Page:
    context.on("request", lambda request: requested.append(request.url))
    context.on("requestfailed", lambda request: failed.update(
        {request.url: request.failure or ""}))
    return context.new_page()


def _submit(page: Page, button: str) -> None:
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()


def _log_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    _submit(page, "Log in")


def _link(text: str, path: str) -> str:
    """The path of the mailed link to `path`/<token>."""
    found = re.search(rf"https?://[^/\s]+({path}/[A-Za-z0-9_.~-]+)", text)
    assert found is not None, f"no {path} link in: {text}"
    return found.group(1)


def test_a_new_customer_s_journey(browser: Browser, live, services) -> None:  # type: ignore[no-untyped-def]
    base = live.base_url
    requested: list[str] = []
    failed: dict[str, str] = {}
    contexts = [browser.new_context()]
    page = _watched(contexts[0], requested, failed)
    with Sink() as sink:
        mailbox = Mailbox(services, sink)
        try:
            _journey(browser, base, services, mailbox, page, contexts, requested, failed)
        finally:
            for context in contexts:
                context.close()  # ends the live tail's stream before the server stops

    assert requested and all(u.startswith((f"{base}/", "data:")) for u in requested), [
        u for u in requested if not u.startswith((f"{base}/", "data:"))]
    assert not [u for u, why in failed.items() if why == "csp"], failed


def _journey(browser: Browser, base: str, services: Services, mailbox: Mailbox, page: Page,
             contexts: list[BrowserContext], requested: list[str],
             failed: dict[str, str]) -> None:
    # Sign up, and confirm the address by the mailed link.
    page.goto(f"{base}/")
    page.get_by_role("link", name="Sign up").first.click()
    page.wait_for_load_state()
    assert page.url == f"{base}/signup"
    page.get_by_label("Your name").fill("Zoe Founder")
    page.get_by_label("E-mail address").fill("zoe@startup.test")
    page.get_by_label("Password").fill(PASSWORD)
    _submit(page, "Sign up")
    assert "Check your mail" in page.content()
    confirm = _link(mailbox.mail_to("zoe@startup.test", "Confirm your Mailhaven address"),
                    "/confirm")
    page.goto(f"{base}{confirm}")
    page.get_by_label("Password").fill(PASSWORD)  # only who chose it confirms the address
    _submit(page, "Confirm my address")
    assert page.url == f"{base}/login"
    assert "Your address is confirmed" in page.content()

    # Log in; turn on the second factor with a code from the authenticator app.
    _log_in(page, base, "zoe@startup.test")
    assert page.url == f"{base}/app" and "Zoe Founder" in page.content()
    page.goto(f"{base}/app/settings/2fa")
    page.get_by_label("Your current password").fill(PASSWORD)
    _submit(page, "Set up two-factor authentication")
    totp, now = pyotp.TOTP(page.locator("#totp-secret").inner_text()), services.clock.now()
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    page.get_by_label("Code").fill(totp.at(now))
    _submit(page, "Turn on")
    assert page.locator("ul.recovery-codes code").count() == 10

    # Log out; the password alone is not enough any more, a code opens the panel.
    _submit(page, "Log out")
    _log_in(page, base, "zoe@startup.test")
    assert "One more step" in page.content()
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(
        totp.at(now + 30))  # the enrolment's code worked once; the next step's
    _submit(page, "Verify")
    assert page.url == f"{base}/app"

    # A domain, and the DNS records to publish for it.
    page.goto(f"{base}/app/domains")
    page.get_by_label("Domain name").fill(NAME)
    _submit(page, "Add domain")
    assert page.url == f"{base}/app/domains/{NAME}"
    assert f"Domain {NAME} added" in page.locator(".flash").inner_text()
    assert page.locator("#sending-value-1").inner_text() == "v=spf1 a:mx.mailhaven.test ~all"
    records = page.locator("tbody").first.inner_text()
    assert f"._domainkey.{NAME}" in records and f"email.{NAME}" in records  # DKIM, tracking
    assert "unverified" in records

    # A key, shown once, and a message sent with it over the API.
    page.goto(f"{base}/app/keys")
    page.get_by_label("Description").fill("our web shop")
    _submit(page, "Create key")
    api_key = page.locator("#new-key-value").inner_text()
    assert api_key.startswith("key-")
    page.goto(f"{base}/app/keys")
    assert api_key not in page.content() and "our web shop" in page.content()
    with httpx.Client(base_url=base, auth=("api", api_key)) as api:
        sent = api.post(f"/v3/{NAME}/messages", data={
            "from": f"Startup <news@{NAME}>", "to": "bob@example.org",
            "subject": "Welcome aboard", "text": "Hello Bob, welcome.",
            "html": "<p>Hello <b>Bob</b>, welcome.</p>"})
    assert sent.status_code == 200 and sent.json()["message"] == "Queued. Thank you."

    # The logs, open while the queue delivers: the delivery appears at the top.
    page.goto(f"{base}/app/logs")
    page.locator("body.live").wait_for()
    rows = page.locator("#log-rows tr")
    assert "accepted" in rows.first.inner_text()
    assert page.locator("#log-rows tr", has_text="delivered").count() == 0
    mailbox.deliver()
    delivered = page.locator("#log-rows tr", has_text="delivered")
    delivered.wait_for()
    assert "bob@example.org" in rows.first.inner_text() and "delivered" in rows.first.inner_text()
    [received] = [r for r in mailbox.sink.received if r.rcpt_tos == ["bob@example.org"]]
    assert received.message["Subject"] == "Welcome aboard"

    # The message's page: its timeline and its content.
    delivered.get_by_role("link", name="Welcome aboard").click()
    page.wait_for_load_state()
    assert "/app/logs/messages/" in page.url
    assert page.locator(".timeline .what").all_inner_texts() == ["accepted", "delivered"]
    assert "Hello Bob" in page.frame_locator("iframe.message").locator("body").inner_text()

    # A suppression added, then removed.
    page.goto(f"{base}/app/suppressions")
    assert page.get_by_label("Domain").input_value() == NAME
    page.get_by_label("Address", exact=True).fill("carol@example.org")
    page.get_by_label("Error").fill("mailbox unavailable")
    _submit(page, "Add")
    assert "Added to bounces." in page.content()
    assert "mailbox unavailable" in page.locator("tbody tr", has_text="carol@example.org"
                                                 ).inner_text()
    _submit(page, "Remove carol@example.org")
    assert "Removed from bounces." in page.content()
    assert page.locator("tbody tr", has_text="carol@example.org").count() == 0

    # A teammate invited as Analyst joins in their own browser; the panel limits them.
    page.goto(f"{base}/app/team")
    page.get_by_label("E-mail address").fill("al@startup.test")
    page.get_by_label("Role", exact=True).select_option("analyst")
    _submit(page, "Send invitation")
    assert "Invitation sent." in page.content()
    assert "invitation pending" in page.locator("tr", has_text="al@startup.test").inner_text()
    invite = _link(mailbox.mail_to("al@startup.test", "You are invited to Mailhaven"),
                   "/invite")
    contexts.append(browser.new_context())
    teammate = _watched(contexts[-1], requested, failed)
    teammate.goto(f"{base}{invite}")
    teammate.get_by_label("Your name").fill("Al Analyst")
    teammate.get_by_label("Password").fill(TEAMMATE_PASSWORD)
    _submit(teammate, "Join")
    assert teammate.url == f"{base}/app"
    assert "Al Analyst · Analyst" in teammate.content()
    assert teammate.locator("a[href='/app/keys']").count() == 0
    refused = teammate.goto(f"{base}/app/keys")
    assert refused is not None and refused.status == 403
    teammate.goto(f"{base}/app/logs")
    assert "bob@example.org" in teammate.locator("#log-rows").inner_text()  # may look
    teammate.goto(f"{base}/app/team")
    assert "Zoe Founder" in teammate.content()
    assert teammate.get_by_role("button", name="Send invitation").count() == 0
    assert teammate.get_by_label("E-mail address").count() == 0

    # Bob, the recipient, asks what is held about him; the link mailed to him confirms it.
    contexts.append(browser.new_context())
    recipient = _watched(contexts[-1], requested, failed)
    recipient.goto(f"{base}/privacy-center")
    recipient.get_by_label("What do you want?").select_option("access")
    recipient.get_by_label("Your e-mail address").fill("bob@example.org")
    recipient.get_by_label("The domain that mailed you").fill(NAME)
    _submit(recipient, "Send me the link")
    assert "Check your mail" in recipient.content()
    verify = _link(mailbox.mail_to("bob@example.org", "Confirm your privacy request"),
                   "/v1/privacy/verify")
    recipient.goto(f"{base}{verify}")
    assert "Confirm your request" in recipient.content()
    _submit(recipient, "Confirm")
    assert "Request completed" in recipient.content()
    assert recipient.get_by_role("link", name="Download your data").is_visible()

    # A first-time visitor: nothing analytic before the choice, then their choice.
    contexts.append(browser.new_context())
    visitor = _watched(contexts[-1], requested, failed)
    seen = len(requested)
    visitor.goto(f"{base}/")
    banner = visitor.get_by_role("region", name="Cookies")
    assert banner.is_visible()
    visitor.wait_for_timeout(300)  # time for a script that would count the visit
    assert not [u for u in requested[seen:] if "/visits" in u], requested[seen:]
    assert {c["name"] for c in contexts[-1].cookies()} <= {"mh_csrf"}
    with visitor.expect_request(f"{base}/visits"):
        banner.get_by_role("button", name="Accept analytics").click()
    assert not visitor.get_by_role("region", name="Cookies").is_visible()
    assert {c["name"]: c["value"] for c in contexts[-1].cookies()}["mh_consent"] == "all"

    # The account deleted: the completion record shown, logged out, no login any more.
    page.goto(f"{base}/app/settings")
    deletion = page.locator("form[action='/app/settings/delete']")
    account_id = page.locator("section[aria-labelledby='deletion'] p code").inner_text()
    deletion.get_by_label("Your password").fill(PASSWORD)
    deletion.get_by_label("Type the account's id").fill(account_id)
    _submit(page, "Delete the account")
    assert "Your account is deleted" in page.content()
    record = page.locator("#completion-record").inner_text()
    assert account_id in record and "1 domain(s)" in record
    page.goto(f"{base}/app")
    assert page.url.startswith(f"{base}/login")
    teammate.goto(f"{base}/app")
    assert teammate.url.startswith(f"{base}/login")  # everyone is logged out
    _log_in(page, base, "zoe@startup.test")
    assert "is not right" in page.content()
