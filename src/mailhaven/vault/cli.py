"""`mailhaven vault rotate-master-key`."""

from __future__ import annotations

from typing import Annotated

import typer

from mailhaven.cli import common
from mailhaven.config import Settings

app = typer.Typer(help="The vault's master key.", no_args_is_help=True)


@app.command("rotate-master-key")
def rotate_master_key(
    add_key_only: Annotated[bool, typer.Option(
        "--add-key-only", help="Only add the new key to the key file (to copy it to every "
        "machine first); run again without this flag to finish.")] = False,
    region: common.DatabaseOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Re-wrap every data key and sealed secret under a new master key (KEK). Safe to
    interrupt: the key file keeps the old KEK until the end, and a rerun finishes. Each
    region has its own key file (`--region`); `--region main` rotates the main database's
    (it seals the sub-processors' signing keys and keys the directory's index)."""
    from rich.progress import TaskID

    from mailhaven.models import metadata
    from mailhaven.services import Platform
    from mailhaven.vault import rotation

    everything = common.opened(common.settings())
    chosen = common.database_settings(everything, region)
    key_file = chosen.resolved_master_key_file
    if not key_file.exists():
        common.fail(f"No master key file at {key_file}")
    platform = Platform.start(everything, only=[chosen.region] if chosen.region else [])
    opened = platform.region(chosen.region) if chosen.region else None
    db, vault = ((opened.db, opened.vault) if opened
                 else (platform.directory, platform.directory_vault))
    columns = rotation.wrapped_columns(metadata)
    try:
        keyring = rotation.begin(key_file)
        result: dict[str, object]
        if add_key_only:
            result = {"state": "key added", "kek_versions": sorted(keyring.keks),
                      **common.region_field(chosen)}
        else:
            totals = rotation.count(db, columns)
            with common.progress(disable=as_json) as bar:
                tasks: dict[tuple[int, str], TaskID] = {}

                def advance(number: int, wrapped: rotation.WrappedColumn, rows: int) -> None:
                    if (number, wrapped.name) not in tasks:
                        step = "re-wrap" if number == 1 else f"check (pass {number})"
                        tasks[number, wrapped.name] = bar.add_task(
                            f"{step} {wrapped.name}", total=totals[wrapped.name])
                    bar.advance(tasks[number, wrapped.name], rows)

                done = rotation.rotate(db, vault, key_file, columns,
                                       progress=advance)
            result = {"state": "rotated", "kek_versions": [keyring.current],
                      "rows_rewrapped": done.rewrapped,
                      **common.region_field(chosen)}
    except rotation.RotationError as exc:
        common.fail(str(exc), status=1)
    finally:
        platform.close()
    if as_json:
        common.print_json(result)
    elif add_key_only:
        common.console.print(f"New master key added to {key_file}. Copy the file to every "
                             "machine, then run this command again without --add-key-only.")
    else:
        common.console.print(
            f"Master key{_of(chosen)} rotated: {result['rows_rewrapped']} wrapped keys and "
            f"secrets moved to key version {keyring.current}; the old key is gone from "
            f"{key_file}. The blind-index key is unchanged.")


def _of(chosen: Settings) -> str:
    """" of region eu" / " of the main database" on a split installation."""
    if not chosen.split:
        return ""
    return f" of region {chosen.region}" if chosen.region else " of the main database"
