"""FastAPI dependencies: the services, the authenticated account, a database session."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import Depends, Request

from mailhaven.accounts.service import account_for_digest, key_digest
from mailhaven.errors import Unauthorized
from mailhaven.http import in_thread
from mailhaven.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def _api_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:  # bad base64 (binascii.Error), non-ASCII text, bad UTF-8
        return None
    return password if user == "api" and password else None


async def current_account(request: Request, services: ServicesDep) -> str:
    api_key = _api_key(request)
    if api_key is None:
        raise Unauthorized("Invalid private key")

    digest = key_digest(api_key)
    account_id = services.key_cache.get(digest)
    if account_id is None:
        def lookup() -> str | None:
            with services.db.sessions() as session:
                return account_for_digest(session, digest)

        account_id = await in_thread(lookup)
        if account_id is None:
            raise Unauthorized("Invalid private key")
        services.key_cache.put(digest, account_id)
    request.state.account_id = account_id
    return account_id


AccountDep = Annotated[str, Depends(current_account)]
