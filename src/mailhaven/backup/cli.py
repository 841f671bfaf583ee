"""`mailhaven backup create|restore`: the operator's side of SPEC N9."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from mailhaven.cli import common
from mailhaven.config import Settings
from mailhaven.vault import Keyring

app = typer.Typer(help="Backups that never bring back an erased subject.",
                  no_args_is_help=True)


def _keyring(settings: Settings) -> Keyring:
    """The existing key file, never a new one: data sealed under another key is lost."""
    path = settings.resolved_master_key_file
    if not path.exists():
        common.fail(f"No master key file at {path}. Backups hold ciphertext that only the "
                    "installation's key opens: put the key file there, or point "
                    "MAILHAVEN_MASTER_KEY_FILE at it.")
    return Keyring.from_json(path.read_text())


def _other_keys(chosen: Settings, region: str | None) -> tuple[str, dict[str, Keyring]]:
    """The setting of the chosen database's key file, and the keys of the installation's
    other databases (by their --region name): a backup restored into the wrong one is told
    where it belongs, not to change a key file."""
    if not chosen.split:
        return "MAILHAVEN_MASTER_KEY_FILE", {}
    name = region or chosen.home_region
    setting = ("MAILHAVEN_MASTER_KEY_FILE" if name == common.MAIN
               else f"MAILHAVEN_REGION_{name.upper()}_MASTER_KEY_FILE")
    others = {}
    for other in (*chosen.regions, common.MAIN):
        path = common.database_settings(chosen, other).resolved_master_key_file
        if other != name and path.exists():
            others[other] = Keyring.from_json(path.read_text())
    return setting, others


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """Rows per table."""
    with common.progress() as bar:
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

    with common.refusals():
        try:
            yield
        except ArchiveError as exc:
            common.fail(f"Can't restore this file: {exc}")


@app.command("create")
def create(
    path: Annotated[Path, typer.Argument(help="The archive to write, e.g. mailhaven.zip.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]
    = False,
    region: common.DatabaseOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Write a consistent snapshot of one region's database (or the main one's) to PATH.
    The region's master key is not in it: back its key file up separately, in the region."""
    from mailhaven.backup.service import create_backup
    from mailhaven.storage.db import Database

    if not path.parent.is_dir():
        common.fail(f"No folder {path.parent} to write the backup into: create it first "
                    f"(mkdir -p {path.parent})")
    settings = common.database_settings(common.opened(common.settings()), region)
    keyring = _keyring(settings)
    db = Database(settings.resolved_database_url)
    try:
        with _refusals(), _progress() as progress:
            manifest = create_backup(db, keyring, path, force=force, progress=progress)
    except OSError as exc:  # a folder we may not write to, a full disk
        common.fail(f"Can't write {path}: {exc.strerror or exc}")
    finally:
        db.dispose()
    rows = {t.name: t.rows for t in manifest.tables}
    if as_json:
        common.print_json({"path": str(path), "revision": manifest.revision, "tables": rows,
                           **common.region_field(settings)})
        return
    _print_rows(f"Backup of {_which(settings)} written to [bold]{path}[/bold] "
                f"(schema {manifest.revision}).", rows)
    common.console.print(
        "The master key file is not in the backup: keep a copy of "
        f"{settings.resolved_master_key_file} elsewhere.")


@app.command("restore")
def restore(
    path: Annotated[Path, typer.Argument(help="An archive written by `backup create`.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Wipe a database that is not empty and restore in its place.")]
    = False,
    region: common.DatabaseOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Restore PATH into one region's database (or the main one's), then erase again every
    subject in that region's erasure ledger (table and file), so nobody erased since the
    backup comes back. A backup opens only under its own region's key."""
    from mailhaven.backup.service import restore_backup
    from mailhaven.storage.db import Database
    from mailhaven.vault import Vault

    chosen = common.opened(common.settings())
    settings = common.database_settings(chosen, region)
    keyring = _keyring(settings)
    if not path.is_file():
        common.fail(f"No backup at {path}")
    key_setting, others = _other_keys(chosen, region)
    db = Database(settings.resolved_database_url)
    try:
        db.migrate(vault=Vault(keyring))
        with _refusals(), _progress() as progress:
            restored = restore_backup(db, keyring, settings.data_dir, path, replace=replace,
                                      progress=progress, key_setting=key_setting,
                                      others=others)
    finally:
        db.dispose()
    summary = {**asdict(restored), **common.region_field(settings)}
    if as_json:
        common.print_json(summary)
        return
    _print_rows(f"Restored [bold]{path}[/bold] into {_which(settings)}.", restored.tables)
    common.console.print(
        f"Erasure ledger re-applied ({restored.erasures} erasures). Erased again: "
        f"{restored.keys_destroyed} vault keys, {restored.events_removed} events, "
        f"{restored.queue_removed} queue entries, {restored.domains_removed} domains."
        + (f" The rows of {restored.deletion_pending} of them, unreadable already, are "
           "deleted by the background job (erasure-deletion) of `serve` or `worker`."
           if restored.deletion_pending else ""))


def _which(settings: Settings) -> str:
    """"the database", or on a split installation which one."""
    if not settings.split:
        return "the database"
    return f"region {settings.region}'s database" if settings.region else "the main database"


def _print_rows(title: str, rows: dict[str, int]) -> None:
    common.console.print(title)
    shown = common.table("table", "rows")
    for name, count in rows.items():
        shown.add_row(name, str(count))
    common.console.print(shown)
