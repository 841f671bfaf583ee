"""Mail arriving at the MX for a mailing list's address: one copy to each subscribed member
(not the poster), as the list's `access_level` allows, through sending's queue from the
list's domain, with the headers a list server adds (List-Id, List-Post, List-Unsubscribe,
and Reply-To as the list's `reply_preference` says)."""

from __future__ import annotations

import logging
import re

from sqlalchemy.orm import Session

from mailhaven.addresses import mailboxes
from mailhaven.domains.models import Domain
from mailhaven.errors import MailhavenError
from mailhaven.lists import service as lists
from mailhaven.messages.mime import mime_fields, mime_head
from mailhaven.sending import lists as list_sends
from mailhaven.sending.request import Attachment, build_request
from mailhaven.sending.service import may_send, queue_request
from mailhaven.vault import Vault
from mailhaven.vault.service import normalize_address

log = logging.getLogger("mailhaven.inbound.distribution")

# Fields of the message as received that a list's copy must not carry on: another list's
# (ours replace them), the delivery's own, and our intake's verdicts (about the hop to us).
DROPPED = frozenset({
    b"list-id", b"list-post", b"list-unsubscribe", b"list-unsubscribe-post", b"list-help",
    b"list-subscribe", b"list-owner", b"list-archive", b"delivered-to", b"return-path",
    b"x-mailgun-sflag", b"x-mailgun-sscore", b"x-mailgun-spf", b"x-mailgun-dkim-check-result",
})
_NEWLINE = re.compile(rb"\r?\n|\r")
_LIST_ID = re.compile(r"<\s*([^<>\s]*)\s*>")  # RFC 2919: [phrase] "<" list-id ">"


def distribute(session: Session, vault: Vault, *, domain: Domain, recipient: str, sender: str,
               envelope_sender: str, raw: bytes, now: float, require_verified: bool,
               public_url: str = "", source_id: str | None = None) -> int | None:
    """None when `recipient` is not a mailing list of the domain's account; else how many
    member copies were queued: 0 when the list's access level refuses `sender` (the poster:
    readonly lists take no mail; members lists only their members'), for a null
    `envelope_sender` (MAIL FROM:<>, a bounce: it must not go round a list, whatever its
    From), for a message that already went through this list (any of its List-Ids) and when
    the domain may not send (`require_verified`: as a send through the API is refused).
    `source_id`, the received message's storage key, marks the copies as made from it (its
    sender's erasure erases them too)."""
    row = lists.find_list(session, domain.account_id, recipient)
    if row is None:
        return None
    if not envelope_sender or not sender or row.access_level == "readonly":
        return 0
    if row.access_level == "members" and not lists.is_member(session, vault, row, sender):
        return 0
    if not may_send(domain, require_verified=require_verified):
        log.warning("list %s: not distributed, its domain may not send", row.id)
        return 0
    list_id = _list_id(row.address)
    fields = list(mime_fields(mime_head(raw)))
    if list_id.lower() in _list_ids(fields):
        return 0  # it came back round (through another list, maybe): a loop
    head = dict(fields)
    try:
        request = build_request([("to", row.address)], [("message", Attachment(
            "message.mime", "message/rfc822", _without_fields(raw)))], mime=True, now=now)
    except MailhavenError as exc:
        log.warning("list %s: a message could not be distributed: %s", row.id, exc.message)
        return 0
    reply_to = row.address if row.reply_preference == "list" else _from(head) or sender
    request.headers = [
        ("List-Id", f"<{list_id}>"), ("List-Post", f"<mailto:{row.address}>"),
        ("List-Unsubscribe", "<%mailing_list_unsubscribe_url%>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"), ("Reply-To", reply_to)]
    copies = list_sends.expand(session, vault, domain, request, public_url=public_url,
                               exclude=sender)
    if copies:
        queue_request(session, vault, domain, request, now=now, source_id=source_id)
    return copies


def _list_id(address: str) -> str:
    """RFC 2919's list identifier: the address with its @ as a dot."""
    return address.replace("@", ".", 1)


def _list_ids(fields: list[tuple[str, str]]) -> set[str]:
    """The identifiers of every List-Id the message carries (each list it went through
    added one), compared whole: `dev.mg…` is not `web-dev.mg…`."""
    return {found[-1].lower() for name, value in fields if name == "list-id"
            if (found := _LIST_ID.findall(value))}


def _from(head: dict[str, str]) -> str | None:
    found = [a.email for a, ok in mailboxes([head.get("from", "")]) if ok]
    return normalize_address(found[0]) if found else None


def _without_fields(raw: bytes) -> bytes:
    """The message without the `DROPPED` fields (folded lines included), byte for byte."""
    text = _NEWLINE.sub(b"\r\n", raw)
    head, blank, body = text.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.partition(b":")[0].strip().lower() in DROPPED
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + blank + body
