"""`/v3/domains` and `/v4/domains`: Mailgun's domain endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from mailhaven.credentials import service as credentials
from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.domains import openapi as answered
from mailhaven.domains import options, service, verify
from mailhaven.domains.models import Domain
from mailhaven.domains.reserved import operator_names
from mailhaven.domains.service import SPAM_ACTIONS, WEB_SCHEMES
from mailhaven.forms import field_dict
from mailhaven.http import in_thread, read_form
from mailhaven.openapi import NO_FIELDS, Field, form, query
from mailhaven.resolver import make_resolver
from mailhaven.retention.service import bodies_kept_for

POSTMASTER = "postmaster"  # the login `smtp_password` sets, as Mailgun's smtp_login shows it
router = APIRouter(tags=["domains"])

SETTINGS = (  # Mailgun's names and meanings; what is not given stays as it is
    Field("spam_action", "What to do with spam received for the domain", enum=SPAM_ACTIONS),
    Field("web_scheme", "The scheme of open, click and unsubscribe links", enum=WEB_SCHEMES),
    Field("web_prefix", "The host name prefix of open, click and unsubscribe links",
          example="email"),
    Field("wildcard", "Accept inbound mail for subdomains too", "boolean"),
    Field("require_tls", "Deliver the domain's mail over TLS only", "boolean"),
    Field("skip_verification", "Do not verify the receiving server's certificate",
          "boolean"),
    Field("message_ttl", "Seconds stored messages are kept (3600 to ten years)", "integer"),
    Field("encrypt_incoming_message", "Store received mail encrypted: set once, at creation",
          "boolean"),
    Field("use_automatic_sender_security", "Refused: Mailhaven publishes DKIM records itself",
          "boolean"),
    Field("smtp_password", "Sets the password of the domain's postmaster SMTP login"))
DKIM = (
    Field("dkim_algorithm", "The DKIM key's algorithm (Ed25519 signs beside RSA)",
          enum=("rsa", "ed25519")),
    Field("dkim_key_size", "The RSA key's size in bits", "integer", enum=("1024", "2048")),
    Field("dkim_selector", "The DKIM selector (default: one made from the date)"))
CREATE_BODY = form(Field("name", "The name of the new domain", required=True,
                         example="mg.example.com"), *DKIM, *SETTINGS)


@router.get("/v3/domains", openapi_extra=answered.LISTED)
@router.get("/v4/domains", openapi_extra=answered.LISTED)
async def list_domains(services: ServicesDep, account_id: AccountDep,
                       limit: int = Query(100, ge=1, le=1000),
                       skip: int = Query(0, ge=0, le=service.MAX_SKIP),
                       state: str | None = None, search: str | None = None) -> dict:
    def run() -> dict:
        with services.db.sessions() as session:
            total, items = service.list_domains(session, account_id, limit=limit, skip=skip,
                                                state=state, search=search)
            kept_for = bodies_kept_for(session, account_id)
            return {"total_count": total,
                    "items": [service.domain_json(d, kept_for=kept_for) for d in items]}
    return await in_thread(run)


CREATED = CREATE_BODY | answered.changed("Domain DNS records have been created")


@router.post("/v3/domains", openapi_extra=CREATED)
@router.post("/v4/domains", openapi_extra=CREATED)
async def create_domain(request: Request, services: ServicesDep, account_id: AccountDep) -> dict:
    fields, _ = await read_form(request)

    def run() -> dict:
        given = field_dict(fields)
        domain = service.new_domain(services.vault, account_id, given,
                                    services.clock, reserved=operator_names(services.settings))
        smtp_password = credentials.hash_password(given["smtp_password"]) \
            if given.get("smtp_password") else None
        with services.db.transaction() as session:
            kept_for = bodies_kept_for(session, account_id)
            options.check_ttl(domain, kept_for)
            service.add_domain(session, domain, services)
            if smtp_password is not None:  # Mailgun's postmaster login, with this password
                credentials.set_password(session, services.vault, domain, POSTMASTER,
                                         smtp_password, services.clock,
                                         actor=f"account:{account_id}")
            return {"message": "Domain DNS records have been created",
                    **service.domain_response(domain, services.settings.hostname,
                                              kept_for=kept_for)}
    return await in_thread(run)


@router.get("/v3/domains/{name}", openapi_extra=answered.ONE)
@router.get("/v4/domains/{name}", openapi_extra=answered.ONE)
async def get_domain(name: str, services: ServicesDep, account_id: AccountDep) -> dict:
    def run() -> dict:
        with services.db.sessions() as session:
            domain = service.owned_domain(session, account_id, name)
            return service.domain_response(domain, services.settings.hostname,
                                           kept_for=bodies_kept_for(session, account_id))
    return await in_thread(run)


UPDATED = form(*SETTINGS) | answered.changed("Domain has been updated")


@router.put("/v3/domains/{name}", openapi_extra=UPDATED)
@router.put("/v4/domains/{name}", openapi_extra=UPDATED)
async def update_domain(name: str, request: Request, services: ServicesDep,
                        account_id: AccountDep) -> dict:
    fields = field_dict((await read_form(request))[0])

    def run() -> dict:
        smtp_password = credentials.hash_password(fields["smtp_password"]) \
            if fields.get("smtp_password") else None  # hashed before the write transaction
        with services.db.transaction() as session:
            domain = service.update_settings(service.owned_domain(session, account_id, name),
                                             fields)
            kept_for = bodies_kept_for(session, account_id)
            if "message_ttl" in fields:
                options.check_ttl(domain, kept_for)
            if smtp_password is not None:  # Mailgun's: the postmaster's password, set or made
                credentials.set_password(session, services.vault, domain, POSTMASTER,
                                         smtp_password, services.clock,
                                         actor=f"account:{account_id}")
            return {"message": "Domain has been updated",
                    **service.domain_response(domain, services.settings.hostname,
                                              kept_for=kept_for)}
    return await in_thread(run)


@router.delete("/v3/domains/{name}", openapi_extra=answered.DELETED)
@router.delete("/v4/domains/{name}", openapi_extra=answered.DELETED)
async def delete_domain(name: str, services: ServicesDep, account_id: AccountDep) -> dict:
    def run() -> None:
        with services.db.transaction() as session:
            service.delete_domain(session, account_id, name)
    await in_thread(run)
    return {"message": "Domain will be deleted in the background"}


VERIFIED = NO_FIELDS | answered.changed("Domain DNS records have been updated")


@router.put("/v3/domains/{name}/verify", openapi_extra=VERIFIED)
@router.put("/v4/domains/{name}/verify", openapi_extra=VERIFIED)
async def verify_domain(name: str, services: ServicesDep, account_id: AccountDep) -> dict:
    def load() -> Domain:
        with services.db.sessions() as session:
            return verify.to_check(session, account_id, name, services)

    hostname = services.settings.hostname
    domain = await in_thread(load)
    status = await verify.check(domain, hostname, make_resolver(services.settings.dns_nameserver))

    def store() -> dict:
        with services.db.transaction() as session:
            current = verify.store_check(session, account_id, name, status,
                                         services.clock.now(), services)
            return {"message": "Domain DNS records have been updated",
                    **service.domain_response(current, hostname,
                                              kept_for=bodies_kept_for(session, account_id))}
    return await in_thread(store)


# -- DKIM keys: rotation and Ed25519 are Mailhaven extensions (docs/domains.md) -----------
@router.post("/v1/admin/domains/{name}/dkim/rotate",
             summary="Start a DKIM key rotation (Mailhaven extension)",
             description="The new key is pending until verification finds its record; "
                         "then it signs and the old key retires for 7 days.",
             openapi_extra=form(*DKIM))
async def rotate_dkim(name: str, request: Request, services: ServicesDep,
                      account_id: AccountDep) -> dict:
    fields = field_dict((await read_form(request))[0])

    def run() -> dict:
        pair, selector = service.rotation_key(fields)
        with services.db.transaction() as session:
            domain = service.rotate_dkim(session, services.vault, account_id, name, pair,
                                         selector, services.clock)
            return {"message": "DKIM key rotation started: publish the new record",
                    "dkim_keys": service.dkim_keys_json(domain),
                    **service.domain_response(domain, services.settings.hostname,
                                              kept_for=bodies_kept_for(session, account_id))}
    return await in_thread(run)


@router.get("/v1/admin/domains/{name}/dkim/keys",
            summary="The domain's DKIM keys and their states (Mailhaven extension)")
async def dkim_keys(name: str, services: ServicesDep, account_id: AccountDep) -> dict:
    def run() -> dict:
        with services.db.sessions() as session:
            domain = service.owned_domain(session, account_id, name)
            return {"items": service.dkim_keys_json(domain)}
    return await in_thread(run)


SELECTOR = Field("dkim_selector", "The new selector (also read from the query string)",
                 example="mh2026")


@router.put("/v3/domains/{name}/dkim_selector", openapi_extra=form(SELECTOR) | query(SELECTOR))
async def change_dkim_selector(name: str, request: Request, services: ServicesDep,
                               account_id: AccountDep) -> dict:
    fields = field_dict((await read_form(request))[0])
    value = fields.get("dkim_selector") or request.query_params.get("dkim_selector")

    def run() -> None:
        with services.db.transaction() as session:
            service.change_dkim_selector(session, account_id, name, value)
    await in_thread(run)
    return {"message": "DKIM selector changed"}
