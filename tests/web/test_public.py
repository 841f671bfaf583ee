"""The public site: the home page, the privacy notice and its versions, the sub-processors
page and the contact form (its messages sealed at rest)."""

from __future__ import annotations

from mailhaven.site.contact import (
    CONSENT_TEXTS,
    CONSENT_VERSION,
    PER_CLIENT_PER_HOUR,
    list_contact_messages,
)
from tests.web.helpers import csrf_of


def test_the_home_page_says_what_mailhaven_is_and_leads_to_sign_up(page, live) -> None:
    page.goto(f"{live.base_url}/")
    assert "Mailgun" in page.content() and "self-hosted" in page.content()
    page.get_by_role("link", name="Create an account").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/signup"
    page.goto(f"{live.base_url}/")
    page.locator("main").get_by_role("link", name="Log in").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/login"
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_the_notice_in_force_shows_its_cookies_and_the_live_record(page, live) -> None:
    page.goto(f"{live.base_url}/privacy")
    assert page.get_by_role("heading", name="Privacy notice", exact=True).is_visible()
    assert "Version 1, in force now" in page.locator("main").inner_text()
    cookies = page.locator("#cookies")
    assert cookies.is_visible()
    listed = page.locator("table").filter(has_text="mh_session").inner_text()
    for name in ("mh_session", "mh_csrf", "mh_consent", "mh_visitor", "mh_flash"):
        assert name in listed
    text = page.locator("main").inner_text()
    assert "Analytics (optional)" in text
    assert "30 days" in page.locator("#amendments + p").inner_text()
    # The tables are the code's own record: the contact form's purpose and legal basis.
    assert "answering contact and sales enquiries" in text and "consent" in text
    page.get_by_role("link", name="privacy center").first.click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/privacy-center"
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_a_version_has_its_own_address_and_an_unknown_one_is_a_404(live) -> None:
    with live.client() as client:
        one = client.get("/privacy/versions/1")
        assert one.status_code == 200 and 'id="cookies"' in one.text
        for unknown in ("2", "0", "latest", "1.0"):
            missing = client.get(f"/privacy/versions/{unknown}")
            assert missing.status_code == 404, unknown
            assert "Not found" in missing.text
        sub = client.get("/privacy/subprocessors")
        assert sub.status_code == 200 and "no sub-processors" in sub.text


def test_a_contact_message_is_thanked_for_and_kept_sealed(page, live, services,
                                                          raw_dump) -> None:
    page.goto(f"{live.base_url}/contact")
    assert CONSENT_TEXTS[CONSENT_VERSION] in page.content()
    page.get_by_label("Your name").fill("Zelda Quist")
    page.get_by_label("Your e-mail address").fill("zelda.quist@prospect.example")
    page.get_by_label("Company (optional)").fill("Quist Widgets")
    page.get_by_label("Topic").select_option("sales")
    page.get_by_label("Message", exact=True).fill(
        "We send 2 million mails a month; what would it cost?")
    page.get_by_label(CONSENT_TEXTS[CONSENT_VERSION][:40]).check()
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/contact/thanks"
    assert "Your message has reached us" in page.content()
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested

    with services.db.sessions() as session:
        [entry] = list_contact_messages(session, services)
    assert (entry.name, entry.topic, entry.consent_text_version) == (
        "Zelda Quist", "sales", CONSENT_VERSION)
    dump = raw_dump()
    for value in ("Zelda Quist", "zelda.quist@prospect.example", "Quist Widgets",
                  "2 million mails"):
        assert dump.holding(value.encode()) == [], value


def test_the_contact_form_shows_what_is_wrong_and_the_rate_limit(live, services) -> None:
    form = {"name": "Zelda", "email": "zelda@prospect.example", "company": "",
            "topic": "sales", "message": "Hello", "consent": "yes",
            "consent_text_version": CONSENT_VERSION}
    with live.client() as client:
        token = csrf_of(client.get("/contact").text)
        assert client.post("/contact", data=form).status_code == 403  # no CSRF token
        wrong = client.post("/contact", data={**form, "email": "not an address",
                                              "csrf_token": token})
        assert wrong.status_code == 400 and "give one e-mail address" in wrong.text
        assert 'value="Zelda"' in wrong.text  # what was typed is kept
        unticked = client.post("/contact", data={**form, "consent": "",
                                                 "csrf_token": token})
        assert unticked.status_code == 400 and "tick the box" in unticked.text
        for _ in range(PER_CLIENT_PER_HOUR):
            assert client.post("/contact", data={**form, "csrf_token": token}).status_code \
                == 303
        limited = client.post("/contact", data={**form, "csrf_token": token})
        assert limited.status_code == 429 and "Too many messages" in limited.text
    with services.db.sessions() as session:
        assert len(list_contact_messages(session, services)) == PER_CLIENT_PER_HOUR
