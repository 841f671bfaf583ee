"""`mailhaven site contacts|records`: the platform's own website, for its operator."""

from __future__ import annotations

import dataclasses

import typer

from mailhaven.cli import common

app = typer.Typer(help="The platform's own website: contact messages, system mail.",
                  no_args_is_help=True)


@app.command("contacts")
def contacts(as_json: common.JsonOpt = False) -> None:
    """The contact form's messages, newest first (kept for MAILHAVEN_CONTACT_RETENTION_DAYS)."""
    from mailhaven.clock import iso8601
    from mailhaven.site.contact import list_contact_messages

    services = common.services()
    try:
        with services.db.sessions() as session:
            entries = list_contact_messages(session, services)
    finally:
        services.close()
    if as_json:
        common.print_json([{**dataclasses.asdict(e), "received_at": iso8601(e.received_at)}
                           for e in entries])
        return
    shown = common.table("received", "topic", "from", "company", "message")
    for e in entries:
        shown.add_row(iso8601(e.received_at, timespec="minutes"), e.topic,
                      f"{e.name} <{e.email}>", e.company, e.message)
    common.console.print(shown, markup=False, highlight=False)


@app.command("records")
def records(as_json: common.JsonOpt = False) -> None:
    """The DNS records of the platform's sending domain (MAILHAVEN_SYSTEM_FROM's), made now
    if it does not exist yet: publish them so receivers accept its DKIM signature."""
    from mailhaven.domains.service import domain_response
    from mailhaven.site.mail import platform_domain

    services = common.services()
    try:
        with common.refusals(), services.db.transaction() as session:
            try:
                domain = platform_domain(session, services)
            except ValueError as exc:
                common.fail(str(exc))
            body = domain_response(domain, services.settings.hostname, kept_for=0)
    finally:
        services.close()
    if as_json:
        common.print_json(body)
        return
    common.console.print(f"The platform sends from [bold]{body['domain']['name']}[/bold]. "
                         "Publish these records:")
    shown = common.table("type", "name", "value")
    for record in body["sending_dns_records"]:
        shown.add_row(record["record_type"], record["name"], record["value"])
    common.console.print(shown)
