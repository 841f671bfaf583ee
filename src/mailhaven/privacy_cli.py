"""`mailhaven privacy …`: the privacy engine's commands: the record of processing (N1),
exports (N3/N4), the retention job (N7); requests and erasure are added by
`mailhaven.privacy.commands.register`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from mailhaven.exports.cli import export

privacy_app = typer.Typer(
    help="The privacy engine: requests, erasure, exports, inventory, retention.",
    no_args_is_help=True)
retention_app = typer.Typer(help="Retention of personal data (purges what expired).",
                            no_args_is_help=True)
privacy_app.add_typer(retention_app, name="retention")
privacy_app.command("export")(export)


class Format(StrEnum):
    md = "md"
    json = "json"


@privacy_app.command("inventory")
def privacy_inventory(
    fmt: Annotated[Format, typer.Option("--format", help="md (Markdown) or json.")] = Format.md,
) -> None:
    """Print the Article 30 record of processing: every table and column, classified."""
    from mailhaven.models import metadata
    from mailhaven.retention.service import schedule
    from mailhaven.storage import processing_record

    record = processing_record.build(metadata, schedule())
    if fmt is Format.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(processing_record.markdown(record))


@retention_app.command("run")
def privacy_retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what expired; purge "
                                          "nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Purge what every retention policy says has expired, now (the scheduler does this
    hourly); prints how many rows of each category were purged, never their content."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
    from rich.table import Table

    from mailhaven.cli import _settings
    from mailhaven.retention import service
    from mailhaven.services import Services

    services = Services.start(_settings())
    try:
        expired = service.run(services.db, services.clock, dry_run=True)
        counts = expired
        if not dry_run:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          console=Console(stderr=True), disable=as_json) as bar:
                tasks: dict[str, TaskID] = {name: bar.add_task(f"purge {name}", total=n)
                                            for name, n in expired.items()}
                counts = service.run(services.db, services.clock,
                                     progress=lambda name, n: bar.advance(tasks[name], n))
    finally:
        services.close()
    if as_json:
        print(json.dumps({"dry_run": dry_run, "purged" if not dry_run else "expired": counts}))
        return
    table = Table("category", "rows expired" if dry_run else "rows purged")
    for name, n in counts.items():
        table.add_row(name, str(n))
    Console().print(table)
