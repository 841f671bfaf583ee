"""`mailhaven privacy export`: an account holder's or a recipient's export, with progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailhaven.cli import common


def export(
    account: common.AccountOpt,
    out: Annotated[Path, typer.Option(help="The zip to write (replaced when complete).")],
    recipient: Annotated[str | None, typer.Option(
        help="Export what the account holds about this address, not the account.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Write an access and portability export: export.json and a CSV per category."""
    from mailhaven.exports.registry import ACCOUNT_HOLDER, RECIPIENT, categories_for
    from mailhaven.exports.service import export_account, export_recipient
    from mailhaven.regions.transfers import record_transfer

    if not out.parent.is_dir():
        common.fail(f"No such directory: {out.parent}")
    services = common.services_for_account(account)
    # Only on a terminal: a script reads stdout and gets nothing but the result.
    with common.progress(transient=True, disable=not common.err.is_terminal) as bar:
        task = bar.add_task("Exporting", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            with common.refusals():
                # Read here, outside the account's region (MAILHAVEN_SITE_REGION): logged first
                subject = ACCOUNT_HOLDER if recipient is None else RECIPIENT
                record_transfer(services, account, [c.name for c in categories_for(subject)],
                                f"access export ({subject}) by the operator")
                if recipient is None:
                    done = export_account(services.db, services.vault, account, out, progress,
                                          hostname=services.settings.hostname,
                                          clock=services.clock,
                                          directory=services.main_db)
                else:
                    done = export_recipient(services.db, services.vault, account, recipient,
                                            out, progress, clock=services.clock,
                                            directory=services.main_db)
        finally:
            services.close()
    if as_json:
        common.print_json({"path": str(done.path), "rows": done.rows})
    else:
        rows = ", ".join(f"{n} {name}" for name, n in done.rows.items() if n)
        common.console.print(f"Wrote [bold]{done.path}[/bold]: {rows or 'no rows'}.")
