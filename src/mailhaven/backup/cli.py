"""`mailhaven backup create|restore`: the operator's side of SPEC N9."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from mailhaven.config import Settings
from mailhaven.vault import Keyring

backup_app = typer.Typer(help="Backups that never bring back an erased subject.",
                         no_args_is_help=True)
console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _settings() -> Settings:
    from mailhaven.cli import _settings

    return _settings()


def _keyring(settings: Settings) -> Keyring:
    """The existing key file, never a new one: data sealed under another key is lost."""
    path = settings.resolved_master_key_file
    if not path.exists():
        err.print(f"[red]No master key file at {path}. Backups hold ciphertext that only the "
                  "installation's key opens: put the key file there, or point "
                  "MAILHAVEN_MASTER_KEY_FILE at it.[/red]")
        raise typer.Exit(2)
    return Keyring.from_json(path.read_text())


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """Rows per table, on stderr so that `--json` output stays clean."""
    columns = (TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err) as bar:
        tasks: dict[str, object] = {}

        def update(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)  # type: ignore[arg-type]

        yield update


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal is one red line and exit status 2, not a traceback."""
    from mailhaven.backup.archive import ArchiveError
    from mailhaven.backup.service import BackupError

    try:
        yield
    except BackupError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    except ArchiveError as exc:
        err.print(f"[red]Can't restore this file: {exc}[/red]")
        raise typer.Exit(2) from None


@backup_app.command("create")
def create(
    path: Annotated[Path, typer.Argument(help="The archive to write, e.g. mailhaven.zip.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a consistent snapshot of the database to PATH (the master key is not in it:
    back the key file up separately)."""
    from mailhaven.backup.service import create_backup
    from mailhaven.storage.db import Database

    settings = _settings()
    keyring = _keyring(settings)
    db = Database(settings.resolved_database_url)
    try:
        with _refusals(), _progress() as progress:
            manifest = create_backup(db, keyring, path, force=force, progress=progress)
    finally:
        db.dispose()
    rows = {t.name: t.rows for t in manifest.tables}
    if as_json:
        print(json.dumps({"path": str(path), "revision": manifest.revision, "tables": rows}))
        return
    _print_rows(f"Backup written to [bold]{path}[/bold] (schema {manifest.revision}).", rows)
    console.print("The master key file is not in the backup: keep a copy of it elsewhere.")


@backup_app.command("restore")
def restore(
    path: Annotated[Path, typer.Argument(help="An archive written by `backup create`.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Wipe a database that is not empty and restore in its place.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore PATH into the configured database, then erase again every subject in the
    erasure ledger (table and file), so nobody erased since the backup comes back."""
    from mailhaven.backup.service import restore_backup
    from mailhaven.storage.db import Database
    from mailhaven.vault import Vault

    settings = _settings()
    keyring = _keyring(settings)
    if not path.is_file():
        err.print(f"[red]No backup at {path}[/red]")
        raise typer.Exit(2)
    db = Database(settings.resolved_database_url)
    try:
        db.migrate(vault=Vault(keyring))
        with _refusals(), _progress() as progress:
            restored = restore_backup(db, keyring, settings.data_dir, path, replace=replace,
                                      progress=progress)
    finally:
        db.dispose()
    summary = asdict(restored)
    if as_json:
        print(json.dumps(summary))
        return
    _print_rows(f"Restored [bold]{path}[/bold].", restored.tables)
    console.print(
        f"Erasure ledger re-applied ({restored.erasures} erasures). Erased again: "
        f"{restored.keys_destroyed} vault keys, {restored.events_removed} events, "
        f"{restored.queue_removed} queue entries, {restored.domains_removed} domains.")


def _print_rows(title: str, rows: dict[str, int]) -> None:
    console.print(title)
    table = Table("table", "rows")
    for name, count in rows.items():
        table.add_row(name, str(count))
    console.print(table)
