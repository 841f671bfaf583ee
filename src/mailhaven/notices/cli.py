"""`mailhaven notice publish|list` and `mailhaven subprocessors list|add|replace|remove`:
the privacy notice's versions and the register of sub-processors, for the operator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mailhaven.cli import common

notice_app = typer.Typer(help="The privacy notice's versions (publish, list).",
                         no_args_is_help=True)
subprocessors_app = typer.Typer(help="The register of sub-processors the notice lists.",
                                no_args_is_help=True)

NameOpt = Annotated[str, typer.Option("--name", help="The company's name.")]
PurposeOpt = Annotated[str, typer.Option("--purpose", help="What it does with the data.")]
CategoryOpt = Annotated[list[str], typer.Option(
    "--category", help="A category of personal data it receives (repeatable).")]
LocationOpt = Annotated[str, typer.Option("--location", help='Where: "Frankfurt, Germany".')]
RegionOpt = Annotated[str | None, typer.Option(
    "--region", help="The one region whose data it receives (default: all).")]
MechanismOpt = Annotated[str, typer.Option(
    "--transfer-mechanism", help="adequacy, SCCs, BCRs, none (EEA), …")]
ContractOpt = Annotated[str, typer.Option("--contract-date", help="YYYY-MM-DD")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint", help="Where it is told of corrections and erasures (https URL).")]


def _date(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        common.fail(f"--effective: a date, YYYY-MM-DD (not {value!r})")


@notice_app.command("publish")
def publish(file: Annotated[Path, typer.Argument(help="The notice as plain text (# headings).")],
            version: Annotated[str, typer.Option("--version", help="Its version, e.g. 2.")],
            effective: Annotated[str, typer.Option(
                "--effective", help="When it takes effect, YYYY-MM-DD (UTC).")],
            significant: Annotated[bool, typer.Option(
                "--significant", help="A significant amendment: 30 days' notice, holders "
                                      "mailed, objections possible.")] = False,
            summary: Annotated[str, typer.Option(
                "--summary", help="What changes, in a sentence or two.")] = "",
            as_json: common.JsonOpt = False) -> None:
    """Publish a version of the privacy notice (a published version is never changed)."""
    from mailhaven.notices import service

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        common.fail(f"cannot read {file}: {exc}")
    effective_at = _date(effective)
    services = common.services()
    try:
        with common.refusals():
            notice = service.publish(services, version=version, text=text,
                                     effective_at=effective_at, significant=significant,
                                     summary=summary, actor="cli")
        now = services.clock.now()
    finally:
        services.close()
    if as_json:
        common.print_json({**notice.as_json(now), "mailed": notice.mailed})
        return
    common.console.print(f"Published version {notice.version}, in force from "
                         f"{service.day(notice.effective_at)}"
                         + (f"; {notice.mailed} holder address(es) mailed." if notice.mailed
                            else "."), markup=False, highlight=False)


@notice_app.command("list")
def list_notices(as_json: common.JsonOpt = False) -> None:
    """Every stored version, oldest first."""
    from mailhaven.notices import service

    services = common.services()
    try:
        now = services.clock.now()
        with services.main_db.sessions() as session:
            found = service.notice_versions(session)
    finally:
        services.close()
    if as_json:
        common.print_json({"items": [n.as_json(now) for n in found]})
        return
    if not found:
        common.console.print(f"No stored version: the built-in notice (version "
                             f"{service.BUILTIN}) is in force.")
        return
    shown = common.table("version", "published", "effective", "significant", "in force",
                         "summary")
    for n in found:
        shown.add_row(n.version, service.day(n.published_at), service.day(n.effective_at),
                      "yes" if n.significant else "no", "yes" if n.effective_at <= now
                      else "upcoming", n.summary)
    common.console.print(shown, markup=False, highlight=False)


@subprocessors_app.command("list")
def list_subprocessors(as_json: common.JsonOpt = False) -> None:
    """Those receiving personal data, and those announced (from their date)."""
    from mailhaven.notices import subprocessors

    services = common.services()
    try:
        now = services.clock.now()
        with services.main_db.sessions() as session:
            items = [subprocessors.as_json(s, now, operator=True)
                     for s in subprocessors.listed(session, now)]
    finally:
        services.close()
    if as_json:
        common.print_json({"items": items})
        return
    shown = common.table("id", "name", "purpose", "data", "location", "region", "transfer",
                         "from", "notified at")
    for s in items:
        shown.add_row(s["id"], s["name"], s["purpose"], ", ".join(s["data_categories"]),
                      s["location"], s["region"] or "all", s["transfer_mechanism"],
                      s["from"] + (" (upcoming)" if s["upcoming"] else ""),
                      s["notification_endpoint"] or "")
    common.console.print(shown, markup=False, highlight=False)


def _show_added(added: object, as_json: bool) -> None:
    from mailhaven.notices.subprocessors import Added

    assert isinstance(added, Added)
    if as_json:
        common.print_json({"subprocessor": added.subprocessor, "signing_key": added.signing_key,
                           "notice": {**added.notice.as_json(added.notice.published_at),
                                      "mailed": added.notice.mailed}})
        return
    s = added.subprocessor
    common.console.print(f"{s['name']} ({s['id']}) receives data from {s['from']}: announced "
                         f"by notice version {added.notice.version}, "
                         f"{added.notice.mailed} holder address(es) mailed.",
                         markup=False, highlight=False)
    if added.signing_key:
        common.console.print(f"Signing key (shown once, keep it with them): "
                             f"{added.signing_key}", markup=False, highlight=False)


@subprocessors_app.command("add")
def add(name: NameOpt, purpose: PurposeOpt, category: CategoryOpt, location: LocationOpt,
        transfer_mechanism: MechanismOpt, contract_date: ContractOpt, region: RegionOpt = None,
        endpoint: EndpointOpt = None, as_json: common.JsonOpt = False) -> None:
    """Add one: a significant amendment of the notice, effective in 30 days."""
    from mailhaven.notices import subprocessors

    services = common.services()
    try:
        with common.refusals():
            added = subprocessors.add(services, name=name, purpose=purpose,
                                      categories=category, location=location, region=region,
                                      transfer_mechanism=transfer_mechanism,
                                      contract_date=contract_date, endpoint=endpoint)
    finally:
        services.close()
    _show_added(added, as_json)


@subprocessors_app.command("replace")
def replace(old_id: Annotated[str, typer.Argument(help="The one being replaced.")],
            name: NameOpt, purpose: PurposeOpt, category: CategoryOpt, location: LocationOpt,
            transfer_mechanism: MechanismOpt, contract_date: ContractOpt,
            region: RegionOpt = None, endpoint: EndpointOpt = None,
            as_json: common.JsonOpt = False) -> None:
    """Replace one: the new one takes over in 30 days (a significant amendment)."""
    from mailhaven.notices import subprocessors

    services = common.services()
    try:
        with common.refusals():
            added = subprocessors.replace(services, old_id, name=name, purpose=purpose,
                                          categories=category, location=location,
                                          region=region, transfer_mechanism=transfer_mechanism,
                                          contract_date=contract_date, endpoint=endpoint)
    finally:
        services.close()
    _show_added(added, as_json)


@subprocessors_app.command("remove")
def remove(subprocessor_id: Annotated[str, typer.Argument(help="Its id.")],
           as_json: common.JsonOpt = False) -> None:
    """It receives no more data from now on; the notice's list follows."""
    from mailhaven.notices import subprocessors

    services = common.services()
    try:
        with common.refusals():
            notice = subprocessors.remove(services, subprocessor_id)
        now = services.clock.now()
    finally:
        services.close()
    if as_json:
        common.print_json({"removed": subprocessor_id, "notice": notice.as_json(now)})
        return
    common.console.print(f"{notice.summary} The notice's list is version {notice.version}.",
                         markup=False, highlight=False)
