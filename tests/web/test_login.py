"""Logging in and out of the panel: a session cookie that scripts can't read, a new session
at every login, forms refused without their CSRF token, security headers on every page."""

from __future__ import annotations

from tests.web.helpers import PASSWORD, add_user, csrf_of, http_log_in, log_in


def test_a_user_logs_in_sees_the_panel_and_logs_out(page, live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test", name="Ann Admin")
    page.goto(f"{live.base_url}/app?from=mail")
    assert page.url == f"{live.base_url}/login?next=/app%3Ffrom%3Dmail"  # not signed in
    page.get_by_label("E-mail address").fill("ann@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/app?from=mail"  # back where they were going
    assert "Ann Admin" in page.content()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "mh_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    assert "You are logged out." in page.content()
    page.goto(f"{live.base_url}/app")
    assert page.url.startswith(f"{live.base_url}/login")
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_a_wrong_password_or_an_unknown_address_is_refused_alike(page, live, services,
                                                                   account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    log_in(page, live.base_url, "ann@acme.test", "not the password at all")
    wrong_password = page.locator(".error").inner_text()
    log_in(page, live.base_url, "nobody@acme.test")
    assert page.locator(".error").inner_text() == wrong_password
    page.goto(f"{live.base_url}/app")
    assert page.url.startswith(f"{live.base_url}/login")


def test_an_unconfirmed_user_is_asked_to_confirm_first(page, live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test", confirmed=False)
    log_in(page, live.base_url, "ann@acme.test")
    assert "Confirm your e-mail address first" in page.content()


def test_each_login_starts_a_new_session(live, services, account) -> None:
    """Session fixation: a session cookie planted before the login is not the one after."""
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        client.cookies.set("mh_session", "planted-by-an-attacker", domain="127.0.0.1")
        assert http_log_in(client, "ann@acme.test").status_code == 303
        first = client.cookies.get("mh_session")
        assert first and first != "planted-by-an-attacker"
        assert client.get("/app").status_code == 200
    with live.client() as other:
        assert http_log_in(other, "ann@acme.test").status_code == 303
        assert other.cookies.get("mh_session") != first


def test_forms_without_their_csrf_token_are_refused(live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        client.get("/login")
        refused = client.post("/login", data={"email": "ann@acme.test", "password": PASSWORD})
        assert refused.status_code == 403 and "mh_session" not in client.cookies
        forged = client.post("/login", data={"email": "ann@acme.test", "password": PASSWORD,
                                             "csrf_token": "guessed"})
        assert forged.status_code == 403
        assert http_log_in(client, "ann@acme.test").status_code == 303
        # Signed in, the session's own token is required: the anonymous one no longer does.
        anonymous = client.cookies.get("mh_csrf")
        assert client.post("/logout", data={"csrf_token": anonymous}).status_code == 403
        assert client.get("/app").status_code == 200
        token = csrf_of(client.get("/app").text)
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        assert client.get("/app").status_code == 303


def test_pages_carry_security_headers(live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        login = client.get("/login")
        http_log_in(client, "ann@acme.test")
        panel = client.get("/app")
    for response in (login, panel):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert panel.headers["cache-control"] == "no-store"


def test_next_never_leads_off_the_site(live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    for target in ("https://evil.test/", "//evil.test/", "/\\evil.test"):
        with live.client() as client:
            token = csrf_of(client.get("/login").text)
            answer = client.post("/login", data={"email": "ann@acme.test", "password": PASSWORD,
                                                 "csrf_token": token, "next": target})
            assert answer.headers["location"] == "/app"
