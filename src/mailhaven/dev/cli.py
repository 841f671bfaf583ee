"""`mailhaven mailbox list|show`: the development mailbox (`serve --dev`) from a terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mailhaven.cli import common

app = typer.Typer(help="The development mailbox (serve --dev).", no_args_is_help=True)


def _folder() -> Path:
    return common.opened(common.settings()).data_dir / "dev-mailbox"


@app.command("list")
def list_(as_json: common.JsonOpt = False) -> None:
    """List the messages the development mailbox captured, newest first."""
    from mailhaven.dev.mailbox import list_captured

    folder = _folder()
    messages = list_captured(folder)
    if as_json:
        common.print_json([{"id": m.id, "to": m.rcpt_tos, "subject": m.subject,
                            "received_at": m.received_at} for m in messages])
        return
    if not messages:
        common.err.print(f"No captured mail in {folder.resolve()}: `serve --dev` captures "
                         "into the data directory of the folder it was started from "
                         "(MAILHAVEN_DATA_DIR).", markup=False, highlight=False)
    shown = common.table("id", "to", "subject")
    for m in messages:
        shown.add_row(m.id, ", ".join(m.rcpt_tos), m.subject)
    common.console.print(shown)


@app.command("show")
def show(mailbox_id: Annotated[str, typer.Argument(
        help="The captured message's id, as `mailbox list` shows it.")]) -> None:
    """Print one captured message as received."""
    from mailhaven.dev.mailbox import read_captured

    captured = read_captured(_folder(), mailbox_id)
    if captured is None:
        common.fail(f"No captured message {mailbox_id} (ids are in `mailhaven mailbox list`)",
                    status=1)
    sys.stdout.write(captured.data.decode("utf-8", "replace"))
