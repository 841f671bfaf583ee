"""The register of sub-processors (SPEC N10): adding or replacing one is a significant
amendment of the notice, so a new sub-processor receives personal data only 30 days after
it was announced. The register is versioned by its own dates (from, until); a version of the
notice shows its text and the register as it stands on that version's effective date, so an
amendment of the register carries the text in force on its date, never a newer one."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from mailhaven.audit import service as audit
from mailhaven.config import Settings
from mailhaven.disclosures.register import SIGNING_LABEL, Subprocessor, active_subprocessors
from mailhaven.errors import BadRequest, NotFound
from mailhaven.notices.service import (
    BUILTIN,
    Notice,
    announce,
    day,
    earliest_significant,
    in_force,
    next_version,
    publish_in,
)
from mailhaven.services import Services
from mailhaven.storage.base import new_id

MECHANISMS = ("adequacy", "SCCs", "BCRs", "derogation", "none (EEA)")
_REGION = re.compile(r"[a-z]{2,8}")


@dataclass(frozen=True)
class Added:
    """What `add` or `replace` made: the entry, its signing key (shown once), the
    amendment that announces it."""

    subprocessor: dict
    signing_key: str | None
    notice: Notice


def as_json(row: Subprocessor, now: float, *, operator: bool = False) -> dict:
    """An entry as customers see it; `operator` (the CLI, the record) adds where the party is
    notified, which is none of the customers' business."""
    shown = {"id": row.id, "name": row.name, "purpose": row.purpose,
             "data_categories": row.categories, "location": row.location,
             "region": row.region, "transfer_mechanism": row.transfer_mechanism,
             "contract_date": row.contract_date, "from": day(row.effective_at),
             "until": day(row.removed_at) if row.removed_at is not None else None,
             "upcoming": row.effective_at > now, "replaces": row.replaces_id}
    return shown | ({"notification_endpoint": row.notification_endpoint} if operator else {})


def listed(session: Session, now: float) -> list[Subprocessor]:
    """Those receiving data now and those announced (from their date), by date and name;
    never one withdrawn before its date (until <= from: it never receives data)."""
    return list(session.scalars(
        select(Subprocessor)
        .where(or_(Subprocessor.removed_at.is_(None),
                   and_(Subprocessor.removed_at > now,
                        Subprocessor.removed_at > Subprocessor.effective_at)))
        .order_by(Subprocessor.effective_at, Subprocessor.name)))


def started(row: Subprocessor, now: float) -> bool:
    """Whether `row` has begun receiving data by `now`."""
    return row.effective_at <= now


def _checked(services: Services, *, name: str, purpose: str, categories: list[str],
             location: str, region: str | None, transfer_mechanism: str,
             contract_date: str, endpoint: str | None) -> dict:
    if not name.strip() or not purpose.strip() or not location.strip():
        raise BadRequest("name, purpose and location are required")
    cats = [c.strip() for c in categories if c.strip()]
    if not cats:
        raise BadRequest("at least one data category (--category) is required")
    if region is not None and region not in services.settings.regions:
        raise BadRequest(f"region must be one of {', '.join(services.settings.regions)} "
                         "(or none: all regions)")
    if not transfer_mechanism.strip():
        raise BadRequest(f"transfer mechanism required, e.g. {', '.join(MECHANISMS)}")
    try:
        date.fromisoformat(contract_date)
    except ValueError:
        raise BadRequest("contract date: YYYY-MM-DD") from None
    if endpoint:
        parts = urlsplit(endpoint)
        allowed = ("https", "http") if services.settings.webhook_allow_private else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise BadRequest("endpoint: an https:// URL")
    return {"name": name.strip()[:200], "purpose": purpose.strip(),
            "data_categories": json.dumps(cats), "location": location.strip()[:200],
            "region": region, "transfer_mechanism": transfer_mechanism.strip()[:64],
            "contract_date": contract_date, "notification_endpoint": endpoint or None}


def add(services: Services, *, name: str, purpose: str, categories: list[str], location: str,
        region: str | None, transfer_mechanism: str, contract_date: str,
        endpoint: str | None = None, actor: str = "cli") -> Added:
    """A new sub-processor, receiving data 30 days from now, announced by an amendment."""
    return _enter(services, None, _checked(
        services, name=name, purpose=purpose, categories=categories, location=location,
        region=region, transfer_mechanism=transfer_mechanism, contract_date=contract_date,
        endpoint=endpoint), actor)


def replace(services: Services, old_id: str, *, name: str, purpose: str,
            categories: list[str], location: str, region: str | None,
            transfer_mechanism: str, contract_date: str, endpoint: str | None = None,
            actor: str = "cli") -> Added:
    """`old_id` gives way to a new one on the new one's date (30 days from now)."""
    return _enter(services, old_id, _checked(
        services, name=name, purpose=purpose, categories=categories, location=location,
        region=region, transfer_mechanism=transfer_mechanism, contract_date=contract_date,
        endpoint=endpoint), actor)


def _enter(services: Services, old_id: str | None, fields: dict, actor: str) -> Added:
    now = services.clock.now()
    vault = services.platform.directory_vault
    key = secrets.token_hex(32) if fields["notification_endpoint"] else None
    with services.main_db.transaction() as session:
        old = None
        if old_id is not None:
            old = session.get(Subprocessor, old_id)
            if old is None or (old.removed_at is not None and old.removed_at <= now):
                raise NotFound("No such sub-processor")
        row = Subprocessor(id=new_id(), added_at=now, effective_at=earliest_significant(now),
                           replaces_id=old_id, **fields,
                           signing_key_sealed=vault.seal_secret(SIGNING_LABEL, key.encode())
                           if key else None)
        session.add(row)
        withdrawn = old is not None and not started(old, now)
        if old is not None:
            # one that has not started never does: the new one comes instead of it
            old.removed_at = now if withdrawn else row.effective_at
        session.flush()
        change = (f"{row.name} is added as a sub-processor" if old is None
                  else f"{row.name} replaces {old.name} (withdrawn before it started) as a "
                       "sub-processor" if withdrawn
                  else f"{row.name} replaces {old.name} as a sub-processor")
        notice = publish_in(
            session, services, version=next_version(session),
            text=text_on(session, services, row.effective_at), effective_at=row.effective_at,
            significant=True, actor=actor, now=now,
            summary=f"{change} ({row.purpose}; data: {', '.join(row.categories)}; "
                    f"{row.location}), receiving data from {day(row.effective_at)}.")
        audit.append(session, vault, actor=actor[:64],
                     action="subprocessor.added" if old is None else "subprocessor.replaced",
                     target=row.id, details={"replaces": old_id, "version": notice.version,
                                             "effective_at": row.effective_at}, now=now)
        shown = as_json(row, now, operator=True)
    mailed = announce(services, notice)
    return Added(shown, key, dataclasses.replace(notice, mailed=mailed))


def remove(services: Services, subprocessor_id: str, actor: str = "cli") -> Notice:
    """It receives no more data from now; the notice's list follows at once (fewer
    recipients is no significant amendment). One that has not started yet is withdrawn:
    it never receives data, and the version says so."""
    now = services.clock.now()
    with services.main_db.transaction() as session:
        row = session.get(Subprocessor, subprocessor_id)
        if row is None or (row.removed_at is not None and row.removed_at <= now):
            raise NotFound("No such sub-processor")
        before_start = not started(row, now)
        row.removed_at = now
        session.flush()
        summary = (f"{row.name}, announced for {day(row.effective_at)}, is withdrawn before "
                   "it started: it never receives data." if before_start
                   else f"{row.name} is no longer a sub-processor.")
        notice = publish_in(session, services, version=next_version(session),
                            text=text_on(session, services, now), effective_at=now,
                            significant=False, actor=actor, now=now, summary=summary)
        audit.append(session, services.platform.directory_vault, actor=actor[:64],
                     action="subprocessor.removed", target=row.id,
                     details={"version": notice.version, "before_start": before_start},
                     now=now)
        return notice


def text_on(session: Session, services: Services, at: float) -> str:
    """The notice's text in force at `at` (a pending text amendment is not pulled forward:
    it takes effect on its own date), else a short stand-in for the built-in notice."""
    found = in_force(session, at)
    if found is not None:
        return found.text
    return ("# Privacy notice\n\nThis version amends the built-in notice, version "
            f"{BUILTIN}, which applies unchanged otherwise: "
            f"{services.settings.api_url}/privacy/versions/{BUILTIN}\n")


def register_on(session: Session, at: float, now: float) -> list[dict]:
    """The register as it stands at `at` (those receiving data then), as customers see it."""
    return [as_json(s, now) for s in active_subprocessors(session, at)]


def register_changes(before: list[dict], after: list[dict]) -> list[str]:
    """What changed in the register between two of its states: parties added, replaced,
    removed, as sentences."""
    was = {s["id"]: s for s in before}
    now = {s["id"]: s for s in after}
    replaced = {s["replaces"] for s in after if s["replaces"] in was and s["id"] not in was}
    lines = []
    for s in after:
        if s["id"] in was:
            continue
        if s["replaces"] in was:
            lines.append(f"{s['name']} replaces {was[s['replaces']]['name']} "
                         f"({s['purpose']}; data: {', '.join(s['data_categories'])}; "
                         f"{s['location']})")
        else:
            lines.append(f"{s['name']} is added ({s['purpose']}; data: "
                         f"{', '.join(s['data_categories'])}; {s['location']})")
    lines += [f"{s['name']} is removed" for s in before
              if s["id"] not in now and s["id"] not in replaced]
    return lines


def summary_contradicted(summary: str, before: list[dict], after: list[dict]) -> bool:
    """Whether a version's stored summary speaks of sub-processors that its register does
    not change (e.g. one announced, then withdrawn before its date): the register is then
    the truth, the summary only what the publisher said at the time."""
    if "sub-processor" not in summary:
        return False
    was = {s["id"]: s["name"] for s in before}
    now = {s["id"]: s["name"] for s in after}
    changed = [name for i, name in (was | now).items() if (i in was) != (i in now)]
    return not any(name in summary for name in changed)


def region_kinds(settings: Settings) -> list[dict]:
    """The record's `regions`: names, which is home, each database's kind (never a URL)."""
    from mailhaven.storage.processing_record import regions_of

    kinds = {name: "sqlite" if settings.regional(name).resolved_database_url
             .startswith("sqlite") else "postgresql" for name in settings.regions}
    return regions_of(settings.regions, settings.home_region, kinds)


def record_sections(services: Services) -> dict:
    """What the Article 30 record adds from the running platform: its regions and the
    register of sub-processors."""
    now = services.clock.now()
    with services.main_db.sessions() as session:
        register = [as_json(s, now) for s in listed(session, now)]
    return {"regions": region_kinds(services.settings), "subprocessors": register}
