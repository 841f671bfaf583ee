"""The cookie banner: essential cookies only and nothing analytic until the visitor
chooses; the choice in the consent ledger; withdrawing as easy as giving."""

from __future__ import annotations

from prometheus_client import REGISTRY

from mailhaven.site.consent import cookie_choices
from tests.web.helpers import add_user, csrf_of, http_log_in

ESSENTIAL = {"mh_csrf", "mh_session", "mh_consent", "mh_visitor", "mh_flash"}


def _visits(template: str) -> float:
    return REGISTRY.get_sample_value("mailhaven_site_visits_total", {"page": template}) or 0.0


def _cookies(page) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c["name"]: c["value"] for c in page.context.cookies()}


def test_analytics_runs_only_after_consent_and_stops_when_withdrawn(page, live,
                                                                    services) -> None:
    page.goto(f"{live.base_url}/privacy")
    banner = page.get_by_role("region", name="Cookies")
    assert banner.is_visible()
    page.wait_for_timeout(300)
    assert not [u for u in page.requested if "/visits" in u], page.requested
    assert set(_cookies(page)) <= {"mh_csrf"}  # nothing but the form's token

    before = _visits("/privacy")
    with page.expect_request(f"{live.base_url}/visits"):
        banner.get_by_role("button", name="Accept analytics").click()
    assert page.url == f"{live.base_url}/privacy"  # back where the visitor was
    assert not page.get_by_role("region", name="Cookies").is_visible()
    cookies = _cookies(page)
    assert set(cookies) <= ESSENTIAL and cookies["mh_consent"] == "all"
    visitor = cookies["mh_visitor"]
    with services.db.sessions() as session:
        choices = cookie_choices(session, services, visitor)
    assert [(c["purpose"], c["granted"], c["source"]) for c in choices] == [
        ("analytics", True, "cookie-banner")]
    page.wait_for_timeout(200)
    assert _visits("/privacy") == before + 1  # counted by route, no person

    page.locator("footer").get_by_role("link", name="Cookie settings").click()
    page.wait_for_load_state()
    assert "essential cookies, and counting page visits" in page.content()
    page.get_by_role("button", name="Essential only").click()
    page.wait_for_load_state()
    assert "essential cookies only" in page.content()
    assert _cookies(page)["mh_visitor"] == visitor  # the same ledger entry's subject
    with services.db.sessions() as session:
        choices = cookie_choices(session, services, visitor)
    assert [c["granted"] for c in choices] == [True, False]
    assert "refused" in page.locator("table").inner_text()

    counted = len([u for u in page.requested if u.endswith("/visits")])
    page.goto(f"{live.base_url}/")
    page.goto(f"{live.base_url}/contact")
    page.wait_for_timeout(300)
    assert len([u for u in page.requested if u.endswith("/visits")]) == counted
    assert not [u for u in page.requested if u.endswith("/visits.js")][counted:]
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_essential_only_never_counts_a_visit(page, live, services) -> None:
    page.goto(f"{live.base_url}/")
    page.get_by_role("region", name="Cookies").get_by_role(
        "button", name="Essential only").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/"
    assert not page.get_by_role("region", name="Cookies").is_visible()
    for path in ("/privacy", "/contact", "/privacy-center"):
        page.goto(f"{live.base_url}{path}")
    page.wait_for_timeout(300)
    assert not [u for u in page.requested if "/visits" in u], page.requested
    cookies = _cookies(page)
    assert cookies["mh_consent"] == "essential" and set(cookies) <= ESSENTIAL
    with services.db.sessions() as session:
        assert [c["granted"] for c in cookie_choices(session, services,
                                                     cookies["mh_visitor"])] == [False]


def test_the_beacon_counts_nothing_without_consent_and_never_a_path(live) -> None:
    with live.client() as client:
        before = _visits("/privacy/versions/{version}")
        client.post("/visits", content="/privacy/versions/1")
        assert _visits("/privacy/versions/{version}") == before  # no consent cookie
        client.cookies.set("mh_consent", "all", domain="127.0.0.1")
        assert client.post("/visits", content="/privacy/versions/1").status_code == 204
        assert _visits("/privacy/versions/{version}") == before + 1
        other = _visits("other")
        client.post("/visits", content="/unsubscribe/ann@example.org")
        assert _visits("other") == other + 1  # unknown paths are all one label


def test_a_choice_needs_the_forms_token_and_a_known_value(live) -> None:
    with live.client() as client:
        token = csrf_of(client.get("/").text)
        assert client.post("/cookies", data={"choice": "all"}).status_code == 403
        assert client.post("/cookies", data={"choice": "some",
                                             "csrf_token": token}).status_code == 400
        away = client.post("/cookies", data={"choice": "all", "csrf_token": token,
                                             "next": "//evil.test/"})
        assert away.status_code == 303 and away.headers["location"] == "/"
        assert client.cookies.get("mh_consent") == "all"


def test_a_signed_in_user_chooses_on_a_public_page(live, services, account) -> None:
    """The banner's form on the public site carries the session's token once signed in."""
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        shown = client.get("/privacy")
        assert "Open the panel" in shown.text  # the site knows who is there
        chosen = client.post("/cookies", data={"choice": "essential", "next": "/privacy",
                                               "csrf_token": csrf_of(shown.text)})
        assert chosen.status_code == 303 and chosen.headers["location"] == "/privacy"
        assert client.cookies.get("mh_consent") == "essential"
