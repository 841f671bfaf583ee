"""`mailhaven privacy export`: an account holder's or a recipient's export, with progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

err = Console(stderr=True)


def export(
    account: Annotated[str, typer.Option(help="Account id.")],
    out: Annotated[Path, typer.Option(help="The zip to write (replaced when complete).")],
    recipient: Annotated[str | None, typer.Option(
        help="Export what the account holds about this address, not the account.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write an access and portability export: export.json and a CSV per category."""
    from mailhaven.config import Settings
    from mailhaven.errors import MailhavenError
    from mailhaven.exports.service import export_account, export_recipient
    from mailhaven.services import Services

    if not out.parent.is_dir():
        err.print(f"[red]No such directory: {out.parent}[/red]")
        raise typer.Exit(2)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        typer.echo(f"mailhaven: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    services = Services.start(settings)
    # On stderr and only on a terminal, so that stdout carries only the result.
    with Progress(TextColumn("Exporting"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task("export", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            if recipient is None:
                done = export_account(services.db, services.vault, account, out, progress,
                                      hostname=settings.hostname, clock=services.clock)
            else:
                done = export_recipient(services.db, services.vault, account, recipient, out,
                                        progress, clock=services.clock)
        except MailhavenError as exc:
            err.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(2) from exc
        finally:
            services.close()
    if as_json:
        print(json.dumps({"path": str(done.path), "rows": done.rows}))
    else:
        rows = ", ".join(f"{n} {name}" for name, n in done.rows.items() if n)
        # soft_wrap: a path is never broken across lines, whatever the terminal's width
        Console(soft_wrap=True).print(f"Wrote [bold]{done.path}[/bold]: {rows or 'no rows'}.")
