"""`mailhaven accounts create|list` and `mailhaven keys list|create|revoke`."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from mailhaven.cli import common
from mailhaven.clock import iso8601
from mailhaven.errors import NotFound

if TYPE_CHECKING:
    from mailhaven.accounts.models import ApiKey
    from mailhaven.services import Platform

app = typer.Typer(help="Accounts and their API keys.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Account (company) name.")],
    email: Annotated[str, typer.Option(help="Account holder's email.")],
    region: Annotated[str | None, typer.Option(
        help="The region that keeps the account's data (MAILHAVEN_REGIONS; default: the "
             "home region, the first).")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Create an account, in its region's database, and print its first API key (shown once)."""
    from mailhaven.accounts.service import create_account, key_digest
    from mailhaven.regions.service import record

    platform = common.platform()
    chosen = region or platform.settings.home_region
    try:
        if chosen not in platform.regions:
            raise ValueError(f"region must be one of {', '.join(platform.settings.regions)}")
        services = platform.region(chosen)
        with services.db.transaction() as session:
            issued = create_account(session, services.vault, name=name, email=email,
                                    region=chosen, clock=services.clock,
                                    regions=platform.settings.regions)
        record(platform, "account", issued.account_id, chosen)
        record(platform, "key", key_digest(issued.api_key), chosen)
    except ValueError as exc:
        common.fail(str(exc))
    finally:
        platform.close()
    if as_json:
        common.print_json({"account_id": issued.account_id, "api_key": issued.api_key,
                           **({"region": chosen} if platform.settings.split else {})})
    else:
        common.console.print(f"Account [bold]{issued.account_id}[/bold] created "
                             f"(region {chosen}).")
        common.console.print(
            f"API key (shown once): [bold yellow]{issued.api_key}[/bold yellow]")


@app.command("list")
def list_(
    region: Annotated[str | None, typer.Option(
        "--region", help="List this region's accounts only, with their names and domains "
                         "(read from another region: logged as a transfer).")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Every account of every region (or of `--region`), with the id that `--account` wants.
    Holders' names and domains are shown for the accounts of this process's region only
    (MAILHAVEN_SITE_REGION), or of the region named by `--region`, whose reading from
    another region is logged as a transfer in it: a domain names its holder as much as a
    name does. Ids, regions and dates are not personal data: always listed."""
    from mailhaven.accounts.service import list_accounts
    from mailhaven.domains.service import names_by_account
    from mailhaven.regions.transfers import is_transfer, record_transfer

    platform = common.platform()
    accounts, domains = [], {}
    try:
        if region is not None and region not in platform.regions:
            common.fail(f"No region {region!r}: MAILHAVEN_REGIONS is "
                        f"{','.join(platform.settings.regions)}")
        for name, services in platform.regions.items():
            if region is not None and name != region:
                continue
            with services.db.sessions() as session:
                listed = list_accounts(session, services.vault)
            if region is None and is_transfer(services):  # names and domains stay there
                listed = [replace(a, name=None) for a in listed]
            else:
                for account in listed:  # (logged when read from another region)
                    record_transfer(services, account.account_id,
                                    ["account name", "domain names"],
                                    "accounts list by the operator")
                with services.db.sessions() as session:
                    domains.update(names_by_account(session))
            accounts += listed
    finally:
        platform.close()
    if as_json:
        common.print_json([{"account_id": a.account_id, "name": a.name, "region": a.region,
                            "created_at": iso8601(a.created_at), "deleted": a.deleted,
                            "domains": domains.get(a.account_id, [])
                            if a.name is not None or a.region == _shown(platform, region)
                            else None} for a in accounts])
        return
    shown = common.table("id", "name", "region", "created", "domains")
    for a in accounts:
        hidden = a.name is None and a.region != _shown(platform, region)
        shown.add_row(a.account_id, "(deleted)" if a.deleted else
                      f"(in region {a.region})" if hidden else a.name or "(erased)",
                      a.region, iso8601(a.created_at)[:10],
                      f"(in region {a.region})" if hidden else
                      ", ".join(domains.get(a.account_id, [])))
    common.console.print(shown)


def _shown(platform: Platform, region: str | None) -> str:
    """The region whose accounts are listed with names and domains."""
    return region or platform.settings.process_region




keys_app = typer.Typer(help="An account's API keys: list, create, revoke (as /v1/keys).",
                       no_args_is_help=True)
CLI_ACTOR = "cli"


def _key_row(key: ApiKey) -> dict[str, str]:
    from mailhaven.accounts.service import mailgun_role

    return {"id": key.id, "role": mailgun_role(key.role), "description": key.description,
            "hint": f"…{key.hint}",
            "created_at": iso8601(key.created_at, timespec="seconds", zulu=True)}


@keys_app.command("list")
def keys_list(account: common.AccountOpt, as_json: common.JsonOpt = False) -> None:
    """The account's keys in use, newest first: id, role, description and the key's last
    characters (never the key)."""
    from mailhaven.accounts.service import account_keys, require_account

    services = common.services_for_account(account)
    try:
        with common.refusals(), services.db.sessions() as session:
            require_account(session, account)
            rows = [_key_row(k) for k in account_keys(session, account)]
    finally:
        services.close()
    if as_json:
        common.print_json(rows)
        return
    shown = common.table("id", "role", "description", "ends with", "created")
    for row in rows:
        shown.add_row(row["id"], row["role"], row["description"], row["hint"],
                      row["created_at"])
    common.console.print(shown)


@keys_app.command("create")
def keys_create(
    account: common.AccountOpt,
    role: Annotated[str, typer.Option(
        help="admin, developer, basic (an analyst's), or ours: analyst, billing, support.")]
    = "admin",
    description: Annotated[str, typer.Option(help="What the key is for (no addresses).")] = "",
    as_json: common.JsonOpt = False,
) -> None:
    """Make an API key for the account and print it (shown once: only its digest is kept)."""
    from mailhaven.accounts import service
    from mailhaven.regions.service import record

    services = common.services_for_account(account)
    try:
        with common.refusals(), services.db.transaction() as session:
            service.require_account(session, account)
            key, secret = service.new_key(
                session, account, role=service.key_role(role),
                description=service.key_description(description), clock=services.clock)
            service.journal_key(session, services.vault, "key.created", key,
                                actor=CLI_ACTOR, now=services.clock.now())
            row = _key_row(key)
        if services.in_platform is not None:  # as `accounts create`: its region named
            record(services.in_platform, "key", service.key_digest(secret), services.region)
    finally:
        services.close()
    if as_json:
        common.print_json({**row, "secret": secret})
        return
    common.console.print(f"Key [bold]{row['id']}[/bold] ({row['role']}) created.")
    common.console.print(f"API key (shown once): [bold yellow]{secret}[/bold yellow]")


@keys_app.command("revoke")
def keys_revoke(
    account: common.AccountOpt,
    key_id: Annotated[str, typer.Argument(help="The key's id (see `mailhaven keys list`).")],
) -> None:
    """Revoke one of the account's keys: every API process refuses it from its commit on
    (the revocation is announced to them all)."""
    from mailhaven.accounts import service

    services = common.services_for_account(account)
    try:
        with common.refusals(), services.db.transaction() as session:
            service.require_account(session, account)
            try:
                key = service.revoke_key(session, account, key_id, clock=services.clock)
            except NotFound:
                common.fail(f"No key {key_id} in use by account {account} "
                            f"(see `mailhaven keys list --account {account}`)")
            service.journal_key(session, services.vault, "key.revoked", key,
                                actor=CLI_ACTOR, now=services.clock.now())
    finally:
        services.close()
    common.console.print(f"Key [bold]{key_id}[/bold] revoked: it no longer works.")
