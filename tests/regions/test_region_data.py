"""Every account's data in its region (SPEC N11): made there from the CLI, found there by
every command, backed up, restored and erased there, and read from another region only with
a transfer logged in the account's own region."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailhaven.cli import app
from mailhaven.config import Settings
from mailhaven.domains.service import create_domain, owned_domain
from mailhaven.regions.models import RegionTransfer
from mailhaven.sending.request import build_request
from mailhaven.sending.service import accept
from mailhaven.services import Platform, Services
from mailhaven.suppressions import service as suppressions
from mailhaven.suppressions.models import Suppression
from tests.support import dump_database

RECIPIENT = "anna.schmidt@example.org"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {"MAILHAVEN_DATA_DIR": str(settings.data_dir),
           "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_REGIONS": ",".join(settings.regions),
           "MAILHAVEN_HOSTNAME": settings.hostname,
           "MAILHAVEN_REQUIRE_VERIFIED_DOMAINS": "0", "MAILHAVEN_SITE_REGION": ""}
    for name, url in settings.region_database_urls:
        env[f"MAILHAVEN_REGION_{name.upper()}_DATABASE_URL"] = url
    return {**env, **extra}


def _cli(settings: Settings, *args: str, status: int = 0, **env: str) -> str:
    done = CliRunner().invoke(app, list(args), env=_env(settings, **env))
    assert done.exit_code == status, (done.stdout, done.stderr, done.exception)
    return done.stdout if status == 0 else done.stderr


def _account(settings: Settings, name: str, region: str | None) -> str:
    chosen = ["--region", region] if region else []
    made = json.loads(_cli(settings, "accounts", "create", "--name", name, "--email",
                           f"ops@{name.lower()}.test", *chosen, "--json"))
    return str(made["account_id"])


def _mail_and_suppress(services: Services, account_id: str, domain_name: str) -> None:
    """What an account's use leaves behind: a send accepted, a bounce for the recipient."""
    with services.db.transaction() as session:
        domain = owned_domain(session, account_id, domain_name)
        request = build_request([("from", f"ops@{domain_name}"), ("to", RECIPIENT),
                                 ("subject", "Hallo"), ("text", "Guten Tag")], [])
        accept(session, services.vault, domain, request, services.clock)
        suppressions.add(session, services.vault, domain, "bounces",
                         [suppressions.Entry(RECIPIENT, code="550", detail="no such user")],
                         services.clock)


def _suppressed(services: Services) -> int:
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Suppression)) or 0


def _known(services: Services, account_id: str) -> bool:
    """Whether the region still holds the recipient's vault key (an erasure destroys it)."""
    with services.db.sessions() as session:
        return services.vault.find_subject(session, account_id, RECIPIENT) is not None


@pytest.fixture
def split(platform: Platform, regions_settings: Settings) -> tuple[str, str]:
    """An EU account (made by the CLI) and a US one (the default region), each with a domain
    added by the CLI and some mail and a bounce made through the service functions."""
    eu_id = _account(regions_settings, "Euro", "eu")
    us_id = _account(regions_settings, "Yankee", None)
    _cli(regions_settings, "domains", "add", "mg.euro.test", "--account", eu_id,
         "--dkim-key-size", "1024", "--json")
    _cli(regions_settings, "domains", "add", "mg.yankee.test", "--account", us_id,
         "--dkim-key-size", "1024", "--json")
    _mail_and_suppress(platform.region("eu"), eu_id, "mg.euro.test")
    _mail_and_suppress(platform.region("us"), us_id, "mg.yankee.test")
    return eu_id, us_id


def test_each_accounts_data_is_only_in_its_regions_database(
        platform: Platform, regions_settings: Settings, split: tuple[str, str]) -> None:
    eu_id, us_id = split
    listed = json.loads(_cli(regions_settings, "accounts", "list", "--json"))
    assert {(a["account_id"], a["region"]) for a in listed} == {(eu_id, "eu"), (us_id, "us")}
    assert {a["account_id"]: a["domains"] for a in listed} == {
        eu_id: None, us_id: ["mg.yankee.test"]}
    # Run in us (the home region): the eu holder's name and domains are not read here
    assert {a["account_id"]: a["name"] for a in listed} == {eu_id: None, us_id: "Yankee"}
    assert "(in region eu)" in _cli(regions_settings, "accounts", "list")

    eu, us = dump_database(platform.region("eu")), dump_database(platform.region("us"))
    main = dump_database(Services(regions_settings, platform.directory,
                                  platform.directory_vault, platform.clock))
    assert eu.holding(eu_id.encode()) and eu.holding(b"mg.euro.test")
    assert us.holding(us_id.encode()) and us.holding(b"mg.yankee.test")
    for dump, foreign in ((eu, (us_id, "mg.yankee.test")), (us, (eu_id, "mg.euro.test")),
                          (main, (eu_id, us_id, "mg.euro.test", "mg.yankee.test"))):
        for value in foreign:
            assert dump.holding(value.encode()) == [], value
    # The recipient's rows are sealed in each region; in clear nowhere, not even the main one
    for dump in (eu, us, main):
        assert dump.holding(RECIPIENT.encode()) == []
    assert main.columns["suppressions.id"] == [] and main.columns["messages.id"] == []
    assert len(eu.columns["suppressions.id"]) == len(us.columns["suppressions.id"]) == 1

    # Commands that name an account or a domain find its region
    shown = _cli(regions_settings, "domains", "rotate-dkim", "mg.euro.test", "--key-size",
                 "1024", "--json")
    assert json.loads(shown)["domain"]["name"] == "mg.euro.test"
    _cli(regions_settings, "credentials", "add", "alice@mg.euro.test", "--json")
    listed_logins = json.loads(_cli(regions_settings, "credentials", "list", "mg.euro.test",
                                    "--json"))
    assert [c["login"] for c in listed_logins["items"]] == ["alice@mg.euro.test"]
    assert b"alice" not in dump_database(platform.region("us")).everything()
    missing = _cli(regions_settings, "domains", "add", "x.test", "--account", "nobody",
                   status=2)
    assert "No region holds account nobody" in missing


def test_accounts_are_made_only_in_configured_regions(regions_settings: Settings,
                                                      platform: Platform) -> None:
    refused = _cli(regions_settings, "accounts", "create", "--name", "X", "--email",
                   "x@x.test", "--region", "ap", status=2)
    assert "region must be one of us, eu" in refused


def test_an_erasure_in_eu_leaves_us_untouched(platform: Platform, regions_settings: Settings,
                                              split: tuple[str, str]) -> None:
    eu_id, us_id = split
    erased = json.loads(_cli(regions_settings, "privacy", "erase", RECIPIENT, "--account",
                             eu_id, "--json"))
    assert erased["cancelled"] == 1
    assert not _known(platform.region("eu"), eu_id) and _known(platform.region("us"), us_id)
    assert _suppressed(platform.region("us")) == 1
    # Each region keeps its own erasure ledger file, beside its database
    assert (regions_settings.data_dir / "eu" / "erasure-ledger.jsonl").exists()
    assert not (regions_settings.data_dir / "us" / "erasure-ledger.jsonl").exists()
    assert not (regions_settings.data_dir / "erasure-ledger.jsonl").exists()


def test_a_regions_backup_restores_that_region_only_and_reapplies_its_ledger(
        platform: Platform, regions_settings: Settings, split: tuple[str, str],
        tmp_path: Path) -> None:
    eu_id, us_id = split
    archive = tmp_path / "eu.zip"
    made = json.loads(_cli(regions_settings, "backup", "create", str(archive), "--region",
                           "eu", "--json"))
    assert made["region"] == "eu" and made["tables"]["accounts"] == 1
    with zipfile.ZipFile(archive) as opened:
        assert not any(us_id.encode() in opened.read(n) for n in opened.namelist())

    # After the backup: the recipient erased in eu; us gains a second domain
    _cli(regions_settings, "privacy", "erase", RECIPIENT, "--account", eu_id, "--json")
    us = platform.region("us")
    with us.db.transaction() as session:
        create_domain(session, us.vault, us_id, {"name": "two.yankee.test"}, us.clock)

    restored = json.loads(_cli(regions_settings, "backup", "restore", str(archive),
                               "--region", "eu", "--replace", "--json"))
    assert restored["region"] == "eu" and restored["erasures"] == 1
    assert not _known(platform.region("eu"), eu_id)  # erased again from the eu ledger
    assert _known(us, us_id) and _suppressed(us) == 1
    with us.db.sessions() as session:
        assert owned_domain(session, us_id, "two.yankee.test") is not None

    # An eu backup does not open under us's key
    refused = _cli(regions_settings, "backup", "restore", str(archive), "--region", "us",
                   "--replace", status=2)
    assert "key" in refused.lower()


def _transfers(services: Services) -> list[RegionTransfer]:
    with services.db.sessions() as session:
        return list(session.scalars(select(RegionTransfer)))


def test_an_export_from_another_region_is_a_transfer_the_holder_sees(
        platform: Platform, regions_settings: Settings, split: tuple[str, str],
        tmp_path: Path) -> None:
    eu_id, _ = split
    out = tmp_path / "export.zip"
    # Run in the account's own region: no transfer
    _cli(regions_settings, "privacy", "export", "--account", eu_id, "--out", str(out),
         "--json", MAILHAVEN_SITE_REGION="eu")
    assert _transfers(platform.region("eu")) == []

    # From us: logged in eu (and nowhere else), before the data was read
    _cli(regions_settings, "privacy", "export", "--account", eu_id, "--out", str(out),
         "--recipient", RECIPIENT, "--json", MAILHAVEN_SITE_REGION="us")
    _cli(regions_settings, "privacy", "export", "--account", eu_id, "--out", str(out),
         "--json", MAILHAVEN_SITE_REGION="us")
    logged = _transfers(platform.region("eu"))
    assert [(t.from_region, t.to_region, t.actor) for t in logged] == [("eu", "us",
                                                                        "operator")] * 2
    assert _transfers(platform.region("us")) == []
    with zipfile.ZipFile(out) as opened:
        exported = json.loads(opened.read("export.json"))
    shown = exported["categories"]["transfers"]
    assert [(t["from_region"], t["to_region"]) for t in shown] == [("eu", "us")] * 2
    assert "suppressions" in shown[0]["data_categories"]
    assert "recipient" in shown[0]["purpose"] and "account holder" in shown[1]["purpose"]
    assert RECIPIENT not in json.dumps(shown)


def test_whole_database_commands_take_a_region(platform: Platform,
                                               regions_settings: Settings,
                                               split: tuple[str, str]) -> None:
    verified = json.loads(_cli(regions_settings, "audit", "verify", "--region", "eu",
                               "--json"))
    assert verified["intact"] and verified["region"] == "eu"
    ran = json.loads(_cli(regions_settings, "privacy", "retention", "run", "--dry-run",
                          "--region", "eu", "--json"))
    assert ran["region"] == "eu"
    unknown = _cli(regions_settings, "privacy", "retention", "run", "--region", "ap",
                   status=2)
    assert "No region 'ap'" in unknown
    for region in ("eu", "main"):
        rotated = json.loads(_cli(regions_settings, "vault", "rotate-master-key", "--region",
                                  region, "--json"))
        assert rotated["state"] == "rotated" and rotated["region"] == region
    eu_id, _ = split
    requests = json.loads(_cli(regions_settings, "privacy", "requests", "--json"))
    assert requests == []
    # The rotated eu key still opens the eu account's data, read in eu
    listed = json.loads(_cli(regions_settings, "accounts", "list", "--json",
                             MAILHAVEN_SITE_REGION="eu"))
    assert {a["account_id"]: a["name"] for a in listed}[eu_id] == "Euro"


def test_the_inventory_says_which_database_holds_each_table(
        regions_settings: Settings) -> None:
    record = json.loads(_cli(regions_settings, "privacy", "inventory", "--format", "json"))
    where = {t["table"]: t["database"] for t in record["tables"]}
    assert where["region_directory"] == where["subprocessors"] == "main"
    assert where["accounts"] == where["suppressions"] == where["region_transfers"] == "region"
    assert "Database: the main database" in _cli(regions_settings, "privacy", "inventory")
