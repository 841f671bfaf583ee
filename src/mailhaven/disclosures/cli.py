"""`mailhaven disclosures record|list`: the disclosure log for operators (an authority's
request is recorded here, with who decided and its case number)."""

from __future__ import annotations

from typing import Annotated

import typer

from mailhaven.accounts.models import Account
from mailhaven.cli import common
from mailhaven.disclosures import service
from mailhaven.disclosures.models import KINDS
from mailhaven.regions.service import for_account
from mailhaven.services import Services

app = typer.Typer(help="The disclosure log: who received personal data, and why (SPEC N10).",
                  no_args_is_help=True)


def _account_services(account_id: str) -> Services:
    """The region that holds the account (its log is there, beside its rows); an unknown
    account is one red line, not a foreign-key traceback from the home region."""
    opened = common.platform()
    found = for_account(opened, account_id)
    if found is not None:
        with found.db.sessions() as session:
            if session.get(Account, account_id) is not None:
                return found
    opened.close()
    common.fail("No such account")


@app.command("record")
def record(account: common.AccountOpt,
           recipient: Annotated[str, typer.Option(help="The receiving party's name.")],
           kind: Annotated[str, typer.Option(help=", ".join(KINDS))],
           basis: Annotated[str, typer.Option(help="The legal basis, e.g. \"legal obligation\".")],
           purpose: Annotated[str, typer.Option(help="Why the data was handed over.")],
           category: Annotated[list[str], typer.Option(
               help="A data category handed over (repeatable).")],
           subject: Annotated[list[str] | None, typer.Option(
               help="An address whose data was handed over (repeatable); kept as a blind "
                    "index only.")] = None,
           endpoint: Annotated[str | None, typer.Option(
               help="Where to tell the party of corrections and erasures.")] = None,
           reference: Annotated[str | None, typer.Option(
               help="The party's case number (no names or addresses).")] = None,
           decided_by: Annotated[str, typer.Option(
               help="Who decided (a role or user label, not an address).")] = "operator (CLI)",
           as_json: common.JsonOpt = False) -> None:
    """Record a disclosure; with --endpoint, the key that signs its notifications is shown
    once."""
    services = _account_services(account)
    try:
        with common.refusals(), services.db.transaction() as session:
            done = service.record(
                session, services.vault, account_id=account, recipient=recipient, kind=kind,
                legal_basis=basis, purpose=purpose, categories=category,
                subjects=subject or [], decided_by=decided_by, now=services.clock.now(),
                endpoint=endpoint, reference=reference, main_db=services.main_db,
                allow_http=services.settings.webhook_allow_private)
            disclosure = service.as_json(done.disclosure, done.subjects)
            shown = {"disclosure": disclosure, "signing_key": done.signing_key}
    finally:
        services.close()
    if as_json:
        common.print_json(shown)
        return
    common.console.print(f"disclosure {disclosure['id']} recorded: "
                         f"{recipient} ({kind}), {done.subjects} subject(s)", markup=False)
    if done.signing_key:
        common.console.print(f"signing key (shown once, give it to {recipient}): "
                             f"{done.signing_key}", markup=False)


@app.command("list")
def list_(account: common.AccountOpt, as_json: common.JsonOpt = False) -> None:
    """The account's disclosures, newest first."""
    services = _account_services(account)
    try:
        with common.refusals(), services.db.sessions() as session:
            items = service.listed(session, account, limit=service.MAX_LIMIT)
    finally:
        services.close()
    if as_json:
        common.print_json({"items": items})
        return
    table = common.table("id", "at", "recipient", "kind", "basis", "categories", "subjects")
    for d in items:
        table.add_row(d["id"], d["at"], d["recipient"], d["kind"], d["legal_basis"],
                      ", ".join(d["data_categories"]), str(d["subjects"]))
    common.console.print(table)
