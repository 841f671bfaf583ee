"""`/v3/domains/{domain}/credentials`: Mailgun's SMTP credentials API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from mailhaven.credentials import service
from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains.service import MAX_SKIP, owned_domain
from mailhaven.errors import BadRequest
from mailhaven.forms import field_dict
from mailhaven.http import form_body, in_thread, json_responses, read_form

router = APIRouter(tags=["credentials"])

MAX_LIMIT = 1000
LIMIT_TOO_LARGE = f"Limit parameter can't be larger than {MAX_LIMIT}"  # Mailgun's reference
MAX_LOGINS = 100  # per POST: each costs an argon2id hash
TOO_MANY_LOGINS = f"At most {MAX_LOGINS} logins can be created at once"
UNPAIRED = "Give one password per login, or none to have them generated"
FORM_LIMIT = 64 * 1024
GENERATED = ("Passwords were generated for these credentials: store them now, they are "
             "not shown again")
DOMAIN_NOT_FOUND = ("No such domain, or another account's", {"message": "Domain not found"})
PASSWORDS_SHOWN = {"message": "Created 1 credentials pair(s)", "note": GENERATED,
                   "credentials": {"bob@mg.example.com": "Xq3…(32 characters)"}}
BAD_PASSWORD = ("A password shorter than 5 or longer than 32 characters",
                {"message": service.BAD_PASSWORD})

LISTED = json_responses({
    200: ("A page of the domain's logins, oldest first", {
        "items": [{"mailbox": "alice@mg.example.com", "login": "alice@mg.example.com",
                   "created_at": "Wed, 08 Mar 2023 23:34:57 +0000", "size_bytes": None}],
        "total_count": 1}),
    400: ("A limit over 1000", {"message": LIMIT_TOO_LARGE}),
    404: DOMAIN_NOT_FOUND})
CREATE_BODY = form_body({
    "login": "The login, user@domain or user alone; repeat it to create several",
    "mailbox": "An alias of login",
    "password": "5 to 32 characters, one per login; without any, Mailhaven generates them "
                "and shows them once",
    "system": "Accepted and ignored"}, required=("login",))
CREATED = json_responses({
    200: ("Created; generated passwords are shown this once, in credentials",
          PASSWORDS_SHOWN),
    400: ("No login, a login of another domain or one that exists, a bad password",
          {"message": service.MISSING_LOGIN}),
    404: DOMAIN_NOT_FOUND})
CHANGE_BODY = form_body({"password": "5 to 32 characters; without it, Mailhaven generates "
                                     "one and shows it once"})
CHANGED = json_responses({
    200: ("Changed; a generated password is shown this once, in credentials",
          {"message": "Password changed"}),
    400: BAD_PASSWORD,
    404: ("No such login, or no such domain", {"message": service.NOT_FOUND})})
DELETED = json_responses({
    200: ("Deleted: SMTP AUTH refuses the login from now on, and sessions that logged in "
          "with it submit no further message",
          {"message": "Credentials have been deleted", "spec": "alice@mg.example.com"}),
    404: ("No such login, or no such domain", {"message": service.NOT_FOUND})})
ALL_DELETED = json_responses({
    200: ("Every login of the domain deleted",
          {"message": "All domain credentials have been deleted", "count": 2}),
    404: DOMAIN_NOT_FOUND})


def _actor(account_id: str) -> str:
    return f"account:{account_id}"


def _shown_once(generated: dict[str, str]) -> dict[str, Any]:
    return {"note": GENERATED, "credentials": generated} if generated else {}


@router.get("/v3/domains/{domain_name}/credentials", responses=LISTED,
            summary="List the domain's SMTP credentials")
async def list_credentials(domain_name: str, services: ServicesDep, account_id: AccountDep,
                           skip: int = Query(0, ge=0, le=MAX_SKIP),
                           limit: int = Query(100, ge=1)) -> dict[str, Any]:
    if limit > MAX_LIMIT:
        raise BadRequest(LIMIT_TOO_LARGE)

    def run() -> dict[str, Any]:
        with services.db.sessions() as session:
            total, page = service.list_page(session, services.vault,
                                            owned_domain(session, account_id, domain_name),
                                            skip=skip, limit=limit)
        return {"items": [service.credential_json(c) for c in page], "total_count": total}
    return await in_thread(run)


@router.post(
    "/v3/domains/{domain_name}/credentials",
    summary="Create SMTP credentials for the domain",
    description="`login` (or its alias `mailbox`) may be repeated, each with its `password`; "
                "a bare local part gets the domain's name. Without passwords, Mailhaven "
                "generates them and shows them once in `credentials`.",
    openapi_extra=CREATE_BODY, responses=CREATED)
async def create_credentials(domain_name: str, request: Request, services: ServicesDep,
                             account_id: AccountDep) -> dict[str, Any]:
    fields, _ = await read_form(request, limit=FORM_LIMIT)
    logins = [v for k, v in fields if k in ("login", "mailbox")]
    passwords = [v for k, v in fields if k == "password"]
    if not logins:
        raise BadRequest(service.MISSING_LOGIN)
    if len(logins) > MAX_LOGINS:
        raise BadRequest(TOO_MANY_LOGINS)
    if passwords and len(passwords) != len(logins):
        raise BadRequest(UNPAIRED)

    def run() -> dict[str, Any]:
        with services.db.sessions() as session:  # 404 and 400 before any hashing
            domain = owned_domain(session, account_id, domain_name)
            full = [service.full_login(domain.name, login) for login in logins]
        chosen = passwords or [service.generate_password() for _ in logins]
        hashes = [service.hash_password(password) for password in chosen]
        with services.db.transaction() as session:
            domain = owned_domain(session, account_id, domain_name)
            for login, hashed in zip(full, hashes, strict=True):
                service.create(session, services.vault, domain, login, hashed,
                               services.clock, actor=_actor(account_id))
        return {"message": f"Created {len(full)} credentials pair(s)",
                **_shown_once({} if passwords else dict(zip(full, chosen, strict=True)))}
    return await in_thread(run)


@router.put(
    "/v3/domains/{domain_name}/credentials/{spec}",
    summary="Change an SMTP credential's password",
    description="`spec` is the login, full or its local part, percent-encoded. Without a "
                "password, Mailhaven generates one and shows it once in `credentials`.",
    openapi_extra=CHANGE_BODY, responses=CHANGED)
async def change_password(domain_name: str, spec: str, request: Request,
                          services: ServicesDep, account_id: AccountDep) -> dict[str, Any]:
    given = field_dict((await read_form(request, limit=FORM_LIMIT))[0]).get("password")

    def run() -> dict[str, Any]:
        password = service.generate_password() if given is None else given
        hashed = service.hash_password(password)
        with services.db.transaction() as session:
            changed = service.change_password(
                session, services.vault, owned_domain(session, account_id, domain_name),
                spec, hashed, services.clock, actor=_actor(account_id))
        return {"message": "Password changed",
                **_shown_once({changed.login: password} if given is None else {})}
    return await in_thread(run)


@router.delete("/v3/domains/{domain_name}/credentials/{spec}", responses=DELETED,
               summary="Delete an SMTP credential")
async def delete_credential(domain_name: str, spec: str, services: ServicesDep,
                            account_id: AccountDep) -> dict[str, Any]:
    def run() -> str:
        with services.db.transaction() as session:
            return service.delete(session, services.vault,
                                  owned_domain(session, account_id, domain_name), spec,
                                  services.clock, actor=_actor(account_id))
    return {"message": "Credentials have been deleted", "spec": await in_thread(run)}


@router.delete("/v3/domains/{domain_name}/credentials", responses=ALL_DELETED,
               summary="Delete all the domain's SMTP credentials")
async def delete_all_credentials(domain_name: str, services: ServicesDep,
                                 account_id: AccountDep) -> dict[str, Any]:
    def run() -> int:
        with services.db.transaction() as session:
            return service.delete_all(session, services.vault,
                                      owned_domain(session, account_id, domain_name),
                                      services.clock, actor=_actor(account_id))
    return {"message": "All domain credentials have been deleted", "count": await in_thread(run)}
