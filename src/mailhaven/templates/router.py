"""`/v3/{domain}/templates…`: Mailgun's Templates API (templates, their versions, copies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from mailhaven.deps import AccountDep, ServicesDep, on_domain
from mailhaven.domains.models import Domain
from mailhaven.forms import field_dict, flag
from mailhaven.http import form_body, json_responses, query_url, read_form
from mailhaven.services import Services
from mailhaven.templates import openapi as answered
from mailhaven.templates import service

router = APIRouter(tags=["templates"])
T = TypeVar("T")

FORM_BYTES = 1024 * 1024  # a 100 KB template, percent-encoded, and a few short fields
BASE = "/v3/{domain_name}/templates"
ONE = f"{BASE}/{{template_name}}"
VERSIONS = f"{ONE}/versions"
VERSION = f"{VERSIONS}/{{version_name}}"


def _answers(example: dict[str, Any], *errors: int) -> dict[int | str, dict[str, Any]]:
    """The route's 200 with `example`, and the errors it may answer, in Mailgun's shape."""
    described = {400: ("Invalid parameters", {"message": service.NAME_INVALID}),
                 404: ("No such template, version or domain", {"message": service.NOT_FOUND}),
                 409: ("The name or tag is taken", {"message": "version v2 already exists"})}
    return json_responses({200: ("Success", example),
                           **{status: described[status] for status in errors}})


_VERSION_FIELDS = {
    "template": "The content: Handlebars, at most 100 KB",
    "comment": "A comment on the version",
    "headers": "A JSON object of the From, Subject and Reply-To headers the version sets "
               "where a message sets none of its own",
}
CREATE_FIELDS = {
    "name": "The name: letters, digits and .-_~ (lower-cased)",
    "description": "A description", "createdBy": "Who made it (kept sealed)",
    **_VERSION_FIELDS,
    "tag": "The first version's tag (default `initial`), if `template` is given",
    "engine": "`handlebars`, the only one",
}
VERSION_FIELDS = {**_VERSION_FIELDS, "tag": "The version's tag: letters, digits and .-_~",
                  "active": "`yes` makes it the active version",
                  "engine": "`handlebars`, the only one"}
EXAMPLE_VERSION = {"tag": "initial", "template": "<p>{{name}}</p>", "engine": "handlebars",
                   "mjml": "", "createdAt": "Wed, 29 Aug 2018 23:31:13 UTC",
                   "comment": "", "active": True, "id": "3efd2b85-0f41-4a1d-9898-05d7e7459c4a",
                   "headers": {"Subject": "Hello"}}
EXAMPLE_TEMPLATE = {"name": "welcome", "description": "The welcome message",
                    "createdAt": "Wed, 29 Aug 2018 23:31:13 UTC",
                    "id": "46565d87-68b6-4edb-8b3c-34554af4bb77"}
PAGING = {"first": "…/templates?limit=10", "last": "…/templates?page=last&limit=10",
          "next": "…/templates?page=next&p=welcome&limit=10",
          "previous": "…/templates?page=prev&p=welcome&limit=10"}


async def _on(services: Services, account_id: str, domain_name: str,
              work: Callable[[Session, Domain], T], *, write: bool = False) -> T:
    return await on_domain(services, account_id, domain_name, work, write=write)


async def _fields(request: Request) -> dict[str, str]:
    fields, _ = await read_form(request, limit=FORM_BYTES)
    return field_dict(fields)


def _paging(request: Request, path: str, page: service.Page, limit: int) -> dict[str, str]:
    url = f"{str(request.base_url).rstrip('/')}{path}"
    return {"first": query_url(url, limit=limit),
            "last": query_url(url, page="last", limit=limit),
            "next": query_url(url, page="next", p=page.last, limit=limit),
            "previous": query_url(url, page="prev", p=page.first, limit=limit)}


# -- templates -----------------------------------------------------------------------------

@router.get(BASE, openapi_extra=answered.LISTED,
            responses=_answers({"items": [EXAMPLE_TEMPLATE], "paging": PAGING}, 400))
async def list_templates(domain_name: str, request: Request, services: ServicesDep,
                         account_id: AccountDep, page: str | None = None,
                         p: str | None = None,
                         limit: int = Query(service.DEFAULT_LIMIT, ge=1,
                                            le=service.MAX_LIMIT)) -> dict[str, Any]:
    """The domain's templates, in the order they were made, a page at a time (`page` is
    first, last, next or prev; `p` the pivot the paging links carry)."""
    found = await _on(services, account_id, domain_name, lambda session, domain: (
        service.listing(session, services.vault, domain, page=page, pivot=p, limit=limit)))
    return {"items": found.items,
            "paging": _paging(request, f"/v3/{domain_name}/templates", found, limit)}


@router.post(BASE, openapi_extra=form_body(CREATE_FIELDS, required=("name",)) | answered.CHANGED,
             responses=_answers({"message": service.STORED,
                                 "template": {**EXAMPLE_TEMPLATE, "version": EXAMPLE_VERSION}},
                                400, 409))
async def create_template(domain_name: str, request: Request, services: ServicesDep,
                          account_id: AccountDep) -> dict[str, Any]:
    """Store a template; with `template`, its first version too, active."""
    fields = await _fields(request)
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.create(session, services.vault, domain, fields, services.clock.now())),
        write=True)


@router.delete(BASE, openapi_extra=answered.DELETED_ALL,
               responses=_answers({"message": service.ALL_DELETED}))
async def delete_templates(domain_name: str, services: ServicesDep,
                           account_id: AccountDep) -> dict[str, Any]:
    """Delete every template of the domain, and their versions."""
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.remove_all(session, services.vault, domain)), write=True)


@router.get(ONE, openapi_extra=answered.ONE, responses=_answers(
    {"template": {**EXAMPLE_TEMPLATE, "version": EXAMPLE_VERSION}}, 404))
async def get_template(domain_name: str, template_name: str, services: ServicesDep,
                       account_id: AccountDep, active: str | None = None) -> dict[str, Any]:
    """A template; with `active=yes`, its active version (content included)."""
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.get(session, services.vault, domain, template_name, active=flag(active))))


@router.put(ONE, openapi_extra=form_body({"description": "The new description"},
                                         required=("description",)) | answered.CHANGED,
            responses=_answers({"message": service.UPDATED, "template": {"name": "welcome"}},
                               400, 404))
async def update_template(domain_name: str, template_name: str, request: Request,
                          services: ServicesDep, account_id: AccountDep) -> dict[str, Any]:
    """Change a template's description."""
    fields = await _fields(request)
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.describe(session, services.vault, domain, template_name, fields)),
        write=True)


@router.delete(ONE, openapi_extra=answered.CHANGED, responses=_answers({"message": service.DELETED,
                                        "template": {"name": "welcome"}}, 404))
async def delete_template(domain_name: str, template_name: str, services: ServicesDep,
                          account_id: AccountDep) -> dict[str, Any]:
    """Delete a template and all its versions."""
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.remove(session, services.vault, domain, template_name)), write=True)


# -- versions ------------------------------------------------------------------------------

@router.get(VERSIONS, openapi_extra=answered.VERSIONS, responses=_answers(
    {"template": {**EXAMPLE_TEMPLATE, "versions": [EXAMPLE_VERSION]}, "paging": PAGING},
    400, 404))
async def list_versions(domain_name: str, template_name: str, request: Request,
                        services: ServicesDep, account_id: AccountDep,
                        page: str | None = None, p: str | None = None,
                        limit: int = Query(service.DEFAULT_LIMIT, ge=1,
                                           le=service.MAX_LIMIT)) -> dict[str, Any]:
    """A template and a page of its versions, in the order they were made."""
    template, found = await _on(services, account_id, domain_name, lambda session, domain: (
        service.versions(session, services.vault, domain, template_name, page=page,
                         pivot=p, limit=limit)))
    path = f"/v3/{domain_name}/templates/{template['name']}/versions"
    return {"template": {**template, "versions": found.items},
            "paging": _paging(request, path, found, limit)}


@router.post(VERSIONS, openapi_extra=form_body(VERSION_FIELDS, required=("template", "tag"))
             | answered.CHANGED,
             responses=_answers({"message": service.VERSION_STORED, "template": {
                 **EXAMPLE_TEMPLATE, "version": EXAMPLE_VERSION}}, 400, 404, 409))
async def create_version(domain_name: str, template_name: str, request: Request,
                         services: ServicesDep, account_id: AccountDep) -> dict[str, Any]:
    """Add a version (at most 10 a template); the first, or one with `active=yes`, becomes
    the active one."""
    fields = await _fields(request)
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.create_version(session, services.vault, domain, template_name, fields,
                               services.clock.now())), write=True)


@router.get(VERSION, openapi_extra=answered.ONE, responses=_answers(
    {"template": {**EXAMPLE_TEMPLATE, "version": EXAMPLE_VERSION}}, 404))
async def get_version(domain_name: str, template_name: str, version_name: str,
                      services: ServicesDep, account_id: AccountDep) -> dict[str, Any]:
    """A version, its content included."""
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.get_version(session, services.vault, domain, template_name, version_name)))


@router.put(VERSION, openapi_extra=form_body(
    {name: about for name, about in VERSION_FIELDS.items() if name not in ("tag", "engine")})
    | answered.CHANGED, responses=_answers({"message": service.VERSION_UPDATED, "template": {
                "name": "welcome", "version": {"tag": "initial"}}}, 400, 404))
async def update_version(domain_name: str, template_name: str, version_name: str,
                         request: Request, services: ServicesDep,
                         account_id: AccountDep) -> dict[str, Any]:
    """Change a version's content, comment or headers, or make it the active one; what
    is not given stays."""
    fields = await _fields(request)
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.update_version(session, services.vault, domain, template_name,
                               version_name, fields)), write=True)


@router.delete(VERSION, openapi_extra=answered.CHANGED, responses=_answers({
    "message": service.VERSION_DELETED,
    "template": {"name": "welcome", "version": {"tag": "initial"}}}, 404))
async def delete_version(domain_name: str, template_name: str, version_name: str,
                         services: ServicesDep, account_id: AccountDep) -> dict[str, Any]:
    """Delete a version."""
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.remove_version(session, domain, template_name, version_name)), write=True)


@router.put(f"{VERSION}/copy/{{new_version_name}}", openapi_extra=form_body(
                {"comment": "The copy's comment (also read from the query string)"})
            | answered.COPIED, responses=_answers({
                "message": service.VERSION_COPIED, "version": EXAMPLE_VERSION,
                "template": EXAMPLE_VERSION}, 400, 404))
async def copy_version(domain_name: str, template_name: str, version_name: str,
                       new_version_name: str, request: Request, services: ServicesDep,
                       account_id: AccountDep, comment: str | None = None) -> dict[str, Any]:
    """Copy a version to a new tag (one already there is overwritten); `comment`, in the
    query as the SDK sends it or in the form, is the copy's comment."""
    fields = await _fields(request)
    given = comment if comment is not None else fields.get("comment")
    return await _on(services, account_id, domain_name, lambda session, domain: (
        service.copy_version(session, services.vault, domain, template_name, version_name,
                             new_version_name, given, services.clock.now())), write=True)
