"""Tenant isolation, walked over every page: a user of account B sees and changes nothing of
account A's, an anonymous visitor gets nothing but the login page, and every role gets each
panel page or a 403 as its permissions say — never a 500.

The routes come from the app itself, so a page added later is walked too; one whose path
takes a parameter this file cannot fill fails the walk until it is taught here (FILL)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from mailhaven.accounts.models import ApiKey
from mailhaven.accounts.service import issue_key
from mailhaven.users.models import User, UserToken
from mailhaven.users.service import PERMISSIONS, ROLES, may
from mailhaven.web import router as web_router
from tests.support import Sink, deliver_due
from tests.web.helpers import add_user, csrf_of, http_log_in

ACME = "mg.acme.test"
SUPPRESSION_KINDS = ("bounces", "unsubscribes", "complaints", "whitelists")
TEMPLATES = Path(web_router.__file__).parent / "templates"

# Each parameter-less panel page and the permission it asks for (None: any signed-in user),
# as read in its module; the sidebar must agree, and every such page must be listed here.
PAGE_PERMISSIONS: dict[str, str | None] = {
    "/app": "view",
    "/app/domains": "view",
    "/app/keys": "manage_keys",
    "/app/smtp": "view",
    "/app/logs": "logs",
    "/app/logs/stream": "logs",
    "/app/suppressions": "view",
    "/app/webhooks": "view",
    "/app/templates": "view",
    "/app/routes": "view",
    "/app/team": "view",
    "/app/settings": None,  # one's own profile, password, 2FA
    "/app/settings/2fa": None,
    "/app/privacy": "view",
    "/app/privacy/inventory.md": "view",
}
# Reached from a page, not from the sidebar.
SUB_PAGES = ("/app/logs/stream", "/app/settings/2fa", "/app/privacy/inventory.md")
# Each suppression list is a page of its own (?kind=…): all walked like the plain pages.
OWN_PAGES = (*PAGE_PERMISSIONS, *(f"/app/suppressions?kind={k}" for k in SUPPRESSION_KINDS))
# The list pages that take a domain in their query: another account's is a 404.
DOMAIN_QUERY_PAGES = ("/app/suppressions", "/app/webhooks", "/app/templates", "/app/logs")

# Served outside the pages' route class (the message body's own CSP, in the message page's
# iframe): a user whose role may not read logs gets its "not available" 404.
REFUSED_AS_MISSING = ("/app/logs/messages/{storage_key}/html",)


# -- the routes, from the app ------------------------------------------------------------------

def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(method, path, endpoint) of every route, into included routers (which this FastAPI
    keeps nested: `_IncludedRouter` with its `original_router`) and mounts."""
    found: list[tuple[str, str, Any]] = []
    for route in routes:
        if hasattr(route, "effective_route_contexts"):  # an included router, resolved
            for context in route.effective_route_contexts():
                inner = getattr(context, "starlette_route", None) or context
                path = getattr(inner, "path", None) or context.original_route.path
                methods = getattr(inner, "methods", None) or getattr(context, "methods", None)
                endpoint = getattr(context.original_route, "endpoint", None)
                found += [(m, prefix + path, endpoint) for m in methods or ()]
        elif hasattr(route, "original_router"):
            context = getattr(route, "include_context", None)
            found += _walk(route.original_router.routes,
                           prefix + (getattr(context, "prefix", "") or ""))
        elif getattr(route, "routes", None) is not None and not hasattr(route, "methods"):
            found += _walk(route.routes, prefix + getattr(route, "path", ""))
        elif getattr(route, "methods", None):
            found += [(m, prefix + route.path, getattr(route, "endpoint", None))
                      for m in route.methods]
    return found


def web_routes(app: Any) -> list[tuple[str, str]]:
    """Every page route: the panel's (/app…) and any other page of mailhaven.web taking a
    parameter (invitation and e-mail change links), as (method, path)."""
    chosen = set()
    for method, path, endpoint in _walk(app.router.routes):
        if method == "HEAD":
            continue
        of_web = (getattr(endpoint, "__module__", "") or "").startswith("mailhaven.web.")
        if path == "/app" or path.startswith("/app/") or (of_web and "{" in path):
            chosen.add((method, path))
    return sorted(chosen)


def params_of(path: str) -> list[str]:
    return re.findall(r"{(\w+)(?::\w+)?}", path)


@dataclass
class Acme:
    """Account A and one of everything it has."""

    account_id: str
    user_id: str  # its admin
    teammate_id: str
    key_id: str
    storage_key: str
    route_id: str
    template: str
    secrets: tuple[str, ...]  # what must never show on another account's page


def fill(acme: Acme, path: str) -> list[str] | None:
    """`path` with its parameters filled with A's objects (all the variants worth trying),
    or None when a parameter is unknown here."""
    area = path.split("/")[2] if path.startswith("/app/") else ""
    values: dict[str, list[str]] = {
        "domain_name": [ACME],
        "key_id": [acme.key_id],
        "storage_key": [acme.storage_key],
        "n": ["0"],
        "route_id": [acme.route_id],
        "user_id": [acme.teammate_id, acme.user_id],
        "tag": ["v1"],
        "action": ["activate", "delete"],
        "token": ["not-a-real-token-0123456789abcdef"],  # links: a bearer token of their own
        "version": ["999"],  # the notice's versions: public, an unknown one is not found
    }
    by_area: dict[tuple[str, str], list[str]] = {
        ("domains", "name"): [ACME],
        ("smtp", "name"): [ACME],
        ("templates", "name"): [acme.template],
        ("suppressions", "kind"): list(SUPPRESSION_KINDS),
        ("webhooks", "kind"): ["opened"],
    }
    names = params_of(path)
    choices = []
    for name in names:
        given = by_area.get((area, name)) or values.get(name)
        if given is None:
            return None
        choices.append(given)
    filled = []
    for combination in itertools.product(*choices):
        url = path
        for name, value in zip(names, combination, strict=True):
            url = re.sub(r"{" + name + r"(?::\w+)?}", value, url)
        filled.append(url)
    return filled


# -- account A's objects --------------------------------------------------------------------------

def make_acme(services, api, account) -> Acme:  # type: ignore[no-untyped-def]
    admin = add_user(services, account[0], email="ann@acme.test", name="Ann Acmeadmin")
    teammate = add_user(services, account[0], email="teammate@acme.test", role="developer",
                        name="Tess Acmeteammate")
    with services.db.transaction() as session:
        issue_key(session, account[0], description="acme-ci-key", clock=services.clock)
    with services.db.sessions() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.description == "acme-ci-key"))

    answer = api.post(f"/v3/{ACME}/messages", data={
        "from": f"Acme News <news@{ACME}>", "to": "pat.acmerecipient@example.org",
        "subject": "Acme secret subject", "text": "Acme secret body", "o:tag": "acmetag"},
        files=[("attachment", ("acme-terms.txt", b"Acme terms.", "text/plain"))])
    assert answer.status_code == 200, answer.text
    with Sink() as sink:
        deliver_due(services, sink)
    events = api.get(f"/v3/{ACME}/events", params={"message-id": answer.json()["id"]}).json()
    assert {e["event"] for e in events["items"]} >= {"accepted", "delivered"}
    storage_key = next(e["storage"]["key"] for e in events["items"] if e.get("storage"))

    for kind, address in zip(SUPPRESSION_KINDS, ("bounced.acme@example.org",
                                                 "unsub.acme@example.org",
                                                 "complained.acme@example.org",
                                                 "allowed.acme@example.org"), strict=True):
        done = api.post(f"/v3/{ACME}/{kind}", data={"address": address})
        assert done.status_code == 200, done.text
    assert api.post(f"/v3/domains/{ACME}/webhooks", data={
        "id": "opened", "url": "https://hooks.acme.test/opened"}).status_code == 200
    assert api.post(f"/v3/{ACME}/templates", data={
        "name": "acme-welcome", "description": "Acme welcome mail",
        "template": "<p>Acme welcome</p>", "tag": "v1"}).status_code == 200
    assert api.post(f"/v3/{ACME}/templates/acme-welcome/versions", data={
        "template": "<p>Acme two</p>", "tag": "v2"}).status_code == 200
    made = api.post("/v3/routes", data={
        "priority": "5", "description": "Acme support route",
        "expression": 'match_recipient("support@acme.test")',
        "action": ['forward("https://hooks.acme.test/in")', "stop()"]})
    assert made.status_code == 200, made.text
    route_id = made.json()["route"]["id"]
    assert api.post(f"/v3/domains/{ACME}/credentials", data={
        "login": "acmesmtp", "password": "acme smtp password 1"}).status_code == 200
    asked = api.post("/v1/privacy/requests", data={"type": "access",
                                                   "email": "pat.acmerecipient@example.org"})
    assert asked.status_code == 201, asked.text
    return Acme(account[0], admin, teammate, key_id, storage_key, route_id, "acme-welcome",
                secrets=(ACME, "acme", "pat.acmerecipient", "bounced.acme", "unsub.acme",
                         "complained.acme", "allowed.acme", storage_key, route_id, key_id,
                         admin, teammate, "acmesmtp", "Acmeteammate", "Acmeadmin",
                         "Acme secret", "Acme support route", "acme-welcome", "acme-terms"))


def acme_state(services, api, account_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """All of A's objects that a page could change, as A's API and database show them."""
    state: dict[str, Any] = {
        path: api.get(path).json() for path in (
            f"/v3/domains/{ACME}", f"/v3/domains/{ACME}/tracking",
            f"/v3/domains/{ACME}/webhooks", f"/v3/domains/{ACME}/credentials",
            f"/v3/{ACME}/templates/acme-welcome/versions", "/v3/routes",
            *(f"/v3/{ACME}/{kind}" for kind in SUPPRESSION_KINDS))}
    with services.db.sessions() as session:
        state["keys"] = sorted(session.execute(select(
            ApiKey.id, ApiKey.role, ApiKey.revoked_at).where(
            ApiKey.account_id == account_id)).all())
        users = sorted(session.execute(select(User.id, User.role, User.email_index)
                                       .where(User.account_id == account_id)).all())
        state["users"] = users
        state["tokens"] = session.scalar(select(func.count()).select_from(UserToken).where(
            UserToken.user_id.in_([u[0] for u in users])))
    return state


def leaked(acme: Acme, asked: str, body: str) -> list[str]:
    """A's identifiers in a response body, other than those the request itself carried
    (`asked`: its URL and what it posted, which a page may echo)."""
    asked = asked.lower()
    return [s for s in acme.secrets if s.lower() not in asked and s.lower() in body.lower()]


@contextmanager
def signed_in_client(live, services, account_id: str, email: str,  # type: ignore[no-untyped-def]
                     role: str = "admin", name: str = "Bea Bee") -> Iterator[httpx.Client]:
    add_user(services, account_id, email=email, role=role, name=name)
    with live.client() as client:
        assert http_log_in(client, email).status_code == 303
        yield client


POST_FIELDS = {"address": "bounced.acme@example.org", "login": "acmesmtp",
               "password": "a new password for it", "url": "https://evil.bee.test/h",
               "role": "billing", "template": "<p>evil</p>", "tag": "v1", "active": "yes",
               "name": "evil", "description": "evil", "priority": "0",
               "expression": "catch_all()", "action": "stop()", "open": "no",
               "click": "no", "unsubscribe": "no", "reason": "evil"}


# -- the tests ------------------------------------------------------------------------------------

def test_every_page_route_is_known_to_the_walk(live) -> None:  # type: ignore[no-untyped-def]
    app = live.server.config.app
    walked = web_routes(app)
    # The walk sees every page module's routes (so it reads the app's routing right).
    for module in web_router.PAGES:
        for route in module.router.routes:
            for method in set(route.methods) - {"HEAD"}:
                if route.path.startswith("/app") or "{" in route.path:
                    assert (method, route.path) in walked, (method, route.path)
    dummy = Acme("acct", "u1", "u2", "k", "s", "r", "t", secrets=())
    assert fill(dummy, "/app/things/{thing_id}") is None  # a new kind of id: to be taught
    unknown = [f"{m} {p}" for m, p in walked if fill(dummy, p) is None]
    assert not unknown, f"teach test_isolation.fill() these routes' parameters: {unknown}"
    plain = {p for m, p in walked if m == "GET" and not params_of(p)}
    assert plain == set(PAGE_PERMISSIONS), \
        "PAGE_PERMISSIONS must list every parameter-less panel page (with its permission)"


def test_the_sidebar_offers_each_page_to_the_roles_it_serves() -> None:
    source = (TEMPLATES / "app_base.html").read_text()
    items = re.findall(r'\("(/app[^"]*)", "[^"]+", "(\w+)"\)', source)
    assert len(items) >= 10
    for href, permission in items:
        needed = PAGE_PERMISSIONS[href]
        for role in ROLES:
            allowed = needed is None or may(role, needed)
            assert may(role, permission) == allowed, (href, role)


def test_another_account_and_an_anonymous_visitor_get_nothing_of_ours(
        live, services, api, account, second_account) -> None:  # type: ignore[no-untyped-def]
    acme = make_acme(services, api, account)
    routes = web_routes(live.server.config.app)
    with signed_in_client(live, services, account[0], "owner@acme.test") as own:
        # The control: A's own pages do show what B's must not (so `leaked` would see it).
        shown = " ".join(own.get(path, headers={"Accept": "text/plain"},
                                 params={"after": "0"} if path.endswith("stream") else None).text
                         for path in OWN_PAGES)
        missing = {ACME, "pat.acmerecipient", acme.storage_key, "acmesmtp", "acme-welcome",
                   "Acme support route", "Acmeteammate", "bounced.acme", "unsub.acme",
                   "complained.acme", "allowed.acme"} - set(leaked(acme, "", shown))
        assert not missing
    before = acme_state(services, api, account[0])
    problems: list[str] = []

    with signed_in_client(live, services, second_account.account_id, "bea@bee.test") as bee:
        token = csrf_of(bee.get("/app/settings").text)
        # B's own pages: never a trace of A.
        for path in OWN_PAGES:
            headers = {"Accept": "text/plain"} if path.endswith("/stream") else {}
            params = {"after": "0"} if path.endswith("/stream") else None
            shown = bee.get(path, headers=headers, params=params)
            if shown.status_code != 200:
                problems.append(f"B GET {path}: {shown.status_code}")
            if found := leaked(acme, path, shown.text):
                problems.append(f"B GET {path} shows A's {found}")
        assert second_account.domain in bee.get("/app/domains").text  # B sees its own

        # A's domain asked for in a list page's query: as if it did not exist.
        for path in DOMAIN_QUERY_PAGES:
            theirs = bee.get(path, params={"domain": ACME})
            nobody = bee.get(path, params={"domain": "mg.nobody.test"})
            if theirs.status_code not in (400, 403, 404) \
                    or theirs.status_code != nobody.status_code:
                problems.append(f"B GET {path}?domain={ACME}: {theirs.status_code} "
                                f"(a domain of no one: {nobody.status_code})")
            if found := leaked(acme, f"{path}?domain={ACME}", theirs.text):
                problems.append(f"B GET {path}?domain={ACME} shows A's {found}")

        # Every route with A's objects in its path: not found, nothing changed.
        for method, path in routes:
            if not params_of(path):
                continue  # B's own pages (above); B's own forms are each area's tests'
            for url in fill(acme, path) or []:
                if method == "GET":
                    answer = bee.get(url, headers={"Accept": "text/plain"})
                else:
                    answer = bee.post(url, data={**POST_FIELDS, "csrf_token": token},
                                      files={"file": ("x.csv", b"address\nx@example.org\n")}
                                      if url.endswith("/import") else None)
                if answer.status_code not in (403, 404):
                    problems.append(f"B {method} {url}: {answer.status_code}")
                if found := leaked(acme, f"{url} {POST_FIELDS}", answer.text):
                    problems.append(f"B {method} {url} shows A's {found}")

    # An anonymous visitor: the login page, or a refusal.
    with live.client() as anonymous:
        anonymous.get("/login")  # an anonymous CSRF cookie, so a POST is not refused for that
        token = anonymous.cookies.get("mh_csrf", "")
        for method, path in routes:
            for url in fill(acme, path) or [path]:
                answer = (anonymous.get(url) if method == "GET" else
                          anonymous.post(url, data={**POST_FIELDS, "csrf_token": token}))
                location = answer.headers.get("location", "")
                if path.startswith("/app"):
                    ok = (answer.status_code == 303 and location.startswith("/login")) \
                        or answer.status_code in (401, 403, 404)
                else:  # a link's page: a made-up token is not found
                    ok = answer.status_code in (404, 410)
                if not ok:
                    problems.append(f"anonymous {method} {url}: {answer.status_code} "
                                    f"{location}")
                if found := leaked(acme, f"{url} {POST_FIELDS}", answer.text):
                    problems.append(f"anonymous {method} {url} shows A's {found}")

    assert not problems, "\n".join(problems)
    assert acme_state(services, api, account[0]) == before  # nothing of A's changed


def test_each_role_gets_the_pages_its_permissions_allow(
        live, services, api, account) -> None:  # type: ignore[no-untyped-def]
    acme = make_acme(services, api, account)
    routes = web_routes(live.server.config.app)
    problems: list[str] = []
    assert set(PERMISSIONS) == set(ROLES)
    for role in ROLES:
        with signed_in_client(live, services, account[0], f"{role}@acme.test",
                              role=role) as user:
            for path, permission in PAGE_PERMISSIONS.items():
                expected = 200 if permission is None or may(role, permission) else 403
                shown = user.get(path, headers={"Accept": "text/plain"})
                if shown.status_code != expected:
                    problems.append(f"{role} GET {path}: {shown.status_code}, not {expected}")
            # The sidebar they see links to exactly the pages they may open.
            sidebar = user.get("/app/settings").text.split('class="sidebar"')[1].split("</nav>")[0]
            linked = set(re.findall(r'href="(/app[^"]*)"', sidebar)) & set(PAGE_PERMISSIONS)
            allowed = {p for p, permission in PAGE_PERMISSIONS.items()
                       if p not in SUB_PAGES and (permission is None or may(role, permission))}
            if linked != allowed:
                problems.append(f"{role}'s sidebar links {sorted(linked)}, not {sorted(allowed)}")
            # Our own objects' pages: shown or refused by role, never an error.
            for method, path in routes:
                if method != "GET" or not path.startswith("/app/") or not params_of(path):
                    continue
                for url in fill(acme, path) or []:
                    answer = user.get(url)
                    refused = 404 if path in REFUSED_AS_MISSING else 403
                    if answer.status_code not in ((200,) if role == "admin" else (200, refused)):
                        problems.append(f"{role} GET {url}: {answer.status_code}")
    assert not problems, "\n".join(problems)
