"""Users for page tests: made directly through the users service, then logged in through
the real login form in the browser (or over HTTP)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page

from mailhaven.services import Services
from mailhaven.users.service import create_user, hash_password

PASSWORD = "correct horse battery staple"  # a test user's
_HASH: dict[str, str] = {}


def add_user(services: Services, account_id: str, *, email: str, role: str = "admin",
             name: str = "Ann Admin", confirmed: bool = True) -> str:
    """A user of the account with PASSWORD; their id."""
    hashed = _HASH.get(PASSWORD) or _HASH.setdefault(PASSWORD, hash_password(PASSWORD))
    with services.db.transaction() as session:
        return create_user(session, services.vault, account_id=account_id, name=name,
                           email=email, password_hash=hashed, role=role,
                           clock=services.clock, confirmed=confirmed).id


def log_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def http_log_in(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    """Logs an HTTP client in through the form (its cookies then carry the session)."""
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token})
