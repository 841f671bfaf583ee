"""`/app/settings`: everyone's own profile and password; for Admins ("manage_account") the
account's retention periods and its deletion. `/email-change/{token}`: the link mailed to a
new address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailhaven.deps import ServicesDep
from mailhaven.errors import BadRequest, Gone, MailhavenError, NotFound
from mailhaven.http import in_thread
from mailhaven.privacy import service as privacy
from mailhaven.privacy.erasure import HOLD_YEARS
from mailhaven.retention import service as retention
from mailhaven.users import team
from mailhaven.users.models import User
from mailhaven.users.passwords import new_password_hash
from mailhaven.users.service import check_password, hashing
from mailhaven.users.tokens import peek_token
from mailhaven.web.core import (
    SESSION_COOKIE,
    ViewerDep,
    audited,
    page,
    posted_form,
    redirect,
    require,
    web_router,
)

router = web_router()
WRONG_PASSWORD = "Your current password is not right."  # noqa: S105 (a message)
CONFIRM_WITH_ID = "Type this account's id to confirm the deletion."


async def _settings_page(request: Request, services: ServicesDep, viewer: ViewerDep, *,
                         status_code: int = 200, errors: dict[str, str] | None = None,
                         entered: dict[str, str] | None = None) -> Response:
    def read() -> list[dict[str, Any]]:
        with services.db.sessions() as session:
            return retention.policies(session, viewer.account_id)

    policies = await in_thread(read) if viewer.may("manage_account") else []
    return page(request, "app_settings.html", status_code=status_code, policies=policies,
                errors=errors or {}, entered=entered or {}, hold_years=HOLD_YEARS)


@router.get("/app/settings")
async def settings_page(request: Request, services: ServicesDep,
                        viewer: ViewerDep) -> Response:
    return await _settings_page(request, services, viewer)


async def _password_ok(services: ServicesDep, viewer: ViewerDep, password: str) -> bool:
    def find() -> User | None:
        with services.db.sessions() as session:
            return session.get(User, viewer.user_id)

    user = await in_thread(find)
    return await hashing(lambda: check_password(user, password))


async def _apply(request: Request, services: ServicesDep, viewer: ViewerDep, section: str,
                 run: Callable[[], None], done: str,
                 entered: dict[str, str] | None = None) -> Response:
    """Run one change; its refusal shown next to its section, or a flash on success."""
    try:
        await in_thread(run)
    except MailhavenError as refused:
        return await _settings_page(request, services, viewer, status_code=refused.status,
                                    errors={section: refused.message}, entered=entered)
    return redirect(request, "/app/settings", flash=done)


@router.post("/app/settings/profile")
async def profile(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)

    def run() -> None:
        with services.db.transaction() as session:
            team.rename(session, services.vault, viewer.user_id, form.get("name"),
                        now=services.clock.now())

    return await _apply(request, services, viewer, "profile", run, "Your name is saved.")


@router.post("/app/settings/email")
async def email(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    new = form.get("email")
    if not await _password_ok(services, viewer, form.get("password")):
        return await _settings_page(request, services, viewer, status_code=400,
                                    errors={"email": WRONG_PASSWORD}, entered={"email": new})

    def run() -> None:
        with services.db.transaction() as session:
            team.request_email_change(session, services, viewer.user_id, new,
                                      base_url=services.settings.api_url)

    return await _apply(request, services, viewer, "email", run,
                        "We mailed a link to the new address: follow it to make the change.",
                        {"email": new})


@router.post("/app/settings/password")
async def password(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    if not await _password_ok(services, viewer, form.get("current_password")):
        return await _settings_page(request, services, viewer, status_code=400,
                                    errors={"password": WRONG_PASSWORD})
    new = form.get("new_password")

    def run() -> None:
        hashed = new_password_hash(new, viewer.email)  # sign-up's rules; outside the write
        with services.db.transaction() as session:
            team.set_password(session, services.vault, viewer.user_id, hashed,
                              keep_session=viewer.session_id, now=services.clock.now())

    return await _apply(request, services, viewer, "password", run,
                        "Password changed. Your other sessions have ended.")


@router.post("/app/settings/retention")
async def set_retention(request: Request, services: ServicesDep,
                        viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_account")

    def run() -> None:
        now = services.clock.now()
        with services.db.transaction() as session:
            current = {p["category"]: p for p in retention.policies(session, viewer.account_id)}
            changes = _retention_changes(current, form.get)
            if not changes:
                return
            retention.set_policies(session, viewer.account_id, changes, now)
            audited(session, services, viewer, "web.retention_change",
                    f"account:{viewer.account_id}", days=changes)

    return await _apply(request, services, viewer, "retention", run,
                        "Retention periods saved.")


def _retention_changes(current: dict[str, dict[str, Any]],
                       given: Callable[[str], str]) -> dict[str, int | None]:
    """What the form changes: a number of days, or an empty field for the default."""
    changes: dict[str, int | None] = {}
    for name, policy in current.items():
        value = given(f"days_{name}").strip()
        if value == "":
            if policy["custom"]:
                changes[name] = None
            continue
        if not value.isdigit():
            raise BadRequest(f"{name}: days must be a whole number")
        if int(value) != policy["days"] or not policy["custom"]:
            changes[name] = int(value)
    return changes


@router.post("/app/settings/delete")
async def delete_account(request: Request, services: ServicesDep,
                         viewer: ViewerDep) -> Response:
    form = await posted_form(request)
    require(viewer, "manage_account")
    if not await _password_ok(services, viewer, form.get("password")):
        return await _settings_page(request, services, viewer, status_code=400,
                                    errors={"delete": WRONG_PASSWORD})
    try:
        privacy.confirm_deletion(viewer.account_id, form.get("confirm").strip())
    except BadRequest:
        return await _settings_page(request, services, viewer, status_code=400,
                                    errors={"delete": CONFIRM_WITH_ID})
    ctx = privacy.Context.of(services, f"user:{viewer.user_id}")

    def run() -> dict[str, Any]:
        with services.db.transaction() as session:
            return privacy.delete_account(session, ctx, viewer.account_id).as_json()

    record = await in_thread(run)  # the users go with their keys: every session ends
    services.key_cache.forget_account(viewer.account_id)
    request.state.viewer = None
    response = page(request, "auth_account_deleted.html", record=record["record"],
                    signature=record["signature"], signed_with=record["signed_with"])
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- the link mailed to a new address --------------------------------------------------------

@router.get("/email-change/{token}")
async def email_change(request: Request, token: str, services: ServicesDep) -> Response:
    sealed = request.query_params.get("to", "")

    def read() -> str:
        with services.db.sessions() as session:
            peek_token(session, token, "email", now=services.clock.now())
        return team.pending_address(services.vault, token, sealed)

    try:
        new = await in_thread(read)
    except (NotFound, Gone) as refused:
        return page(request, "auth_email_change.html", status_code=refused.status,
                    gone=refused.message)
    return page(request, "auth_email_change.html", token=token, sealed=sealed, email=new)


@router.post("/email-change/{token}")
async def confirm_email_change(request: Request, token: str,
                               services: ServicesDep) -> Response:
    form = await posted_form(request)

    def run() -> None:
        with services.db.transaction() as session:
            team.confirm_email_change(session, services.vault, token, form.get("to"),
                                      now=services.clock.now())

    try:
        await in_thread(run)
    except MailhavenError as refused:
        return page(request, "auth_email_change.html", status_code=refused.status,
                    gone=refused.message)
    return redirect(request, "/app/settings", flash="Your e-mail address is changed.")

