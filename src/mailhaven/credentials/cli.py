"""`mailhaven credentials add|list|delete`: a domain's SMTP logins."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mailhaven.cli import common

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mailhaven.domains.models import Domain
    from mailhaven.services import Services

app = typer.Typer(help="SMTP credentials: the logins SMTP submission takes.",
                  no_args_is_help=True)

AccountOpt = Annotated[str | None, typer.Option(
    "--account", help="Account id: needed when several accounts have added the domain.")]
ACTOR = "cli"


def _domain_name(login: str) -> str:
    local, at, name = login.strip().rpartition("@")
    if not (at and local and name):
        common.fail(f"'{login}' is not a full login: give user@domain")
    return name


@app.command("add")
def add(
    login: Annotated[str, typer.Argument(help="The full login, e.g. alice@mg.example.com.")],
    account: AccountOpt = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password (5 to 32 characters) from stdin; "
                                 "without it a strong one is generated.")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Create an SMTP login; a generated password is printed this once only."""
    from mailhaven.credentials import service

    chosen = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    password = service.generate_password() if chosen is None else chosen
    services = _services(_domain_name(login), account)
    try:
        with common.refusals():
            hashed = service.hash_password(password)
            with services.db.transaction() as session:
                domain = _owned(session, _domain_name(login), account)
                made = service.create(session, services.vault, domain, login, hashed,
                                      services.clock, actor=ACTOR)
    finally:
        services.close()
    shown = {"password": password} if chosen is None else {}
    if as_json:
        common.print_json({**service.credential_json(made), **shown})
        return
    common.console.print(f"SMTP login [bold]{made.login}[/bold] created.", highlight=False)
    if shown:
        common.console.print(f"Password (shown this once): {password}", markup=False,
                             highlight=False)


@app.command("list")
def list_(
    domain: Annotated[str, typer.Argument(help="The domain's name, e.g. mg.example.com.")],
    account: AccountOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """The domain's SMTP logins, oldest first."""
    from mailhaven.credentials import service

    services = _services(domain, account)
    try:
        with common.refusals(), services.db.sessions() as session:
            total, items = service.list_page(session, services.vault,
                                             _owned(session, domain, account), limit=2**31 - 1)
    finally:
        services.close()
    if as_json:
        common.print_json({"items": [service.credential_json(c) for c in items],
                           "total_count": total})
        return
    rows = common.table("login", "created")
    for item in map(service.credential_json, items):
        rows.add_row(str(item["login"]), str(item["created_at"]))
    common.console.print(rows)


@app.command("delete")
def delete(
    login: Annotated[str, typer.Argument(help="The full login, e.g. alice@mg.example.com.")],
    account: AccountOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Delete an SMTP login: SMTP AUTH refuses it from now on."""
    from mailhaven.credentials import service

    services = _services(_domain_name(login), account)
    try:
        with common.refusals(), services.db.transaction() as session:
            spec = service.delete(session, services.vault,
                                  _owned(session, _domain_name(login), account), login,
                                  services.clock, actor=ACTOR)
    finally:
        services.close()
    if as_json:
        common.print_json({"message": "Credentials have been deleted", "spec": spec})
        return
    common.console.print(f"SMTP login [bold]{spec}[/bold] deleted.", highlight=False)


def _services(name: str, account: str | None) -> Services:
    """The region of the account, or of the domain's name."""
    return (common.services_for_account(account) if account
            else common.services_for_domain(name))


def _owned(session: Session, name: str, account: str | None) -> Domain:
    """The domain by name, in `account` or in the only account that has added it."""
    from mailhaven.domains.service import owned_domain, sole_holder
    from mailhaven.errors import NotFound

    holder = account or sole_holder(session, name)
    if holder is None:
        raise NotFound("Domain not found")
    return owned_domain(session, holder, name)
