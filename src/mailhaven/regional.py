"""The HTTP front of a platform split into regions (SPEC N11): one app per open region and,
in front of them, a dispatcher that sends each request to the region holding what it names.

An API key names its account's region (the directory, cached); the panel's session lives in
the region whose cookie `mailhaven_region` the login or sign-up set (the session itself is
verified by that region's app); a link we mailed out is signed by, or stored in, one region
only, so the region that knows it answers it; the rest (the site, /healthz, /metrics, the
OpenAPI document, static files) is the home region's. With one open region there is no
dispatcher: the region's app is the app.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI

from mailhaven import netpolicy
from mailhaven.accounts.service import key_digest
from mailhaven.accounts.throttle import FailedLogins
from mailhaven.app import create_app
from mailhaven.http import in_thread
from mailhaven.regions import service as regions
from mailhaven.services import Platform
from mailhaven.storage import revocations
from mailhaven.storage.revocations import Revoked
from mailhaven.tracking import links
from mailhaven.users.service import region_of_address

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REGION_COOKIE = "mailhaven_region"
# Links we hand out without a key: the token names a thing one region holds. Tracking tokens
# are signed with the region's vault (checked here, no query: an open must be recorded once).
TRACKING = ("/o/", "/c/", "/u/")
LINKS = ("/v1/privacy/verify/", "/confirm/", "/reset/", "/email-change/", "/invite/",
         "/lists/unsubscribe/", "/v1/privacy/requests/")
# A recipient's request is found by its id and the token in the link's query: probed with
# the token, at its status page (not the export, which would be built twice)
REQUEST_PAGES = "/v1/privacy/requests/"
# Forms that name the user (login, password reset) or the region (sign-up) or a domain
# (privacy requests).
LOGIN, SIGNUP, RESET = "/login", "/signup", "/reset"
DOMAIN_FORMS = ("/v1/privacy/requests", "/privacy-center")
FORM_LIMIT = 64 * 1024  # a bigger body is not one of these forms: it goes on unread


def create_platform_app(platform: Platform, *, dev: bool = False) -> ASGIApp:
    """The app of the only open region, or a dispatcher over one app per open region."""
    if len(platform.regions) == 1:
        return create_app(next(iter(platform.regions.values())), dev=dev)
    return RegionDispatcher(platform, dev=dev)


class KeyRegions:
    """API key digest → region, for `TTL` seconds (like accounts.service.KeyCache; only keys
    that were found are remembered)."""

    TTL = 10.0

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._known: dict[str, tuple[str, float]] = {}
        revocations.subscribe(self)

    def drop(self, revoked: Collection[Revoked] | None) -> None:
        """A revoked key is looked up again (its region's KeyCache refuses it anyway)."""
        if revoked is None:
            self._known = {}
            return
        for item in revoked:
            if item.kind == "key":
                self._known.pop(item.value, None)

    def get(self, digest: str) -> str | None:
        hit = self._known.get(digest)
        return hit[0] if hit is not None and hit[1] >= time.monotonic() else None

    def put(self, digest: str, region: str) -> None:
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[digest] = (region, time.monotonic() + self.TTL)


class RegionDispatcher:
    """Picks the region of each HTTP request and hands it to that region's app."""

    def __init__(self, platform: Platform, *, dev: bool = False) -> None:
        self.platform = platform
        self.apps: dict[str, FastAPI] = {name: create_app(services, dev=dev)
                                         for name, services in platform.regions.items()}
        home = platform.settings.home_region
        self.home_name = home if home in self.apps else next(iter(self.apps))
        # One count of wrong keys per client network, whichever region answers the 401
        self.failed_logins = FailedLogins(platform.clock,
                                          platform.settings.api_auth_failures_per_minute)
        for app in self.apps.values():
            app.state.failed_logins = self.failed_logins
        self.keys = KeyRegions()

    @property
    def home(self) -> FastAPI:
        return self.apps[self.home_name]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.home(scope, receive, send)
            return
        name, receive, remember = await self.region_of(scope, receive)
        app = self.apps.get(name) or self.home
        if remember:
            send = _with_cookie(send, name)
        await app(scope, receive, send)

    async def region_of(self, scope: Scope, receive: Receive) -> tuple[str, Receive, bool]:
        """(region, the body to read, whether to set the region cookie on the answer)."""
        path, method = scope["path"], scope["method"]
        headers = _headers(scope)
        key = _api_key(headers.get("authorization", ""))
        if key is not None:
            return await self._key_region(scope, key_digest(key)), receive, False
        if path.startswith(TRACKING):
            return self._signed_by(path.split("/", 2)[2]), receive, False
        if path.startswith(LINKS):
            return await self._link_region(scope), receive, False
        if method == "POST" and path in (LOGIN, SIGNUP, RESET, *DOMAIN_FORMS):
            form, receive = await _form(headers, receive)
            if path in (LOGIN, RESET) and (email := _first(form, "email")):
                found = await in_thread(lambda: self._user_region(email))
                if found is not None:  # (a reset sets no cookie: it opens no session)
                    return found, receive, path == LOGIN
            elif path == SIGNUP and _first(form, "region") in self.apps:
                return _first(form, "region"), receive, True
            elif path in DOMAIN_FORMS and (domain := _first(form, "domain")):
                services = await in_thread(lambda: regions.for_domain(self.platform, domain))
                if services is not None:
                    return services.region, receive, False
            if path in (LOGIN, SIGNUP):
                return self.home_name, receive, True
        cookie = _cookie(headers.get("cookie", ""), REGION_COOKIE)
        if cookie in self.apps:
            return cookie, receive, False
        return self.home_name, receive, False

    async def _key_region(self, scope: Scope, digest: str) -> str:
        """The key's region: one directory look-up at most, none within TTL; an unknown key
        goes home, where it is refused (and counted) as with one region."""
        known = self.keys.get(digest)
        if known is not None:
            return known
        network = netpolicy.client_network(scope["client"][0] if scope.get("client") else None)
        if self.failed_logins.blocked(network):
            async with self.failed_logins.lock(network):  # one look-up at a time, as the apps
                found = await in_thread(lambda: regions.for_key(self.platform, digest))
        else:
            found = await in_thread(lambda: regions.for_key(self.platform, digest))
        if found is None:
            return self.home_name
        self.keys.put(digest, found.region)
        return found.region

    def _signed_by(self, token: str) -> str:
        for name, services in self.platform.regions.items():
            if links.read(services.vault, token) is not None:
                return name
        return self.home_name

    async def _link_region(self, scope: Scope) -> str:
        """The first region whose app does not answer 404 to a GET of the link (their GET
        pages ask before they act, so a GET changes nothing; a request's status page only
        reads)."""
        probe = {**scope, "method": "GET", "query_string": b""}
        if scope["path"].startswith(REQUEST_PAGES):
            path = scope["path"].removesuffix("/export")
            probe.update(path=path, raw_path=path.encode(),
                         query_string=scope.get("query_string", b""))
        for name, app in self.apps.items():
            if await _status(app, probe) != 404:
                return name
        return self.home_name

    def _user_region(self, email: str) -> str | None:
        """The region of the panel user with this address (a confirmed one first)."""
        found = region_of_address(self.platform, email)
        return found.region if found is not None else None

def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _api_key(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:
        return None
    return password if user == "api" and password else None


def _cookie(header: str, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed cookie header: no region named
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0].strip()


async def _form(headers: dict[str, str],
                receive: Receive) -> tuple[dict[str, list[str]], Receive]:
    """The request's urlencoded form (or JSON object's strings), read here and replayed to
    the app; an unread body (too big, another type) gives an empty form."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more and size <= FORM_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return {}, _replay(b"".join(chunks), False, receive, message)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replay = _replay(body, more, receive)
    if more:
        return {}, replay
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            return parse_qs(body.decode(), keep_blank_values=True), replay
        if kind == "application/json":
            data = json.loads(body)
            if isinstance(data, dict):
                return {k: [v] for k, v in data.items() if isinstance(v, str)}, replay
    except (ValueError, RecursionError):  # not a form we can read (deep JSON, bad UTF-8):
        pass  # the region's app answers it as it would any bad body
    return {}, replay


def _replay(body: bytes, more: bool, receive: Receive,
            pending: Message | None = None) -> Receive:
    """A `receive` that gives `body` first, then whatever the client still sends."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more}
        if pending is not None:
            return pending
        return await receive()
    return replayed


async def _status(app: ASGIApp, scope: Scope) -> int:
    """The status `app` answers to `scope` (a body-less request); the answer is dropped."""
    status = 0
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _with_cookie(send: Send, region: str) -> Send:
    """`send`, adding the region cookie to the response: not secret (it only says where the
    session is; the session cookie is the authority, and the region's app checks it)."""
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            cookie = f"{REGION_COOKIE}={region}; Path=/; SameSite=Lax"
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"set-cookie", cookie.encode())]}
        await send(message)
    return sending
