"""`mailhaven privacy …`: the privacy engine's commands, each in its capability's package."""

from __future__ import annotations

import typer

from mailhaven.exports.cli import export

privacy_app = typer.Typer(help="Privacy: data subject requests and exports.",
                          no_args_is_help=True)
privacy_app.command("export")(export)
