"""`mailhaven privacy request|requests|erase|delete-account`: the privacy engine for
operators and scripts, the same service functions the HTTP API calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from mailhaven.privacy import requests as reqs
from mailhaven.privacy import service
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.services import Services

AccountOpt = Annotated[str, typer.Option("--account", help="The account id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def register(privacy_app: typer.Typer, services: Callable[[], Services]) -> None:
    """Add the commands to the `privacy` group; `services()` opens the platform."""

    @privacy_app.command("request")
    def request(account: AccountOpt,
                right: Annotated[str, typer.Option("--type", help=", ".join(reqs.RIGHTS))],
                email: Annotated[str | None, typer.Option(
                    help="The recipient's address; without it, the account holder.")] = None,
                new_email: Annotated[str | None, typer.Option(help="Rectification.")] = None,
                name: Annotated[str | None, typer.Option(help="Rectification.")] = None,
                purpose: Annotated[str | None, typer.Option(help="withdraw-consent")] = None,
                yes: Annotated[bool, typer.Option(
                    "--yes", help="Confirm an erasure without --email: it deletes the "
                                  "account, as delete-account does.")] = False,
                as_json: JsonOpt = False) -> None:
        """File and carry out a verified request (identity checked by the operator)."""
        given = {k: v for k, v in {"email": email, "new_email": new_email, "name": name,
                                   "purpose": purpose}.items() if v}
        if right == "erasure" and not email and not yes:
            raise typer.BadParameter("an erasure without --email deletes the account: add "
                                     "--yes to confirm", param_hint="--yes")
        platform = services()
        try:
            ctx = service.Context.of(platform, "cli")
            with platform.db.transaction() as session:
                done = service.file_verified(session, ctx, account, right, given,
                                             confirm=account if yes else None)
                shown = reqs.as_json(ctx.vault, session, done, ctx.now)
        finally:
            platform.close()
        _print(shown if as_json else None, f"request {shown['id']}: {shown['state']}")

    @privacy_app.command("requests")
    def list_requests(account: Annotated[str | None, typer.Option(
                          "--account", help="One account (default: all).")] = None,
                      overdue: Annotated[bool, typer.Option(
                          "--overdue", help="Only requests past their due date.")] = False,
                      as_json: JsonOpt = False) -> None:
        """Requests and their deadlines; `--overdue` is the overdue report."""
        platform = services()
        now = platform.clock.now()
        try:
            with platform.db.sessions() as session:
                query = select(PrivacyRequest).order_by(PrivacyRequest.due_at)
                if account:
                    query = query.where(PrivacyRequest.account_id == account)
                rows = (reqs.overdue(session, account, now) if overdue
                        else session.scalars(query).all())
                shown = [{**reqs.as_json(platform.vault, session, r, now),
                          "account": r.account_id} for r in rows]
        finally:
            platform.close()
        if as_json:
            typer.echo(json.dumps(shown, indent=2))
            return
        table = Table("id", "account", "type", "subject", "state", "due", "overdue")
        for r in shown:
            table.add_row(r["id"], r["account"], r["type"], r["subject_type"], r["state"],
                          r["due_at"][:10], "yes" if r["overdue"] else "")
        Console().print(table)

    @privacy_app.command("erase")
    def erase(account: AccountOpt, address: str, as_json: JsonOpt = False) -> None:
        """Erase everything the account holds about one recipient (processor API)."""
        platform = services()
        try:
            with platform.db.transaction() as session:
                record = service.erase(session, service.Context.of(platform, "cli"), account,
                                       address)
        finally:
            platform.close()
        counts = record["record"]["counts"]
        _print(counts if as_json else None,
               "erased: " + ", ".join(f"{v} {k}" for k, v in counts.items()))

    @privacy_app.command("delete-account")
    def delete_account(account: str, yes: Annotated[bool, typer.Option(
            "--yes", help="Confirm: this cannot be undone.")] = False,
            as_json: JsonOpt = False) -> None:
        """Delete an account: personal data erased, keys revoked, queue cancelled."""
        if not yes:
            raise typer.BadParameter("add --yes to confirm", param_hint="--yes")
        platform = services()
        try:
            with platform.db.transaction() as session:
                record = service.delete_account(session, service.Context.of(platform, "cli"),
                                                account)
        finally:
            platform.close()
        _print(record if as_json else None, f"account {account} deleted; legal hold "
               f"{record['record']['legal_hold']['name']} until "
               f"{record['record']['legal_hold']['until'][:10]}")


def _print(data: object, line: str) -> None:
    typer.echo(json.dumps(data, indent=2) if data is not None else line)
