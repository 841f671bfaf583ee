"""`mailhaven privacy request|requests|erase|delete-account|inventory`: the privacy engine
for operators and scripts, the same service functions the HTTP API calls."""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mailhaven.cli import common
from mailhaven.privacy import requests as reqs
from mailhaven.privacy import service

app = typer.Typer(help="The privacy engine: requests, erasure, exports, inventory, retention.",
                  no_args_is_help=True)


@app.command("request")
def request(account: common.AccountOpt,
            right: Annotated[str, typer.Option("--type", help=", ".join(reqs.RIGHTS))],
            email: Annotated[str | None, typer.Option(
                help="The recipient's address; without it, the account holder.")] = None,
            new_email: Annotated[str | None, typer.Option(help="Rectification.")] = None,
            name: Annotated[str | None, typer.Option(help="Rectification.")] = None,
            purpose: Annotated[str | None, typer.Option(help="withdraw-consent")] = None,
            yes: Annotated[bool, typer.Option(
                "--yes", help="Confirm an erasure without --email: it deletes the "
                              "account, as delete-account does.")] = False,
            as_json: common.JsonOpt = False) -> None:
    """File and carry out a verified request (identity checked by the operator)."""
    given = {k: v for k, v in {"email": email, "new_email": new_email, "name": name,
                               "purpose": purpose}.items() if v}
    if right == "erasure" and not email and not yes:
        raise typer.BadParameter("an erasure without --email deletes the account: add "
                                 "--yes to confirm", param_hint="--yes")
    platform = common.services_for_account(account)
    try:
        ctx = service.Context.of(platform, "cli")
        with platform.db.transaction() as session:
            done = service.file_verified(session, ctx, account, right, given,
                                         confirm=account if yes else None)
            shown = reqs.as_json(ctx.vault, session, done, ctx.now)
    finally:
        platform.close()
    _print(shown if as_json else None, f"request {shown['id']}: {shown['state']}")


@app.command("requests")
def list_requests(account: Annotated[str | None, typer.Option(
                      "--account", help="One account (default: all).")] = None,
                  overdue: Annotated[bool, typer.Option(
                      "--overdue", help="Only requests past their due date.")] = False,
                  region: Annotated[str | None, typer.Option(
                      "--region", help="One region (default: every region).")] = None,
                  as_json: common.JsonOpt = False) -> None:
    """Requests and their deadlines, in every region; `--overdue` is the overdue report."""
    if account:
        regions = [common.services_for_account(account)]
    elif region:
        regions = [common.in_region(region)]
    else:
        regions = list(common.platform().regions.values())
    shown: list[dict] = []
    try:
        for services in regions:
            now = services.clock.now()
            with services.db.sessions() as session:
                rows = (reqs.overdue(session, account, now) if overdue
                        else reqs.listed(session, account))
                shown += [{**reqs.as_json(services.vault, session, r, now),
                           "account": r.account_id, "region": services.region} for r in rows]
    finally:
        regions[0].close()
    if as_json:
        common.print_json(shown, indent=2)
        return
    listing = common.table("id", "account", "region", "type", "subject", "state", "due",
                           "overdue")
    for r in shown:
        listing.add_row(r["id"], r["account"], r["region"], r["type"], r["subject_type"],
                        r["state"], r["due_at"][:10], "yes" if r["overdue"] else "")
    common.console.print(listing)


@app.command("erase")
def erase(account: common.AccountOpt,
          address: Annotated[str, typer.Argument(help="The recipient's email address.")],
          as_json: common.JsonOpt = False) -> None:
    """Erase everything the account holds about one recipient (processor API), in the
    account's region."""
    from sqlalchemy import func, select

    from mailhaven.disclosures.models import Notification

    platform = common.services_for_account(account)
    try:
        with platform.db.transaction() as session:
            last = session.scalar(select(func.max(Notification.id))) or 0
            record = service.erase(session, service.Context.of(platform, "cli"), account,
                                   address)
            # the parties by kind and id too: two of the same name are told apart
            notified = [{"party": n.party, "kind": n.party_kind, "id": n.party_id,
                         "state": n.status} for n in session.scalars(
                select(Notification).where(
                    Notification.id > last, Notification.account_id == account,
                    Notification.request_id.is_(None), Notification.event == "erasure")
                .order_by(Notification.id))]
    finally:
        platform.close()
    counts = asdict(record.record.counts)
    told = ", ".join(f"{n['party']} ({n['kind']} {n['id']}, {n['state']})"
                     for n in notified) or "nobody"
    deletion = counts.pop("deletion")
    _print({**counts, "deletion": deletion, "notified": notified} if as_json else None,
           "erased: " + ", ".join(f"{v} {k}" for k, v in counts.items())
           + (" (unreadable now; their rows are deleted by the background job)"
              if deletion == "scheduled" else "")
           + f"; parties told (Article 19): {told}")


@app.command("delete-account")
def delete_account(account: Annotated[str, typer.Argument(
                       help="The account id (see `mailhaven accounts list`).")],
                   yes: Annotated[bool, typer.Option(
                       "--yes", help="Confirm: this cannot be undone.")] = False,
                   as_json: common.JsonOpt = False) -> None:
    """Delete an account: personal data erased, keys revoked, queue cancelled."""
    if not yes:
        raise typer.BadParameter("add --yes to confirm", param_hint="--yes")
    platform = common.services_for_account(account)
    try:
        with platform.db.transaction() as session:
            ctx = service.Context.of(platform, "cli")
            record = service.delete_account(session, ctx, account)
    finally:
        platform.close()
    hold = record.record.legal_hold
    _print(record.as_json() if as_json else None,
           f"account {account} deleted; legal hold {hold.name} until {hold.until[:10]}")


class Format(StrEnum):
    md = "md"
    json = "json"


@app.command("inventory")
def inventory(
    fmt: Annotated[Format, typer.Option("--format", help="md (Markdown) or json.")] = Format.md,
) -> None:
    """Print the Article 30 record of processing: every table and column, classified, and
    which database holds each table (the main one, or each region's)."""
    from mailhaven.models import metadata
    from mailhaven.notices.subprocessors import record_sections, region_kinds
    from mailhaven.regions import database_of
    from mailhaven.retention.service import schedule
    from mailhaven.storage import processing_record

    chosen = common.settings()
    url = chosen.resolved_database_url
    sections: dict = {"regions": region_kinds(chosen)}
    if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists():
        services = common.services()  # the register is in the database: when there is one
        try:
            sections = record_sections(services)
        finally:
            services.close()
    record = processing_record.build(metadata, schedule(chosen), **sections,
                                     database_of=database_of)
    if fmt is Format.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(processing_record.markdown(record))


def _print(data: object, line: str) -> None:
    if data is None:
        print(line)
    else:
        common.print_json(data, indent=2)
