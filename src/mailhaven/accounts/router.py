"""`/v1/keys`: Mailgun's Keys API, the account's API keys listed, made and revoked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from mailhaven.accounts import openapi as answered
from mailhaven.accounts import service
from mailhaven.accounts.models import ApiKey
from mailhaven.clock import iso8601
from mailhaven.deps import AccountDep, KeyRoleDep, ServicesDep
from mailhaven.errors import BadRequest
from mailhaven.forms import field_dict
from mailhaven.http import in_thread, json_responses, read_form
from mailhaven.openapi import Field, form, query
from mailhaven.services import Services
from mailhaven.users.service import account_users, user_details

router = APIRouter(tags=["keys"])

FORM_LIMIT = 16 * 1024
BAD_KIND = "expected `kind` param to be one of [domain user web] or absent"  # Mailgun's
ONLY_USER_KEYS = ("Mailhaven's keys are the account's: kind must be `user` (or absent); "
                  "it has no `domain` or `web` keys")
NO_ROLE = "role is required: admin, basic or developer"
NO_EXPIRATION = "expiration is not supported: Mailhaven's keys last until they are deleted"
CREATED_MESSAGE, DELETED_MESSAGE = "great success", "key deleted"

EXAMPLE = {"id": "b0f3c4e5d6a7b8c9d0e1f2a3", "description": "deploy bot", "kind": "user",
           "role": "developer", "created_at": "2026-01-23T10:16:00",
           "updated_at": "2026-01-23T10:16:00", "requestor": None, "user_name": None,
           "domain_name": None, "is_disabled": False}
LIST_QUERY = query(
    Field("kind", "Only keys of this kind; Mailhaven's are all `user` keys (the account's)",
          enum=service.KEY_KINDS),
    Field("domain_name", "Only the `domain` keys of this domain (Mailhaven has none)"))
CREATE_BODY = form(
    Field("role", "The key's role: admin, basic (an analyst's), developer; a key makes keys "
                  "of its own role or a lesser one. `sending` (a domain key's) is refused",
          required=True, enum=("admin", "basic", "developer", "sending")),
    Field("description", f"What the key is for (at most {service.MAX_DESCRIPTION} "
                         "characters, kept in clear: no addresses)"),
    Field("kind", "`user` (the default): Mailhaven's keys are the account's",
          enum=service.KEY_KINDS),
    Field("expiration", "Not supported: refused when given", type="integer"))


def _time(epoch: float) -> str:
    return iso8601(epoch, timespec="seconds")[:19]


def _key_json(key: ApiKey, makers: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A key as Mailgun lists it (never its secret): made in the panel, its maker named."""
    maker = makers.get(key.created_by or "")
    return {"id": key.id, "description": key.description, "kind": service.ACCOUNT_KIND,
            "role": service.mailgun_role(key.role), "created_at": _time(key.created_at),
            "updated_at": _time(key.created_at), "requestor": maker[1] if maker else None,
            "user_name": maker[0] if maker else None, "domain_name": None,
            "is_disabled": False}


def _makers(session: Session, services: Services, account_id: str) -> dict[str, tuple[str, str]]:
    return {user.id: details for user in account_users(session, account_id)
            if (details := user_details(session, services.vault, user)) is not None}


@router.get("/v1/keys", summary="List the account's API keys",
            openapi_extra=LIST_QUERY | answered.LISTED, responses=json_responses({
                200: ("The keys in use, newest first; never their secrets",
                      {"total_count": 1, "items": [EXAMPLE]}),
                400: ("A kind not Mailgun's", {"message": BAD_KIND})}))
async def list_keys(request: Request, services: ServicesDep,
                    account_id: AccountDep) -> dict[str, Any]:
    kind = request.query_params.get("kind")
    if kind not in (None, "", *service.KEY_KINDS):
        raise BadRequest(BAD_KIND)
    none_match = kind not in (None, "", service.ACCOUNT_KIND) or \
        bool(request.query_params.get("domain_name"))  # our keys are no domain's

    def run() -> list[dict[str, Any]]:
        if none_match:
            return []
        with services.db.sessions() as session:
            makers = _makers(session, services, account_id)
            return [_key_json(k, makers) for k in service.account_keys(session, account_id)]
    items = await in_thread(run)
    return {"total_count": len(items), "items": items}


@router.post("/v1/keys", summary="Create an API key (its secret shown once)",
             openapi_extra=CREATE_BODY | answered.CREATED, responses=json_responses({
                 200: ("Made; `secret` is shown this once",
                       {"message": CREATED_MESSAGE,
                        "key": {**EXAMPLE, "secret": "key-3ax6…(44 characters)"}}),
                 400: ("No role, an unknown one, `sending`, a kind other than `user`, an "
                       "expiration", {"message": NO_ROLE}),
                 403: ("A role above the calling key's",
                       {"message": service.ROLE_ABOVE_CALLER.format(role="developer")})}))
async def create_key(request: Request, services: ServicesDep, account_id: AccountDep,
                     caller_role: KeyRoleDep) -> dict[str, Any]:
    fields = field_dict((await read_form(request, limit=FORM_LIMIT))[0])
    if fields.get("kind", "") not in ("", *service.KEY_KINDS):
        raise BadRequest(BAD_KIND)
    if fields.get("kind", "") not in ("", service.ACCOUNT_KIND):
        raise BadRequest(ONLY_USER_KEYS)
    if fields.get("expiration", "") != "":
        raise BadRequest(NO_EXPIRATION)
    if not fields.get("role", "").strip():
        raise BadRequest(NO_ROLE)
    role = service.key_role(fields["role"])
    description = service.key_description(fields.get("description", ""))

    def run() -> dict[str, Any]:
        with services.db.transaction() as session:
            key, secret = service.create_key_as(session, account_id, caller_role, role=role,
                                                description=description,
                                                clock=services.clock)
            service.journal_key(session, services.vault, "key.created", key,
                                actor=f"account:{account_id}", now=services.clock.now())
            return {**_key_json(key, {}), "secret": secret}
    return {"message": CREATED_MESSAGE, "key": await in_thread(run)}


@router.delete("/v1/keys/{key_id}", summary="Delete (revoke) an API key",
               openapi_extra=answered.DELETED, responses=json_responses({
                   200: ("Revoked: refused from now on by every API process (announced at "
                         "commit)", {"message": DELETED_MESSAGE}),
                   403: ("A key of a role above the calling key's",
                         {"message": "could not delete key, its role (admin) is above this "
                                     "key's (developer)"}),
                   404: ("No such key in use, or another account's",
                         {"message": service.KEY_NOT_FOUND})}))
async def delete_key(key_id: str, services: ServicesDep, account_id: AccountDep,
                     caller_role: KeyRoleDep) -> dict[str, str]:
    def run() -> str:
        with services.db.transaction() as session:
            key = service.revoke_key(session, account_id, key_id, clock=services.clock,
                                     caller_role=caller_role)
            service.journal_key(session, services.vault, "key.revoked", key,
                                actor=f"account:{account_id}", now=services.clock.now())
            return key.digest
    services.key_cache.forget(await in_thread(run))  # at once here; elsewhere at commit
    return {"message": DELETED_MESSAGE}
