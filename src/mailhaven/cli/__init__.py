"""The `mailhaven` command. `app` is the root typer app (the console script's entry point).

`app` is imported on first use, not here: each capability's `cli.py` imports
`mailhaven.cli.common`, which loads this package first, and the root app imports those
capability modules — importing it here would close that circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer import Typer

    app: Typer


def __getattr__(name: str) -> Any:
    if name == "app":
        from mailhaven.cli.main import app

        return app
    raise AttributeError(f"module 'mailhaven.cli' has no attribute {name!r}")
