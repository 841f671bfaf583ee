"""Carrying out a verified request, for an account holder or a recipient, and the deletion
of a whole account (SPEC N3–N8). Each right ends in a result the subject (or the
customer, for the processor API) can check, and a completion record signed with the
account's signing key."""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailhaven.accounts.models import Account
from mailhaven.audit import service as audit
from mailhaven.audit.models import AuditEntry
from mailhaven.clock import iso8601
from mailhaven.controls import service as controls
from mailhaven.controls.models import Consent
from mailhaven.disclosures import service as disclosures
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest, Gone
from mailhaven.privacy import erasure
from mailhaven.privacy import requests as reqs
from mailhaven.privacy.erasure import LEGAL_HOLD
from mailhaven.privacy.models import PrivacyRequest
from mailhaven.privacy.records import (
    AccountDeleted,
    LegalHold,
    RecipientErased,
    RequestCompleted,
    Signed,
    sign,
)
from mailhaven.services import Services
from mailhaven.storage.db import Database
from mailhaven.storage.notice_versions import notice_in_force
from mailhaven.suppressions import service as suppressions
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault
from mailhaven.vault.models import VaultKey

EXPORT_RIGHTS = ("access", "portability")
EXPORT_DOWNLOADED = "privacy.export.downloaded"
CONFIRM_DELETION = "confirm must be this account's id"
NEW_EMAIL_NOT_VERIFIED = ("not carried over: suppressions are written only for an address "
                          "that has confirmed it is yours; ask the sender to update it")


@dataclass(frozen=True)
class Context:
    """What carrying out a request needs from the platform."""

    vault: Vault
    data_dir: Path
    built_in_notice: str  # MAILHAVEN_NOTICE_VERSION: in force until a stored one is
    now: float
    actor: str = "system"  # who acts, for the audit log: "account:<id>", "subject", "cli"
    main_db: Database | None = None  # the notices' and the register's (None: the session's)

    @classmethod
    def of(cls, services: Services, actor: str = "system") -> Context:
        return cls(services.vault, services.settings.data_dir,
                   services.settings.notice_version, services.clock.now(), actor,
                   services.main_db)

    @cached_property
    def notice_version(self) -> str:
        """The notice in force, read when a consent is recorded: not on every open, click
        or request that makes a context and records none."""
        if self.main_db is None:
            return self.built_in_notice
        return notice_in_force(self.main_db, self.now, self.built_in_notice)


def journal(session: Session, ctx: Context, action: str, *,
            request: PrivacyRequest | None = None, subject_index: str | None = None,
            details: dict | None = None, sealed: dict | None = None) -> None:
    """One step in the audit log; personal values only in `sealed`, under the subject's
    key (gone with an erasure, while the chain still verifies)."""
    key = None
    if sealed is not None and request is not None and request.key_id:
        key = ctx.vault.keys(session, [request.key_id]).get(request.key_id)
    audit.append(session, ctx.vault, actor=ctx.actor, action=action,
                 target=request.id if request else None,
                 subject_index=subject_index or (request.subject_index if request else None),
                 details=details, sealed=sealed if key else None, key=key, now=ctx.now)


def receive(session: Session, ctx: Context, *, account_id: str, right: str,
            subject_type: str, subject_index: str, key: VaultKey | None, given: dict,
            verified: bool) -> reqs.Opened:
    opened = reqs.open_request(session, ctx.vault, account_id=account_id, right=right,
                               subject_type=subject_type, subject_index=subject_index,
                               key=key, details=given, now=ctx.now, verified=verified)
    session.flush()
    journal(session, ctx, "privacy.request.received", request=opened.request,
            details={"type": right, "subject_type": subject_type,
                     "state": opened.request.state, "due_at": opened.request.due_at})
    return opened


def verify_and_carry_out(session: Session, ctx: Context, request: PrivacyRequest) -> None:
    if request.state != reqs.UNVERIFIED:
        return  # confirmed twice: done already
    reqs.verify(request, ctx.now)
    journal(session, ctx, "privacy.request.verified", request=request,
            details={"by": "one-time link"})
    carry_out(session, ctx, request, vouched=False)


def hand_over(session: Session, ctx: Context, request: PrivacyRequest) -> None:
    """An export downloaded by the recipient's link: at most MAX_DOWNLOADS times, each one
    in the audit log (which is where they are counted: no column needed)."""
    done = session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.target == request.id, AuditEntry.action == EXPORT_DOWNLOADED))
    if (done or 0) >= reqs.MAX_DOWNLOADS:
        raise Gone(reqs.DOWNLOADS_USED)
    journal(session, ctx, EXPORT_DOWNLOADED, request=request,
            details={"download": (done or 0) + 1, "by": "link"})


def extend(session: Session, ctx: Context, request: PrivacyRequest, *, months: int,
           reason: str) -> None:
    kept = reqs.extend(ctx.vault, session, request, months=months, reason=reason, now=ctx.now)
    journal(session, ctx, "privacy.request.extended", request=request,
            details={"months": months, "due_at": request.due_at, "subject_told": True},
            sealed={"reason": kept})


def deny(session: Session, ctx: Context, request: PrivacyRequest, *, reason: str) -> None:
    reqs.deny(request, reason=reason, now=ctx.now)
    journal(session, ctx, "privacy.request.denied", request=request,
            details={"reason": reason})


def notify(session: Session, ctx: Context, account_id: str, address: str | None,
           event: str, request: PrivacyRequest | None = None) -> list[dict[str, str]]:
    """Article 19: queue a signed POST to every party that received the subject's data
    (before an erasure destroys what names them, and what says it was held);
    [{party, state}]."""
    if not address:
        return []
    return disclosures.propagate(
        session, ctx.vault, account_id=account_id, address=address,
        index=ctx.vault.blind_index(account_id, address), event=event, now=ctx.now,
        request_id=request.id if request else None, main_db=ctx.main_db,
        holder=request is not None and request.subject_type == "holder")


def holder_email(session: Session, ctx: Context, account_id: str) -> str | None:
    """The account holder's address, while their key exists."""
    account = session.get(Account, account_id)
    if account is None or account.email_sealed is None:
        return None
    key = ctx.vault.keys(session, [account.holder_key_id]).get(account.holder_key_id or "")
    return (ctx.vault.open_text(key, account.email_sealed, "account.email")
            if key is not None else None)


def erase(session: Session, ctx: Context, account_id: str,
          email: str, *, notified: bool = False) -> Signed[RecipientErased]:
    """The processor API's erasure: done, journalled, and a signed record of it, listing
    the parties that received the subject's data and are told (none when the caller has
    `notified` them already: its own record lists them)."""
    told = [] if notified else notify(session, ctx, account_id, email, "erasure")
    summary = erasure.erase_recipient(session, ctx.vault, account_id, email, now=ctx.now,
                                      data_dir=ctx.data_dir)
    index = ctx.vault.blind_index(account_id, email)
    journal(session, ctx, "privacy.erasure", subject_index=index,
            details={"account": account_id, **asdict(summary.counts),
                     "keys_destroyed": summary.destroyed})
    return sign(session, ctx.vault, account_id,
                RecipientErased(account_id, index, iso8601(ctx.now), summary.counts, told))


def consent(session: Session, ctx: Context, account_id: str, index: str, purpose: str, *,
            granted: bool, source: str, notice_version: str | None = None) -> Consent:
    entry = controls.record_consent(session, account_id, index, purpose, granted=granted,
                                    source=source,
                                    notice_version=notice_version or ctx.notice_version,
                                    now=ctx.now)
    journal(session, ctx, f"privacy.consent.{'granted' if granted else 'withdrawn'}",
            subject_index=index, details={"account": account_id, "purpose": purpose,
                                          "source": entry.source,
                                          "notice_version": entry.notice_version})
    return entry


def confirm_deletion(account_id: str, confirm: str | None) -> None:
    """Every path to deleting an account (DELETE /v1/privacy/account, a holder's erasure
    request, the CLI) asks for the account's id again: a stray call or a leaked key used
    carelessly must not destroy everything at once."""
    if not confirm or not hmac.compare_digest(confirm.encode(), account_id.encode()):
        raise BadRequest(CONFIRM_DELETION)


def file_verified(session: Session, ctx: Context, account_id: str, right: str,
                  given: dict, *, confirm: str | None = None) -> PrivacyRequest:
    """A request whose requester is already known (the holder's login; the customer or
    the operator relaying a recipient's request), opened and carried out at once.
    A recipient is named by `email`; a holder's rectification gives the holder's new
    `email`/`name`, a recipient's gives `email` and `new_email`. A holder's erasure deletes
    the account, and needs `confirm` to repeat its id."""
    email = given.get("email") if right != "rectification" or "new_email" in given else None
    if right == "erasure" and not email:
        confirm_deletion(account_id, confirm)
    key: VaultKey | None
    if email:
        key = ctx.vault.subject(session, account_id, email)
        index, kind = ctx.vault.blind_index(account_id, email), "recipient"
    else:
        account = session.get(Account, account_id)
        if account is None or account.deleted_at is not None:
            raise BadRequest("No such account")
        key = ctx.vault.keys(session, [account.holder_key_id]).get(account.holder_key_id or "")
        index, kind = controls.holder_index(account_id), "holder"
    opened = receive(session, ctx, account_id=account_id, right=right, subject_type=kind,
                     subject_index=index, key=key, given=given, verified=True)
    carry_out(session, ctx, opened.request, vouched=True)
    return opened.request


def carry_out(session: Session, ctx: Context, request: PrivacyRequest, *,
              vouched: bool) -> dict:
    """Do what a verified request asks (everything but exports, which the caller writes
    outside the transaction); the request is completed with the returned result.
    `vouched`: filed by the customer or the operator, who verified the requester (and may
    write any suppression anyway), rather than by a recipient's own mailed link."""
    request.state, request.updated_at = reqs.IN_PROGRESS, ctx.now
    given = reqs.details(ctx.vault, session, request)
    account_id, index = request.account_id, request.subject_index
    right, changes = request.right, None
    result: dict[str, Any]
    address = (given.get("email") if request.subject_type == "recipient"
               else holder_email(session, ctx, account_id))
    notified: list[dict[str, str]] = []
    if right in EXPORT_RIGHTS:
        result = {"export": f"/v1/privacy/requests/{request.id}/export"}
    elif right == "erasure" and request.subject_type == "recipient":
        notified = notify(session, ctx, account_id, address, "erasure", request)
        erased = erase(session, ctx, account_id, given["email"], notified=True).record
        result = {"erased": asdict(erased.counts)}
    elif right == "erasure":
        notified = notify(session, ctx, account_id, address, "erasure", request)
        result = {"account_deleted": asdict(delete_account(session, ctx, account_id).record)}
    elif right in ("restriction", "objection"):
        lift = bool(given.get("lift"))
        controls.set_control(session, account_id, index, now=ctx.now,
                             **{"restricted" if right == "restriction" else "objected":
                                not lift})
        result = {right: "lifted" if lift else "in force"}
        if right == "restriction" and not lift:
            notified = notify(session, ctx, account_id, address, "restriction", request)
    elif right == "withdraw-consent":
        purposes = [given["purpose"]] if given.get("purpose") else list(controls.PURPOSES)
        for purpose in purposes:
            consent(session, ctx, account_id, index, purpose, granted=False, source="request")
        result = {"withdrawn": purposes}
    elif request.subject_type == "recipient" and not vouched and given.get("new_email"):
        # The link proved control of the old address only: writing suppressions for the
        # new one would let anyone get any address suppressed (issue 10). The old
        # address's entries stay: they protect a mailbox its owner still holds.
        result = {"rectified": [], "new_email": NEW_EMAIL_NOT_VERIFIED}
    else:
        fields, changes = rectify(session, ctx, request, given)
        result = {"rectified": fields}
        if fields:
            before = (changes or {}).get("before", {}).get("email")
            notified = notify(session, ctx, account_id, before or address, "rectification",
                              request)
    if notified:
        result["notified"] = notified
    record = sign(session, ctx.vault, account_id, RequestCompleted(
        request.id, right, request.subject_type, index, iso8601(ctx.now), result))
    reqs.complete(request, {**result, "completion": record.as_json()}, ctx.now)
    journal(session, ctx, "privacy.request.completed", request=request,
            details={"type": right, "result": result}, sealed=changes)
    return result


def rectify(session: Session, ctx: Context, request: PrivacyRequest,
            given: dict) -> tuple[list[str], dict | None]:
    """Corrections applied wherever the data is copied: the holder's profile; a recipient's
    address on every suppression list, for a request the customer or the operator vouched
    for (events stay the record of what was sent). Returns
    the fields changed and their before/after values (for the audit log, sealed)."""
    if request.subject_type == "holder":
        account = session.get(Account, request.account_id)
        key = ctx.vault.keys(session, [account.holder_key_id if account else None])
        holder = key.get(account.holder_key_id or "") if account else None
        if account is None or holder is None:
            raise BadRequest("The account holder's data is no longer held")
        changed, before, after = [], {}, {}
        for field in ("name", "email"):
            if given.get(field):
                old = getattr(account, f"{field}_sealed")
                before[field] = (ctx.vault.open_text(holder, old, f"account.{field}")
                                 if old is not None else None)
                after[field] = given[field]
                setattr(account, f"{field}_sealed",
                        ctx.vault.seal_text(holder, given[field], f"account.{field}"))
                changed.append(field)
        return changed, {"before": before, "after": after}
    new = given.get("new_email")
    if not new:
        return [], None
    rows = session.scalars(select(Suppression).where(
        Suppression.account_id == request.account_id,
        Suppression.value_index == request.subject_index)).all()
    for row in rows:
        domain = session.get(Domain, row.domain_id)
        if domain is None:
            continue
        suppressions.add(session, ctx.vault, domain, row.kind, [suppressions.Entry(
            new, value_type=row.value_type, code=row.code,
            tags=tuple(json.loads(row.tags)))])
        session.delete(row)
    if not rows:
        return [], None
    return ["email"], {"before": {"email": given.get("email")}, "after": {"email": new}}


class AccountDeletionHook(Protocol):
    def __call__(self, session: Session, vault: Vault, account_id: str, *, now: float,
                 data_dir: Path) -> None: ...


_account_deletion_hooks: list[AccountDeletionHook] = []


def on_account_deletion(hook: AccountDeletionHook) -> None:
    """Run `hook(session, vault, account_id, now=…, data_dir=…)` in the transaction that deletes
    an account, before its keys go: packages above this one subscribe (`wiring`), e.g. the
    platform's own mail to the account's users is erased with it."""
    if hook not in _account_deletion_hooks:
        _account_deletion_hooks.append(hook)


def delete_account(session: Session, ctx: Context,
                   account_id: str) -> Signed[AccountDeleted]:
    """Account deletion (N8): API keys revoked, queued mail cancelled, domains and every
    vault key of the account destroyed (its recipients' and its holder's data become
    unreadable everywhere, backups included); what the law requires (request records,
    consent proofs, the erasure ledger, the audit log) stays under a named legal hold."""
    account = session.get(Account, account_id, with_for_update=True)
    if account is None:
        raise BadRequest("No such account")
    for hook in _account_deletion_hooks:
        hook(session, ctx.vault, account_id, now=ctx.now, data_dir=ctx.data_dir)
    summary = erasure.erase_account(session, ctx.vault, account_id, now=ctx.now,
                                    data_dir=ctx.data_dir)
    journal(session, ctx, "privacy.account.deleted",
            subject_index=controls.holder_index(account_id),
            details={"account": account_id, "cancelled": summary.cancelled,
                     "domains_deleted": summary.domains,
                     "keys_destroyed": len(summary.key_ids), "legal_hold": LEGAL_HOLD})
    assert account.hold_until is not None  # set by the erasure, on this same object
    return sign(session, ctx.vault, account_id, AccountDeleted(
        account_id, iso8601(ctx.now), summary.cancelled, summary.domains,
        len(summary.key_ids), LegalHold(LEGAL_HOLD, iso8601(account.hold_until))))
