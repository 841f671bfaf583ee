"""`mailhaven domains add|rotate-dkim`."""

from __future__ import annotations

from typing import Annotated

import typer

from mailhaven.cli import common

app = typer.Typer(help="Sending domains.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Domain name, e.g. mg.example.com.")],
    account: common.AccountOpt,
    dkim_algorithm: Annotated[str, typer.Option(
        help="rsa, or ed25519 to sign with an Ed25519 key beside the RSA one.")] = "rsa",
    dkim_key_size: Annotated[int, typer.Option(help="RSA key size: 1024 or 2048.")] = 2048,
    dkim_selector: Annotated[str | None, typer.Option(help="Default: mhYYYYMM.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Add a sending domain with fresh DKIM keys; print the DNS records to publish."""
    from mailhaven.accounts.service import require_account
    from mailhaven.domains.reserved import operator_names
    from mailhaven.domains.service import add_domain, domain_response, new_domain
    from mailhaven.retention.service import bodies_kept_for

    fields = {"name": name, "dkim_algorithm": dkim_algorithm,
              "dkim_key_size": str(dkim_key_size), "dkim_selector": dkim_selector or ""}
    services = common.services_for_account(account)
    try:
        with common.refusals():
            domain = new_domain(services.vault, account, fields, services.clock,
                                reserved=operator_names(services.settings))
            with services.db.transaction() as session:
                require_account(session, account)
                body = domain_response(add_domain(session, domain, services),
                                       services.settings.hostname,
                                       kept_for=bodies_kept_for(session, account))
    finally:
        services.close()
    _print_records(f"Domain [bold]{name}[/bold] added. Publish these records:", body, as_json)


@app.command("rotate-dkim")
def rotate_dkim(
    name: Annotated[str, typer.Argument(help="The domain's name, e.g. mg.example.com.")],
    algorithm: Annotated[str, typer.Option(help="Key to rotate: rsa or ed25519.")] = "rsa",
    key_size: Annotated[int, typer.Option(help="RSA key size: 1024 or 2048.")] = 2048,
    selector: Annotated[str | None, typer.Option(help="Default: mhYYYYMM.")] = None,
    account: Annotated[str | None, typer.Option(
        help="Account id: needed when several accounts have added the name.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Start a DKIM key rotation: a new key, published beside the current one, signs once
    DNS shows its record (the next verify); the old key stays published for a week."""
    from mailhaven.domains import service
    from mailhaven.errors import NotFound
    from mailhaven.retention.service import bodies_kept_for

    services = (common.services_for_account(account) if account
                else common.services_for_domain(name))
    try:
        with common.refusals():
            pair, chosen = service.rotation_key({"dkim_algorithm": algorithm,
                                                 "dkim_key_size": str(key_size),
                                                 "dkim_selector": selector or ""})
            with services.db.transaction() as session:
                holder = account or service.sole_holder(session, name)
                if holder is None:
                    raise NotFound("Domain not found")
                domain = service.rotate_dkim(session, services.vault, holder, name, pair,
                                             chosen, services.clock)
                body = {"dkim_keys": service.dkim_keys_json(domain),
                        **service.domain_response(
                            domain, services.settings.hostname,
                            kept_for=bodies_kept_for(session, holder))}
    finally:
        services.close()
    _print_records(f"New DKIM key for [bold]{name}[/bold]. Publish these records; the new key "
                   "signs once verification sees it:", body, as_json)


def _print_records(title: str, body: dict, as_json: bool) -> None:
    if as_json:
        common.print_json(body)
        return
    common.console.print(title)
    records = common.table("type", "name", "value")
    for record in body["sending_dns_records"] + body["receiving_dns_records"]:
        records.add_row(record["record_type"], record["name"], record["value"])
    common.console.print(records)
    common.console.print("Long values wrap; `--json` prints each on one line.", style="dim")
