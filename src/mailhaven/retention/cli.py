"""`mailhaven privacy retention run`: the retention job (SPEC N7), now."""

from __future__ import annotations

from typing import Annotated

import typer

from mailhaven.cli import common

app = typer.Typer(help="Retention of personal data (purges what expired).",
                  no_args_is_help=True)


@app.command("run")
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what expired; purge "
                                          "nothing.")] = False,
    region: common.DatabaseOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Purge what every retention policy says has expired, now (the scheduler does this
    hourly); prints how many rows of each category were purged, never their content. One
    region's database at a time (`--region`)."""
    from rich.progress import TaskID

    from mailhaven.retention import service

    services = common.in_database(region)
    try:
        expired = service.run(services.db, services.clock, dry_run=True,
                              settings=services.settings)
        counts = expired
        if not dry_run:
            with common.progress(disable=as_json) as bar:
                tasks: dict[str, TaskID] = {name: bar.add_task(f"purge {name}", total=n)
                                            for name, n in expired.items()}
                counts = service.run(services.db, services.clock, settings=services.settings,
                                     progress=lambda name, n: bar.advance(tasks[name], n))
    finally:
        services.close()
    if as_json:
        common.print_json({"dry_run": dry_run, "purged" if not dry_run else "expired": counts,
                           **common.region_field(services.settings)})
        return
    if services.settings.split:
        common.console.print(f"{common.where(services).strip().capitalize()}:",
                             highlight=False)
    shown = common.table("category", "rows expired" if dry_run else "rows purged")
    for name, n in counts.items():
        shown.add_row(name, str(n))
    common.console.print(shown)
