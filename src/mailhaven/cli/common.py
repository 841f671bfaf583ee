"""What every command shares: settings, the platform's services, the data directory it
opened, JSON output, tables that wrap, progress bars, and refusals as one red line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from mailhaven.config import Settings
from mailhaven.errors import MailhavenError
from mailhaven.services import Platform, Services
from mailhaven.wiring import wire

# soft_wrap: a line (a path, a key, a curl command) is never broken, whatever the width
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AccountOpt = Annotated[str, typer.Option(
    "--account", help="The account id (see `mailhaven accounts list`).")]
RegionOpt = Annotated[str | None, typer.Option(
    "--region", help="The region whose database this acts on (MAILHAVEN_REGIONS; default: "
                     "the home region, the first).")]


def settings() -> Settings:
    """The environment's settings, or a one-line error (not a traceback) saying what's wrong."""
    try:
        return Settings.from_env()
    except ValueError as exc:  # a bad number, a bad shaping rule...
        typer.echo(f"mailhaven: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def opened(chosen: Settings) -> Settings:
    """Say on stderr which data directory this command works in: `./var` is relative to
    the current folder, and another folder's (or a new, empty) one looks like lost data."""
    folder = chosen.data_dir.resolve()
    state = "" if folder.is_dir() else " (new: nothing was there)"
    database = " and MAILHAVEN_DATABASE_URL" if chosen.database_url else ""
    err.print(f"mailhaven: data directory {folder}{database}{state}", style="dim",
              markup=False, highlight=False)
    return chosen


def services() -> Services:
    """The platform (database migrated, vault open, event sinks wired) for the environment's
    settings."""
    wire()
    return Services.start(opened(settings()))


def platform() -> Platform:
    """Every region of the installation, opened (databases migrated, vaults open)."""
    wire()
    return Platform.start(opened(settings()))


def in_region(region: str | None) -> Services:
    """The services of one region (`--region`; None: the home region), within the opened
    platform: `.close()` closes it all."""
    chosen = settings()
    name = region or chosen.home_region
    if name not in chosen.regions:
        fail(f"No region {name!r}: MAILHAVEN_REGIONS is {','.join(chosen.regions)}")
    wire()
    return Platform.start(opened(chosen)).region(name)


MAIN = "main"
DatabaseOpt = Annotated[str | None, typer.Option(
    "--region", help="The region whose database this acts on (MAILHAVEN_REGIONS), or `main` "
                     "for the main database (the directory, the sub-processors); default: "
                     "the home region.")]


def database_settings(chosen: Settings, region: str | None) -> Settings:
    """The settings of one database: a region's (its URL, key file and data directory) or,
    with `main`, the main one's. Unsplit, every name is the one database."""
    name = region or chosen.home_region
    if name == MAIN:
        return chosen.with_(region="")
    if name not in chosen.regions:
        fail(f"No region {name!r}: MAILHAVEN_REGIONS is {','.join(chosen.regions)} "
             f"(or `{MAIN}`)")
    return chosen.regional(name)


def in_database(region: str | None) -> Services:
    """The services of one whole database (`--region`, DatabaseOpt): a region's, or with
    `main` the main database's with its vault, within the opened platform (`.close()`
    closes it all). Unsplit, every name is the one database."""
    chosen = settings()
    if region != MAIN or not chosen.split:
        return in_region(None if region == MAIN else region)
    wire()
    opened_platform = Platform.start(opened(chosen))
    return Services(opened_platform.settings, opened_platform.directory,
                    opened_platform.directory_vault, opened_platform.clock,
                    in_platform=opened_platform)


def region_label(chosen: Settings) -> str:
    """What `database_settings` gave, for output: a region's name or `main`."""
    return chosen.region or MAIN


def region_field(chosen: Settings) -> dict[str, str]:
    """{"region": …} for `--json` output on a split installation; {} otherwise (the shape
    single-region scripts know)."""
    return {"region": region_label(chosen)} if chosen.split else {}


def where(services: Services) -> str:
    """" in region eu" for output lines, when the installation has regions apart."""
    if not services.settings.split:
        return ""
    return f" in region {services.region}" if services.settings.region else \
        " in the main database"


def services_for_account(account_id: str) -> Services:
    """The services of the region that holds the account; a red line when none does."""
    from mailhaven.regions.service import for_account

    return _services_holding(f"account {account_id}", lambda p: for_account(p, account_id))


def services_for_domain(name: str) -> Services:
    """The services of the region that holds the domain; a red line when none does."""
    from mailhaven.regions.service import for_domain

    return _services_holding(f"domain {name}", lambda p: for_domain(p, name))


def _services_holding(what: str, find: Callable[[Platform], Services | None]) -> Services:
    opened_platform = platform()
    found = find(opened_platform)
    if found is None and len(opened_platform.regions) > 1:
        opened_platform.close()
        fail(f"No region holds {what} (see `mailhaven accounts list`)")
    return found or opened_platform.home


def fail(message: str, status: int = 2) -> NoReturn:
    err.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(status)


@contextmanager
def refusals(status: int = 2) -> Iterator[None]:
    """A refused request (MailhavenError) is one red line and `status`, not a traceback."""
    try:
        yield
    except MailhavenError as exc:
        fail(exc.message, status)


def print_json(data: object, *, indent: int | None = None) -> None:
    """On stdout alone (no colours, no wrapping): what scripts parse."""
    print(json.dumps(data, indent=indent))


def table(*headers: str | Column) -> Table:
    """A table whose long values (DKIM keys, ids) wrap instead of being cut off."""
    return Table(*(Column(h, overflow="fold", min_width=len(h)) if isinstance(h, str) else h
                   for h in headers))


@contextmanager
def progress(*, disable: bool = False, transient: bool = False) -> Iterator[Progress]:
    """Bars on stderr, so that stdout (and `--json`) carries only the result."""
    columns = (TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err, disable=disable, transient=transient) as bar:
        yield bar
