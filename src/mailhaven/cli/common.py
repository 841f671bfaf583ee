"""What every command shares: settings, the platform's services, the data directory it
opened, JSON output, tables that wrap, progress bars, and refusals as one red line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from mailhaven.config import Settings
from mailhaven.errors import MailhavenError
from mailhaven.services import Services
from mailhaven.wiring import wire

# soft_wrap: a line (a path, a key, a curl command) is never broken, whatever the width
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AccountOpt = Annotated[str, typer.Option(
    "--account", help="The account id (see `mailhaven accounts list`).")]


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
