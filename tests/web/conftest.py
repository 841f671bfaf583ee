"""A real browser for the pages: Playwright driving Debian's chromium (`make browser`
installs it when missing; no browser can be downloaded from anywhere else here). Without
it the browser tests skip with the reason, except where MAILHAVEN_REQUIRE_BROWSER=1 (CI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and quiet on a closed network: no background connections to Google's hosts.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Chromium:
    """One chromium per worker for a run of browser tests, launched by the first test that
    asks for it and closed after the last test of tests/web before anything else runs on
    this worker: while open, Playwright runs a loop on this thread, which `asyncio.run`
    elsewhere would trip over. Each test still gets a context of its own (`page`)."""

    def __init__(self) -> None:
        self.browser: Browser | None = None
        self.stack = contextlib.ExitStack()

    def open(self) -> Browser:
        if self.browser is None:
            profile = self.stack.enter_context(tempfile.TemporaryDirectory())
            playwright = self.stack.enter_context(sync_playwright())
            self.browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=ARGS, env={**os.environ, "HOME": profile})
            self.stack.callback(self.browser.close)
        return self.browser

    def close(self) -> None:
        self.browser = None
        self.stack.close()


_CHROMIUM = _Chromium()
_HERE = Path(__file__).parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Close the browser when the next test is not one of tests/web, or there is none."""
    try:
        return (yield)
    finally:
        if nextitem is None or _HERE not in nextitem.path.parents:
            _CHROMIUM.close()


@pytest.fixture
def browser() -> Browser:
    if not os.path.exists(CHROMIUM):
        reason = "chromium is not installed: `make browser` installs Debian's package"
        if os.environ.get("MAILHAVEN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required (MAILHAVEN_REQUIRE_BROWSER=1): {reason}")
        pytest.skip(reason)
    return _CHROMIUM.open()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookies, no storage) per test; every request it makes is kept
    in `page.requested`, so a test can say that nothing left localhost."""
    context = browser.new_context()
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.requested = requested  # type: ignore[attr-defined]
    yield opened
    context.close()


@pytest.fixture
def signed_in(page: Page, live, services, account):  # type: ignore[no-untyped-def]
    """`signed_in(role="admin", email=…, account_id=…)`: a confirmed user of `account`
    (or another account), logged in on `page` through the login form; the user's id."""
    from tests.web.helpers import add_user, log_in

    def sign_in(role: str = "admin", email: str = "ann@acme.test",
                account_id: str | None = None) -> str:
        user_id = add_user(services, account_id or account[0], email=email, role=role)
        log_in(page, live.base_url, email)
        return user_id

    return sign_in
