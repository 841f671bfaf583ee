"""`mailhaven privacy …`: the record of processing (N1) and the retention job (N7)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

privacy_app = typer.Typer(help="The privacy engine: inventory and retention.",
                          no_args_is_help=True)


class Format(StrEnum):
    md = "md"
    json = "json"


@privacy_app.command("inventory")
def privacy_inventory(
    fmt: Annotated[Format, typer.Option("--format", help="md (Markdown) or json.")] = Format.md,
) -> None:
    """Print the Article 30 record of processing: every table and column, classified."""
    from mailhaven.models import metadata
    from mailhaven.storage import processing_record

    record = processing_record.build(metadata)
    if fmt is Format.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(processing_record.markdown(record))
