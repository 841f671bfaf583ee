"""Fixes to the split into regions: a name, an address, a database each belong to one
region, and the dispatcher routes what names them to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from mailhaven.config import Settings
from mailhaven.domains import verify
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.domains.service import create_domain
from mailhaven.errors import BadRequest
from mailhaven.regional import REGION_COOKIE
from mailhaven.regions import service as regions
from mailhaven.regions.models import RegionTransfer
from mailhaven.services import Platform, Services
from mailhaven.users.models import User
from mailhaven.users.service import email_index, region_of_address
from tests.regions.serving import PlatformServer, tenant_in
from tests.regions.test_region_data import _cli
from tests.web.auth_mail import mailed
from tests.web.helpers import PASSWORD, add_user


def _verify(services: Services, name: str) -> None:
    with services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.name == name).values(state=ACTIVE_DOMAIN))


def _copy(services: Services, account_id: str, name: str) -> None:
    """A copy of the name added straight to the region's database (as before the fix)."""
    with services.db.transaction() as session:
        create_domain(session, services.vault, account_id, {"name": name}, services.clock)


def test_the_verified_copy_wins_over_an_unverified_copy_in_another_region(
        platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    tenant_in(eu, "Victim", "mail.victim.test")
    attacker = tenant_in(us, "Attacker", "mg.attacker.test")
    _verify(eu, "mail.victim.test")
    _copy(us, attacker.account_id, "mail.victim.test")
    regions.record(platform, "domain", "mail.victim.test", "us")  # even a stale entry

    assert regions.for_domain(platform, "mail.victim.test") is eu
    assert regions.for_domain(platform, "mail.victim.test") is eu  # the entry rewritten


def test_unverified_copies_stand_for_a_region_only_when_alone(platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    one = tenant_in(us, "One", "mg.one.test")
    tenant_in(eu, "Two", "mg.two.test")
    assert regions.for_domain(platform, "mg.two.test") is eu
    _copy(us, one.account_id, "mg.two.test")
    assert regions.for_domain(platform, "mg.two.test") is None
    assert regions.for_domain(platform, "mg.nobody.test") is None


def test_a_name_verified_in_one_region_is_not_added_nor_verified_in_another(
        platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    tenant_in(eu, "Victim", "mail.victim.test")
    attacker = tenant_in(us, "Attacker", "mg.attacker.test")
    _copy(us, attacker.account_id, "mail.victim.test")  # added before the owner verified
    _verify(eu, "mail.victim.test")

    with PlatformServer(platform) as live, live.client(attacker.api_key) as api:
        answer = api.post("/v4/domains", data={"name": "mail.victim.test"})
        assert answer.status_code == 400 and "taken" in answer.json()["message"]
        answer = api.put("/v4/domains/mail.victim.test/verify")
        assert answer.status_code == 400 and "verified by another" in answer.json()["message"]

    with us.db.transaction() as session:
        with pytest.raises(BadRequest):
            verify.to_check(session, attacker.account_id, "mail.victim.test", us)
        copy = verify.owned_domain(session, attacker.account_id, "mail.victim.test")
        passing = {"valid": verify.VALID}
        verify.apply(session, copy, {"spf": passing, **{verify.dkim_kind(k): passing
                                                        for k in copy.dkim_keys}},
                     us.clock.now(), us)
        assert copy.state != ACTIVE_DOMAIN
    assert regions.for_domain(platform, "mail.victim.test") is eu


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def _log_in(live: PlatformServer, email: str) -> tuple[int, str | None]:
    with live.client() as browser:
        answer = browser.post("/login", data={"email": email, "password": PASSWORD,
                                              "csrf_token": _csrf(browser, "/login")},
                              follow_redirects=False)
        return answer.status_code, browser.cookies.get(REGION_COOKIE)


def test_a_sign_up_in_another_region_does_not_take_an_address(platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    europa = tenant_in(eu, "Europa GmbH", "mg.europa.test")
    add_user(eu, europa.account_id, email="eva@europa.test")
    with PlatformServer(platform) as live:
        assert _log_in(live, "eva@europa.test") == (303, "eu")
        with live.client() as stranger:
            form = {"name": "X", "email": "eva@europa.test", "region": "us",
                    "password": "another long passphrase",
                    "csrf_token": _csrf(stranger, "/signup")}
            squat = stranger.post("/signup", data=form)
            form["email"] = "new@elsewhere.test"
            fresh = stranger.post("/signup", data=form | {"csrf_token": _csrf(stranger,
                                                                               "/signup")})
        assert squat.status_code == fresh.status_code == 200
        assert squat.text.replace("eva@europa.test", "") == \
            fresh.text.replace("new@elsewhere.test", "")  # answered alike
        assert _log_in(live, "eva@europa.test") == (303, "eu")

    with us.db.sessions() as session:
        assert [u.email_index for u in session.scalars(select(User))] == [
            email_index(us.vault, "new@elsewhere.test")]
    assert [m.subject for m in mailed(eu) if m.to == "eva@europa.test"] == [
        "Your Mailhaven sign-up"]  # its owner is told, by its region


def test_an_unconfirmed_sign_up_elsewhere_does_not_take_the_owners_logins(
        platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    europa = tenant_in(eu, "Europa GmbH", "mg.europa.test")
    add_user(eu, europa.account_id, email="eva@europa.test")
    squatter = tenant_in(us, "Squat", "mg.squat.test")
    add_user(us, squatter.account_id, email="eva@europa.test", confirmed=False)  # as before
    assert region_of_address(platform, "eva@europa.test") is eu
    with PlatformServer(platform) as live:
        assert _log_in(live, "eva@europa.test") == (303, "eu")


def test_a_reset_goes_to_the_region_of_the_address(platform: Platform) -> None:
    eu = platform.region("eu")
    europa = tenant_in(eu, "Europa GmbH", "mg.europa.test")
    add_user(eu, europa.account_id, email="eva@europa.test")
    with PlatformServer(platform) as live, live.client() as browser:  # a new device
        answer = browser.post("/reset", data={"email": "eva@europa.test",
                                              "csrf_token": _csrf(browser, "/reset")})
        assert answer.status_code == 200 and REGION_COOKIE not in browser.cookies
        link = next(m for m in mailed(eu) if m.subject == "Reset your Mailhaven password")
        assert browser.get(link.link(eu, "reset")).status_code == 200


@pytest.mark.parametrize("path", ["/login", "/signup", "/reset", "/v1/privacy/requests",
                                  "/privacy-center"])
def test_a_body_the_dispatcher_cannot_read_is_no_server_error(platform: Platform,
                                                             path: str) -> None:
    with PlatformServer(platform) as live, live.client() as anon:
        for body, kind in ((b"[" * 60000, "application/json"),
                           (b'{"a":' * 20000, "application/json"),
                           (b"\xff\xfe=\xff", "application/x-www-form-urlencoded"),
                           (b"\xff\xfe", "application/json")):
            answer = anon.post(path, content=body, headers={"content-type": kind})
            assert answer.status_code < 500, (path, kind, answer.text[:200])


def test_accounts_list_shows_names_and_domains_of_another_region_only_when_asked(
        platform: Platform, regions_settings: Settings) -> None:
    eu, us = platform.region("eu"), platform.region("us")
    euro, yankee = tenant_in(eu, "Euro", "mg.euro.test"), tenant_in(us, "Yankee", "mg.yankee.test")
    listed = json.loads(_cli(regions_settings, "accounts", "list", "--json"))
    assert {a["account_id"]: (a["region"], a["name"], a["domains"]) for a in listed} == {
        euro.account_id: ("eu", None, None), yankee.account_id: ("us", "Yankee",
                                                                 ["mg.yankee.test"])}
    table = _cli(regions_settings, "accounts", "list")
    assert "mg.euro.test" not in table and "mg.yankee.test" in table
    assert _transfers(eu) == []

    asked = json.loads(_cli(regions_settings, "accounts", "list", "--region", "eu", "--json"))
    assert [(a["account_id"], a["name"], a["domains"]) for a in asked] == [
        (euro.account_id, "Euro", ["mg.euro.test"])]
    assert _transfers(eu) == [euro.account_id]  # read from us: logged in eu
    in_eu = json.loads(_cli(regions_settings, "accounts", "list", "--region", "eu", "--json",
                            MAILHAVEN_SITE_REGION="eu"))
    assert in_eu == asked and _transfers(eu) == [euro.account_id]
    assert "No region 'ap'" in _cli(regions_settings, "accounts", "list", "--region", "ap",
                                    status=2)


def _transfers(services: Services) -> list[str]:
    with services.db.sessions() as session:
        return list(session.scalars(select(RegionTransfer.account_id)))


def test_regions_sharing_a_database_or_a_key_are_refused_at_start(
        regions_settings: Settings, tmp_path: Path) -> None:
    main = regions_settings.resolved_database_url
    eu = regions_settings.regional("eu").resolved_database_url
    shared_key = tmp_path / "shared.key"
    for wrong, says in (
            ({"region_database_urls": (("us", eu), ("eu", eu))}, "regions us and eu share a "
                                                                 "database"),
            ({"region_database_urls": (("eu", main),)}, "region eu's database is the main"),
            ({"region_master_key_files": (("us", shared_key), ("eu", shared_key))},
             "share a master key file")):
        settings = regions_settings.with_(**wrong)
        with pytest.raises(ValueError, match=says):
            Platform.start(settings, migrate=False)
        urls = dict(settings.region_database_urls)
        keys = dict(settings.region_master_key_files)
        env = {f"MAILHAVEN_REGION_{n.upper()}_DATABASE_URL": urls.get(n, "")
               for n in ("us", "eu")}
        env |= {f"MAILHAVEN_REGION_{n.upper()}_MASTER_KEY_FILE": str(keys.get(n, ""))
                for n in ("us", "eu") if n in keys}
        refused = _cli(settings, "accounts", "list", status=2, **env)
        assert refused.startswith("mailhaven: configuration error:") and says in refused
    Platform.start(regions_settings, migrate=False).close()  # as the fixtures give them


def test_whole_database_commands_take_main(platform: Platform,
                                           regions_settings: Settings) -> None:
    from mailhaven.audit import service as audit

    with platform.directory.transaction() as session:  # the main database's own log
        audit.append(session, platform.directory_vault, actor="operator",
                     action="test.main", target="main", now=platform.clock.now())
    verified = json.loads(_cli(regions_settings, "audit", "verify", "--region", "main",
                               "--json"))
    assert verified["intact"] and verified["region"] == "main" and verified["rows"] >= 1
    assert "in the main database is intact" in _cli(regions_settings, "audit", "verify",
                                                    "--region", "main")
    rows = json.loads(_cli(regions_settings, "audit", "list", "--region", "main", "--json"))
    assert [r["action"] for r in rows][:1] == ["test.main"]
    ran = json.loads(_cli(regions_settings, "privacy", "retention", "run", "--dry-run",
                          "--region", "main", "--json"))
    assert ran["region"] == "main"
    eu = json.loads(_cli(regions_settings, "audit", "verify", "--region", "eu", "--json"))
    assert eu["region"] == "eu" and eu["rows"] == 0


def test_the_inventory_puts_each_table_in_the_database_that_holds_it(
        regions_settings: Settings) -> None:
    record = json.loads(_cli(regions_settings, "privacy", "inventory", "--format", "json"))
    where = {t["table"]: t["database"] for t in record["tables"]}
    assert {t for t, d in where.items() if d == "main"} == {
        "region_directory", "subprocessors", "privacy_notices"}
    assert where["audit_log"] == where["job_runs"] == where["vault_keys"] == "every"
    for table in ("region_transfers", "notice_objections", "disclosures", "disclosure_subjects",
                  "disclosure_notifications", "accounts", "users", "platform"):
        assert where[table] == "region", table


def test_migrate_names_each_database_it_migrated(regions_settings: Settings) -> None:
    said = _cli(regions_settings, "migrate")
    assert "Migrated the main database." in said
    assert "Migrated region us's database." in said and "Migrated region eu's database." in said
    assert "3 databases are at the newest schema." in said
    assert regions_settings.database_url not in said  # (a URL may hold a password)
