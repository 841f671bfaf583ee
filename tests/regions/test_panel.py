"""The panel of a platform split into regions: a user of any region logs in through the
one login form and sees their region's data only; sign-up offers the regions and makes the
account in the chosen one; links mailed out are answered by the region that made them."""

from __future__ import annotations

import re
from contextlib import ExitStack

import httpx
from sqlalchemy import select

from mailhaven.accounts.models import Account
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.regional import REGION_COOKIE
from mailhaven.services import Platform
from mailhaven.users.models import User
from tests.regions.serving import PlatformServer, tenant_in
from tests.support import Sink, deliver_due
from tests.web.helpers import PASSWORD, add_user


def _csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def test_a_user_of_either_region_logs_in_and_sees_their_regions_data_only(
        platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    tenants = {"us": tenant_in(us, "Yankee Widgets", "mg.yankee.test"),
               "eu": tenant_in(eu, "Europa Gmbh", "mg.europa.test")}
    add_user(us, tenants["us"].account_id, email="sam@yankee.test")
    add_user(eu, tenants["eu"].account_id, email="eva@europa.test")
    with PlatformServer(platform) as live, ExitStack() as stack:
        for region, email in (("eu", "eva@europa.test"), ("us", "sam@yankee.test")):
            browser = stack.enter_context(live.client())
            token = _csrf(browser, "/login")
            answer = browser.post("/login", data={"email": email, "password": PASSWORD,
                                                  "csrf_token": token, "next": "/app/domains"},
                                  follow_redirects=False)
            assert answer.status_code in (302, 303), answer.text
            assert browser.cookies.get(REGION_COOKIE) == region
            domains = browser.get("/app/domains")
            assert domains.status_code == 200
            mine, theirs = (tenants[region].domain,
                            tenants["us" if region == "eu" else "eu"].domain)
            assert mine in domains.text and theirs not in domains.text
        # a wrong password is refused as with one region, and names no region
        stranger = stack.enter_context(live.client())
        token = _csrf(stranger, "/login")
        refused = stranger.post("/login", data={"email": "eva@europa.test", "password": "no",
                                                "csrf_token": token})
        assert refused.status_code == 400


def test_sign_up_offers_the_regions_and_makes_the_account_in_the_chosen_one(
        platform: Platform) -> None:
    eu = platform.region("eu")
    with PlatformServer(platform) as live, live.client() as browser:
        form = browser.get("/signup")
        assert '<option value="eu"' in form.text and '<option value="us"' in form.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        answer = browser.post("/signup", data={
            "name": "Elsa", "email": "elsa@europa.test", "password": "a long passphrase here",
            "region": "eu", "csrf_token": token})
        assert answer.status_code == 200, answer.text
        assert browser.cookies.get(REGION_COOKIE) == "eu"
    with eu.db.sessions() as session:
        [user] = session.scalars(select(User)).all()
        assert session.get(Account, user.account_id).region == "eu"  # type: ignore[union-attr]
    with platform.region("us").db.sessions() as session:
        assert session.scalars(select(User)).all() == []


def test_a_privacy_link_is_answered_by_its_region(platform: Platform) -> None:
    """A recipient's privacy request names the domain: it is filed in that domain's
    region; a link no region made is answered 404."""
    eu = platform.region("eu")
    tenant_in(eu, "Europa Gmbh", "mg.europa.test")
    with PlatformServer(platform) as live, live.client() as client:
        made = client.post("/v1/privacy/requests", data={
            "domain": "mg.europa.test", "email": "pia@example.org", "type": "access"})
        assert made.status_code == 202, made.text
        assert client.get("/v1/privacy/verify/nothing-we-made").status_code == 404
    with eu.db.sessions() as session:
        assert len(session.scalars(select(PrivacyRequest)).all()) == 1
    with platform.region("us").db.sessions() as session:
        assert session.scalars(select(PrivacyRequest)).all() == []


def test_a_recipients_request_pages_are_answered_by_its_region(platform: Platform) -> None:
    """The mailed link, then the status and export links of the page it leads to: all
    answered by the region of the named domain, with no region cookie in the browser."""
    eu = platform.region("eu")
    tenant_in(eu, "Europa Gmbh", "mg.europa.test")
    with Sink() as sink, PlatformServer(platform) as live, live.client() as client:
        made = client.post("/v1/privacy/requests", data={
            "domain": "mg.europa.test", "email": "pia@example.org", "type": "access"})
        assert made.status_code == 202, made.text
        deliver_due(eu, sink)
        [link] = re.findall(r"/v1/privacy/verify/\S+", sink.received[-1].message.get_content())
        done = client.post(link)
        assert done.status_code == 200, done.text
        links = [href.replace("&amp;", "&") for href in
                 re.findall(r'href="(/v1/privacy/requests/[^"]+\?token=[^"]+)"', done.text)]
        [export] = [href for href in links if "/export?" in href]
        [status] = [href for href in links if "/export?" not in href]
        assert client.get(status).status_code == 200
        answer = client.get(export)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        assert REGION_COOKIE not in client.cookies


def test_a_request_naming_a_name_held_unverified_in_two_regions_is_filed_nowhere(
        platform: Platform) -> None:
    """A second, unverified copy of the name in another region must not catch the
    recipients' requests about the first one's mail: with no verified copy and no single
    copy, no region answers for the name (the form's stand-in, as for a name we don't have)."""
    eu, us = platform.region("eu"), platform.region("us")
    tenant_in(eu, "Europa Gmbh", "mg.europa.test")
    tenant_in(us, "Copycat", "mg.europa.test")
    with PlatformServer(platform) as live, live.client() as client:
        made = client.post("/v1/privacy/requests", data={
            "domain": "mg.europa.test", "email": "pia@example.org", "type": "erasure"})
        assert made.status_code == 202, made.text
    for region in (eu, us):
        with region.db.sessions() as session:
            assert session.scalars(select(PrivacyRequest)).all() == []
