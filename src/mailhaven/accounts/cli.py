"""`mailhaven accounts create|list`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from mailhaven.cli import common
from mailhaven.clock import iso8601

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
def list_(as_json: common.JsonOpt = False) -> None:
    """Every account of every region, with the id that `--account` wants and its domains.
    Holders' names are shown for the accounts of this process's region only
    (MAILHAVEN_SITE_REGION): reading the others' would be a transfer."""
    from mailhaven.accounts.service import list_accounts
    from mailhaven.domains.service import names_by_account
    from mailhaven.regions.transfers import is_transfer

    platform = common.platform()
    accounts, domains = [], {}
    try:
        for services in platform.regions.values():
            with services.db.sessions() as session:
                listed = list_accounts(session, services.vault)
                domains.update(names_by_account(session))
            if is_transfer(services):  # a holder's name stays in its region
                listed = [replace(a, name=None) for a in listed]
            accounts += listed
    finally:
        platform.close()
    if as_json:
        common.print_json([{"account_id": a.account_id, "name": a.name, "region": a.region,
                            "created_at": iso8601(a.created_at), "deleted": a.deleted,
                            "domains": domains.get(a.account_id, [])} for a in accounts])
        return
    shown = common.table("id", "name", "region", "created", "domains")
    for a in accounts:
        hidden = a.name is None and a.region != platform.settings.process_region
        shown.add_row(a.account_id, "(deleted)" if a.deleted else
                      f"(in region {a.region})" if hidden else a.name or "(erased)",
                      a.region, iso8601(a.created_at)[:10],
                      ", ".join(domains.get(a.account_id, [])))
    common.console.print(shown)


