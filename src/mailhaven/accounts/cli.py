"""`mailhaven accounts create|list`."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from mailhaven.cli import common
from mailhaven.clock import iso8601

if TYPE_CHECKING:
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


