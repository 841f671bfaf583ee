"""`mailhaven audit verify` and `mailhaven audit list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Column

from mailhaven.audit.anchor import HEAD_FILE, HeadAnchor
from mailhaven.audit.models import AuditEntry
from mailhaven.audit.service import current_head, recent, row_count, verify
from mailhaven.cli import common
from mailhaven.clock import iso8601
from mailhaven.vault import Vault

app = typer.Typer(help="The audit log of privacy steps: append-only, hash-chained.",
                  no_args_is_help=True)


@app.command("verify")
def verify_command(region: common.DatabaseOpt = None, as_json: common.JsonOpt = False) -> None:
    """Check that no row was changed, removed or reordered; exit 1 names the first bad row.
    Each region keeps its own log (`--region`)."""
    services = common.in_database(region)
    anchor = HeadAnchor(services.settings.data_dir / HEAD_FILE)
    try:
        with services.db.sessions() as session:
            problems = verify(session, services.vault, anchor)
            rows = row_count(session)
            head = current_head(session)
    finally:
        services.close()
    first_bad = next((p.row for p in problems if p.row is not None), None)
    unanchored = rows > 0 and not anchor.path.exists()
    console = common.console
    if as_json:
        common.print_json({"intact": not problems, "rows": rows,
                           "head": head._asdict() if head else None, "first_bad_row": first_bad,
                           "problems": [p._asdict() for p in problems],
                           "anchored": not unanchored,
                           **common.region_field(services.settings)})
    elif problems:
        console.print(f"[bold red]The audit log{common.where(services)} was tampered "
                      "with[/bold red] "
                      f"(first bad row: {first_bad}).")
        for problem in problems:
            console.print(f"  [red]✗[/red] {problem}")
    else:
        at = f", head row {head.id}" if head else ""
        console.print(f"[green]✓ The audit log{common.where(services)} is intact:[/green] "
                      f"{rows} rows{at}.")
        if unanchored:
            console.print(f"[yellow]No {anchor.path} on this machine: rows removed from the "
                          "end would go unnoticed here.[/yellow]")
    if problems:
        raise typer.Exit(1)


@app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest rows.")] = 50,
    region: common.DatabaseOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """The newest rows of a region's log, newest first; sealed details stay sealed."""
    services = common.in_database(region)
    try:
        with services.db.sessions() as session:
            entries = recent(session, limit)
            live = Vault.keys(session, [e.key_id for e in entries])
    finally:
        services.close()
    rows = [_row(entry, live) for entry in entries]
    if as_json:
        common.print_json(rows)
        return
    shown = common.table("id", Column("at (UTC)", no_wrap=True), "actor", "action", "target",
                         "subject", "details", "sealed")
    for row in rows:
        subject = row["subject_index"][:12] + "…" if row["subject_index"] else ""
        at = datetime.fromtimestamp(row["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        shown.add_row(str(row["id"]), at, row["actor"], row["action"],
                      row["target"] or "", subject, json.dumps(row["details"]), row["sealed"])
    common.console.print(shown)


def _row(entry: AuditEntry, live: dict[str, Any]) -> dict[str, Any]:
    sealed = "" if entry.details_sealed is None else (
        "sealed" if entry.key_id in live else "erased")
    return {"id": entry.id, "at": entry.at,
            "at_iso": iso8601(entry.at, timespec="seconds"),
            "actor": entry.actor, "action": entry.action, "target": entry.target,
            "subject_index": entry.subject_index, "details": json.loads(entry.details),
            "sealed": sealed, "key_id": entry.key_id, "prev_hash": entry.prev_hash,
            "hash": entry.hash}
