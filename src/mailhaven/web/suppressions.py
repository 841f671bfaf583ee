"""`/app/suppressions`: a domain's bounces, unsubscribes, complaints and allowlist — search,
add, delete, CSV import and export, through the suppressions service the API calls."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, MailhavenError, TooLarge
from mailhaven.suppressions import service
from mailhaven.suppressions.models import KINDS
from mailhaven.web.core import (
    MAX_FORM_BYTES,
    PageRefused,
    ViewerDep,
    audited,
    in_db,
    page,
    posted_form,
    redirect,
    require,
    web_router,
)
from mailhaven.web.sending_config import chosen, link, owned

router = web_router()
BASE = "/app/suppressions"
PAGE_SIZE = 50
LABELS = {"bounces": "Bounces", "unsubscribes": "Unsubscribes", "complaints": "Complaints",
          "whitelists": "Allowlist"}
NO_FILE = "Choose a CSV file to import."
TOO_LARGE = f"The file is larger than {MAX_FORM_BYTES // 2**20} MiB: split it, or use the API."


@dataclass(frozen=True)
class Listed:
    domains: list[str]
    domain: str | None
    found: service.Page | None


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise PageRefused(404, "There is nothing here.")
    return kind


async def _render(request: Request, services: ServicesDep, account_id: str, *, domain: str,
                  kind: str, status_code: int = 200, error: str | None = None,
                  values: dict[str, str] | None = None) -> Response:
    query = request.query_params
    term, direction = query.get("q", "").strip(), query.get("page") or None
    if direction not in (None, "next", "previous"):
        direction = None

    def work(session: Session) -> Listed:
        names, found = chosen(session, account_id, domain)
        if found is None:
            return Listed(names, None, None)
        return Listed(names, found.name, service.listing(
            session, services.vault, found, kind, limit=PAGE_SIZE, direction=direction,
            pivot=query.get("pivot") or None, term=term or None))

    listed = await in_db(services, work)
    items = listed.found.items if listed.found else []
    at = {"domain": listed.domain or "", "kind": kind, "q": term}
    paging = {}
    if listed.found and items and len(items) == PAGE_SIZE:
        paging["next"] = link(BASE, **at, page="next", pivot=listed.found.after or "")
    if listed.found and items and direction is not None:
        paging["previous"] = link(BASE, **at, page="previous", pivot=listed.found.before or "")
    return page(request, "app_suppressions.html", status_code=status_code, error=error,
                domains=listed.domains, domain=listed.domain, kind=kind, kinds=LABELS,
                items=items, term=term, paging=paging, values=values or {},
                tabs={k: link(BASE, domain=listed.domain or "", kind=k) for k in KINDS},
                here=link(BASE, **at))


@router.get(BASE)
async def suppressions(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    require(viewer, "view")
    kind = request.query_params.get("kind") or "bounces"
    return await _render(request, services, viewer.account_id, kind=_kind(kind),
                         domain=request.query_params.get("domain", ""))


@router.post(BASE + "/{domain_name}/{kind}/add")
async def add(domain_name: str, kind: str, request: Request, services: ServicesDep,
              viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_suppressions")
    _kind(kind)
    record: dict[str, object] = {name: form.get(name) for name in
                                 ("address", "domain", "code", "error", "reason")}
    record["tags"] = [t.strip() for t in form.get("tag").split(",") if t.strip()]

    def work(session: Session) -> None:
        domain = owned(session, viewer.account_id, domain_name)
        entry = service.entry_from(kind, record)
        service.add(session, services.vault, domain, kind, [entry], services.clock)
        audited(session, services, viewer, "web.suppression_added", f"domain:{domain.id}",
              kind=kind, count=1)

    try:
        await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render(request, services, viewer.account_id, domain=domain_name,
                             kind=kind, status_code=400, error=exc.message,
                             values={k: v for k, v in form.fields})
    return redirect(request, link(BASE, domain=domain_name, kind=kind),
                    flash=f"Added to {LABELS[kind].lower()}.")


@router.post(BASE + "/{domain_name}/{kind}/delete")
async def delete(domain_name: str, kind: str, request: Request, services: ServicesDep,
                 viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_suppressions")
    _kind(kind)

    def work(session: Session) -> None:
        domain = owned(session, viewer.account_id, domain_name)
        service.remove(session, services.vault, domain, kind, form.get("value"),
                       form.get("tag") or None)
        audited(session, services, viewer, "web.suppression_deleted", f"domain:{domain.id}",
              kind=kind, count=1)

    try:
        await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render(request, services, viewer.account_id, domain=domain_name,
                             kind=kind, status_code=exc.status, error=exc.message)
    return redirect(request, link(BASE, domain=domain_name, kind=kind),
                    flash=f"Removed from {LABELS[kind].lower()}.")


@router.post(BASE + "/{domain_name}/{kind}/import")
async def import_csv(domain_name: str, kind: str, request: Request, services: ServicesDep,
                     viewer: ViewerDep) -> Response:
    try:
        form = await posted_form(request)
    except TooLarge:
        return await _render(request, services, viewer.account_id, domain=domain_name,
                             kind=_kind(kind), status_code=413, error=TOO_LARGE)
    require(viewer, "manage_suppressions")
    _kind(kind)
    upload = next((data for field, _, data in form.files if field == "file"), None)
    try:
        if not upload:
            raise BadRequest(NO_FILE)
        entries = service.entries_from_csv(
            kind, upload, max_rows=services.settings.csv_import_max_rows)
        for start in range(0, len(entries), service.MAX_BATCH):  # a transaction per batch
            chunk = entries[start:start + service.MAX_BATCH]

            def work(session: Session, chunk: list[service.Entry] = chunk) -> None:
                domain = owned(session, viewer.account_id, domain_name)
                service.add(session, services.vault, domain, kind, chunk, services.clock)
                audited(session, services, viewer, "web.suppressions_imported",
                      f"domain:{domain.id}", kind=kind, count=len(chunk))
            await in_db(services, work, write=True)
    except MailhavenError as exc:
        return await _render(request, services, viewer.account_id, domain=domain_name,
                             kind=kind, status_code=400, error=exc.message)
    return redirect(request, link(BASE, domain=domain_name, kind=kind),
                    flash=f"Imported {len(entries)} records into {LABELS[kind].lower()}.")


@router.get(BASE + "/{domain_name}/{kind}/export")
async def export_csv(domain_name: str, kind: str, services: ServicesDep,
                     viewer: ViewerDep) -> Response:
    require(viewer, "view")
    _kind(kind)

    def work(session: Session) -> tuple[str, str]:
        domain = owned(session, viewer.account_id, domain_name)
        return domain.name, service.export_csv(session, services.vault, domain, kind)

    name, text = await in_db(services, work)
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}-{kind}.csv"'})
