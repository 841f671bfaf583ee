"""Add, find, list, remove suppressions; and the check every delivery attempt makes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from mailhaven.addresses import parse_addresses, valid_addresses
from mailhaven.clock import SYSTEM_CLOCK, Clock, format_rfc2822, parse_rfc2822
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest, NotFound
from mailhaven.failure_reasons import FailureReason
from mailhaven.storage.db import insert_for
from mailhaven.suppressions.models import Suppression
from mailhaven.vault import Vault, VaultKey
from mailhaven.vault.recognise import holds_address
from mailhaven.vault.service import normalize_address

MAX_BATCH = 1000
MAX_IMPORT_ROWS = 100_000  # MAILHAVEN_CSV_IMPORT_MAX_ROWS
CSV_INVALID = "Invalid CSV file"
CSV_TOO_MANY_ROWS = "CSV file has more than {} rows: split it into several imports"
CSV_COLUMNS = {"bounces": ("address", "code", "error", "created_at"),
               "unsubscribes": ("address", "tag", "created_at"),
               "complaints": ("address", "created_at"),
               "whitelists": ("address", "domain", "reason", "created_at")}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula
_QUOTE = "'"  # before such a cell, and before one starting with a quote: text, not formula
TAG_HOLDS_ADDRESS = "tags can't hold an email address: they are kept in clear"
TABLE = {"bounces": "bounces", "unsubscribes": "unsubscribers", "complaints": "complaints",
         "whitelists": "allowlist"}
ALL_TAGS = "*"


@dataclass(frozen=True)
class Entry:
    """One record as a client gives it (form fields, a JSON object or a CSV row)."""

    value: str
    value_type: str = "address"
    code: str | None = None
    detail: str | None = None
    tags: tuple[str, ...] = ()
    created_at: float | None = None


def entry_from(kind: str, record: dict) -> Entry:
    """Validate one record of `kind`: 400 for what Mailgun would refuse."""
    if kind == "whitelists" and record.get("domain") and not record.get("address"):
        domain = str(record["domain"]).strip().lower()
        if "." not in domain or "@" in domain or " " in domain:
            raise BadRequest(f"'{domain}' is not a valid domain")
        return Entry(domain, "domain", detail=str(record.get("reason") or "") or None)
    raw = str(record.get("address") or "").strip()
    if not raw:
        raise BadRequest("address parameter is missing")
    found = parse_addresses([raw], "address", limit=1)
    if not found:
        raise BadRequest("address parameter is missing")
    address = found[0]
    created = parse_rfc2822(str(record["created_at"])) if record.get("created_at") else None
    tags = record.get("tags") or ([record["tag"]] if record.get("tag") else [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise BadRequest("tags must be a list of tag names")
    if any(holds_address(t) for t in tags):
        raise BadRequest(TAG_HOLDS_ADDRESS)
    code = str(record.get("code") or "550")
    if kind == "bounces" and not (code.isdigit() and len(code) == 3):
        raise BadRequest("code must be a 3-digit SMTP reply code")
    return Entry(
        address.email, code=code if kind == "bounces" else None,
        detail=str(record.get("error") or record.get("reason") or "") or None,
        tags=tuple(str(t) for t in tags) if kind == "unsubscribes" else (),
        created_at=created)


def entries_from_csv(kind: str, data: bytes, *, max_rows: int = MAX_IMPORT_ROWS,
                     ) -> list[Entry]:
    """The records of an uploaded CSV file (a header row names the columns), each checked as
    entry_from() checks one."""
    return list(csv_entries(kind, io.BytesIO(data), max_rows=max_rows))


def csv_entries(kind: str, upload: BinaryIO, *, max_rows: int = MAX_IMPORT_ROWS,
                ) -> Iterator[Entry]:
    """The records of an uploaded CSV file, read a row at a time (never the whole file in
    memory), each checked as entry_from() checks one; 400 past `max_rows` rows. The
    caller reads them all once before writing any: a bad row or one too many then
    refuses the import whole."""
    text = io.TextIOWrapper(upload, encoding="utf-8-sig", errors="replace", newline="")
    try:
        for number, row in enumerate(csv.DictReader(text), 1):
            if number > max_rows:
                raise BadRequest(CSV_TOO_MANY_ROWS.format(max_rows))
            yield entry_from(kind, {k.strip().lower(): _uncell(v)
                                    for k, v in row.items() if k})
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (128 KiB)
        raise BadRequest(f"{CSV_INVALID}: {exc}") from exc
    finally:
        text.detach()  # the upload is the caller's to read again or close


def export_csv(session: Session, vault: Vault, domain: Domain, kind: str) -> str:
    """The whole list as a CSV file that entries_from_csv() reads back (an unsubscribe has
    a row per tag); erased subjects are left out."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS[kind])
    for item in _every(session, vault, domain, kind):
        writer.writerows(_csv_rows(kind, item))
    return out.getvalue()


def _every(session: Session, vault: Vault, domain: Domain, kind: str) -> Iterator[dict]:
    query = select(Suppression).where(Suppression.domain_id == domain.id,
                                      Suppression.kind == kind)
    key = tuple_(Suppression.created_at, Suppression.id)
    edge: tuple[float, int] | None = None
    while True:
        chunk = query if edge is None else query.where(key > tuple_(*edge))
        rows = list(session.scalars(chunk.order_by(Suppression.created_at, Suppression.id)
                                    .limit(_SCAN_CHUNK)))
        yield from _readable(session, vault, kind, rows)
        if len(rows) < _SCAN_CHUNK:
            return
        edge = (rows[-1].created_at, rows[-1].id)


def _csv_rows(kind: str, item: dict) -> list[list[str]]:
    """Every cell that holds what a client gave (an address's local part may start with
    "=" or "-" as well as a tag or an error text may) goes through _cell()."""
    address = _cell(item.get("address") or "")
    if kind == "bounces":
        return [[address, item["code"], _cell(item["error"]), item["created_at"]]]
    if kind == "unsubscribes":
        return [[address, _cell(tag), item["created_at"]] for tag in item["tags"] or [""]]
    if kind == "complaints":
        return [[address, item["created_at"]]]
    value = _cell(item["value"])
    address, domain = (value, "") if item["type"] == "address" else ("", value)
    return [[address, domain, _cell(item["reason"]), item["createdAt"]]]


def _cell(text: str) -> str:
    """Text that a spreadsheet opening the file would not take for a formula (OWASP's CSV
    injection advice: a quote before it); _uncell() reads it back."""
    return _QUOTE + text if text.startswith((*_FORMULA, _QUOTE)) else text


def _uncell(value: str | None) -> str | None:
    if value is not None and value.startswith(_QUOTE) and value[1:].startswith(
            (*_FORMULA, _QUOTE)):
        return value[1:]
    return value


def add(session: Session, vault: Vault, domain: Domain, kind: str, entries: list[Entry],
        clock: Clock = SYSTEM_CLOCK) -> int:
    """Insert or update each entry (an unsubscribe gains tags; a bounce takes the new code).

    Exact under concurrency, with no retry: missing records are inserted with `ON CONFLICT
    DO NOTHING` (in the batch's order, which is the list's order), then every record is read
    `FOR UPDATE`, in blind-index order, and changed: a concurrent add of the same address
    waits for this one and then builds on it."""
    if len(entries) > MAX_BATCH:
        raise BadRequest("Batch size should be less than 1000")
    if entries:  # an empty batch (JSON []) adds nothing; an empty INSERT is an error
        _upsert(session, vault, domain, kind, entries, clock)
    return len(entries)


def unsubscribe(session: Session, vault: Vault, domain: Domain, email: str,
                tags: tuple[str, ...], clock: Clock = SYSTEM_CLOCK) -> bool:
    """Unsubscribe `email` from `tags` (`*`: everything); False when it already was from
    all of them, so a replayed link records no second event (exact under concurrency, as
    add() is: the second request waits for the first and sees its tags)."""
    return _upsert(session, vault, domain, "unsubscribes", [Entry(email, tags=tags)],
                   clock) > 0


def _upsert(session: Session, vault: Vault, domain: Domain, kind: str, entries: list[Entry],
            clock: Clock) -> int:
    """add()'s work; how many records changed (an unsubscribe that gained no tag did not)."""
    keys = vault.subjects(session, domain.account_id, [e.value for e in entries])
    indexed = [(vault.blind_index(domain.account_id, e.value), e) for e in entries]
    new: dict[str, dict] = {}
    for index, entry in indexed:
        key = keys[entry.value]
        new.setdefault(index, {
            "account_id": domain.account_id, "domain_id": domain.id, "kind": kind,
            "value_index": index, "key_id": key.id, "value_type": entry.value_type,
            "created_at": entry.created_at or clock.now(), "tags": "[]",
            "value_sealed": vault.seal_text(key, entry.value, "suppression")})
    session.execute(insert_for(session, Suppression).on_conflict_do_nothing(),
                    list(new.values()))
    rows = {row.value_index: row for row in _rows(session, domain, kind, new, lock=True)}
    changed = 0
    for index, entry in indexed:
        key, row = keys[entry.value], rows[index]
        if row.key_id != key.id:  # its subject was erased and has come back: seal anew
            row.key_id = key.id
            row.value_sealed = vault.seal_text(key, entry.value, "suppression")
            row.detail_sealed = None
        row.code = entry.code
        if entry.detail is not None:
            row.detail_sealed = vault.seal_text(key, entry.detail, "suppression.detail")
        if kind == "unsubscribes":
            before = set(json.loads(row.tags))
            tags = before | set(entry.tags or (ALL_TAGS,))
            row.tags = json.dumps(sorted(tags))
            changed += ALL_TAGS not in before and tags != before
        else:
            changed += 1
    session.flush()
    return changed


def _rows(session: Session, domain: Domain, kind: str, indexes: Iterable[str], *,
          lock: bool = False) -> list[Suppression]:
    """The records with these blind indexes; with `lock`, locked for this transaction (on
    PostgreSQL; SQLite's writer already holds the database) and read afresh."""
    query = select(Suppression).where(
        Suppression.domain_id == domain.id, Suppression.kind == kind,
        Suppression.value_index.in_(sorted(indexes)))
    if lock:
        query = (query.order_by(Suppression.value_index).with_for_update()
                 .execution_options(populate_existing=True))
    return list(session.scalars(query))


def find(session: Session, vault: Vault, domain: Domain, kind: str, value: str, *,
         lock: bool = False) -> Suppression:
    rows = _rows(session, domain, kind, [vault.blind_index(domain.account_id, value)],
                 lock=lock)
    if not rows:
        raise NotFound(f"Address not found in {TABLE[kind]} table")
    return rows[0]


def remove(session: Session, vault: Vault, domain: Domain, kind: str, value: str,
           tag: str | None = None) -> None:
    """Delete one record; for an unsubscribe with `tag`, only that tag."""
    row = find(session, vault, domain, kind, value, lock=True)
    if kind == "unsubscribes" and tag:
        tags = [t for t in json.loads(row.tags) if t != tag]
        if tags:
            row.tags = json.dumps(tags)
            return
    session.delete(row)


def clear(session: Session, domain: Domain, kind: str) -> None:
    session.execute(delete(Suppression).where(Suppression.domain_id == domain.id,
                                              Suppression.kind == kind))


_EDGE = {"bounces": "address", "unsubscribes": "address", "complaints": "address",
         "whitelists": "value"}
SCAN_LIMIT = 5000  # records a `term` search opens per request
_SCAN_CHUNK = 500


@dataclass(frozen=True)
class Page:
    """A page of records in Mailgun's shape, and the values its `previous` and `next` links
    start from (Mailgun's query-based paging names an address at the page's edge)."""

    items: list[dict]
    before: str | None
    after: str | None


def listing(session: Session, vault: Vault, domain: Domain, kind: str, *, limit: int,
            direction: str | None, pivot: str | None, term: str | None = None) -> Page:
    """A page of the list in creation order; with `term`, of the records that begin with it."""
    if term and _is_address(term):
        return _exact(session, vault, domain, kind, term, direction)
    if term:
        return _search(session, vault, domain, kind, term.strip().lower(), limit=limit,
                       direction=direction, pivot=pivot)
    rows = page(session, vault, domain, kind, limit=limit, direction=direction, pivot=pivot)
    items = _readable(session, vault, kind, rows)
    edge = _EDGE[kind]
    return Page(items, items[0][edge] if items else pivot, items[-1][edge] if items else pivot)


def _is_address(term: str) -> bool:
    found = valid_addresses([term])
    return len(found) == 1 and normalize_address(found[0].email) == normalize_address(term)


def _readable(session: Session, vault: Vault, kind: str,
              rows: list[Suppression]) -> list[dict]:
    keys = vault.keys(session, (r.key_id for r in rows))
    return [d for r in rows if (d := as_json(vault, keys, kind, r))]


def _exact(session: Session, vault: Vault, domain: Domain, kind: str, address: str,
           direction: str | None) -> Page:
    """A whole address: found through its blind index, whatever the list's length."""
    rows = [] if direction in ("next", "previous") else _rows(
        session, domain, kind, [vault.blind_index(domain.account_id, address)])
    items = _readable(session, vault, kind, rows)
    return Page(items, address, address)


def _search(session: Session, vault: Vault, domain: Domain, kind: str, prefix: str, *,
            limit: int, direction: str | None, pivot: str | None) -> Page:
    """Records whose address begins with `prefix`. Only the blind index of whole addresses
    is stored, so this opens the records in list order, at most SCAN_LIMIT of them: a page
    ends at `limit` matches or there, and its links go on from the last record opened."""
    backward = direction in ("previous", "last")
    matches: list[dict] = []
    opened, reached = 0, pivot
    while opened < SCAN_LIMIT and len(matches) < limit:
        rows = page(session, vault, domain, kind, direction=direction, pivot=reached,
                    limit=min(_SCAN_CHUNK, SCAN_LIMIT - opened))
        for item in _readable(session, vault, kind, rows[::-1] if backward else rows):
            reached = item[_EDGE[kind]]
            if reached.lower().startswith(prefix):
                matches.append(item)
                if len(matches) == limit:
                    break
        opened += len(rows)
        if len(rows) < _SCAN_CHUNK or reached is None:
            break
        direction = "previous" if backward else "next"
    if backward:
        matches.reverse()
        return Page(matches, reached, matches[-1][_EDGE[kind]] if matches else pivot)
    return Page(matches, matches[0][_EDGE[kind]] if matches else pivot, reached)


def page(session: Session, vault: Vault, domain: Domain, kind: str, *, limit: int,
         direction: str | None, pivot: str | None) -> list[Suppression]:
    """A page of rows in creation order; `pivot` is the address at the page's edge (Mailgun's
    query-based paging), found again through its blind index."""
    query = select(Suppression).where(Suppression.domain_id == domain.id,
                                      Suppression.kind == kind)
    key = tuple_(Suppression.created_at, Suppression.id)
    backward = direction in ("previous", "last")
    if direction in ("next", "previous") and pivot:
        found = _rows(session, domain, kind, [vault.blind_index(domain.account_id, pivot)])
        if not found:  # the pivot was removed meanwhile: nothing to page from
            return []
        edge = tuple_(found[0].created_at, found[0].id)
        query = query.where(key < edge if backward else key > edge)
    order = (Suppression.created_at.desc(), Suppression.id.desc()) if backward else (
        Suppression.created_at.asc(), Suppression.id.asc())
    rows = list(session.scalars(query.order_by(*order).limit(limit)))
    return rows[::-1] if backward else rows


def as_json(vault: Vault, keys: dict[str, VaultKey], kind: str, row: Suppression) -> dict | None:
    """Mailgun's shape of one record; None when its subject was erased."""
    key = keys.get(row.key_id or "")
    if key is None:
        return None
    value = vault.open_text(key, row.value_sealed, "suppression")
    detail = (vault.open_text(key, row.detail_sealed, "suppression.detail")
              if row.detail_sealed is not None else "")
    created = format_rfc2822(row.created_at)
    if kind == "bounces":
        return {"address": value, "code": row.code or "550", "error": detail,
                "created_at": created}
    if kind == "unsubscribes":
        return {"address": value, "tags": json.loads(row.tags), "created_at": created}
    if kind == "complaints":
        return {"address": value, "created_at": created}
    return {"type": row.value_type, "value": value, "reason": detail, "createdAt": created}


Listed = dict[str, list[str]]  # the lists an address is on, for one domain: {kind: tags}


def lookup(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Listed]:
    """Where each (domain id, blind index) is listed, in one query for a whole claim."""
    pairs = list(pairs)
    if not pairs:
        return {}
    rows = session.execute(select(
        Suppression.domain_id, Suppression.value_index, Suppression.kind, Suppression.tags,
    ).where(Suppression.domain_id.in_({d for d, _ in pairs}),
            Suppression.value_index.in_({i for _, i in pairs}),
            Suppression.kind != "whitelists")).all()
    found: dict[tuple[str, str], Listed] = {}
    for domain_id, index, kind, tags in rows:
        found.setdefault((domain_id, index), {})[kind] = json.loads(tags)
    return found


def reason_for(kinds: Listed, tags: list[str]) -> FailureReason | None:
    """Why mail must not be sent to an address on these lists (Mailgun's `reason`), or None."""
    if "bounces" in kinds:
        return FailureReason.SUPPRESS_BOUNCE
    if "complaints" in kinds:
        return FailureReason.SUPPRESS_COMPLAINT
    unsubscribed = kinds.get("unsubscribes")
    if unsubscribed is not None and (ALL_TAGS in unsubscribed or set(unsubscribed) & set(tags)):
        return FailureReason.SUPPRESS_UNSUBSCRIBE
    return None


def allowlisted(session: Session, vault: Vault, account_id: str, domain_id: str,
                email: str) -> bool:
    """The allowlist keeps an address (or every address of a domain) off the bounce list."""
    indexes = [vault.blind_index(account_id, email),
               vault.blind_index(account_id, email.rpartition("@")[2])]
    return session.scalar(select(Suppression.id).where(
        Suppression.domain_id == domain_id, Suppression.kind == "whitelists",
        Suppression.value_index.in_(indexes)).limit(1)) is not None



def lists_as_bounce(code: int, enhanced: str) -> bool:
    """A permanent refusal of the address itself: not a policy or reputation refusal
    (5.7.x), which says nothing about whether the mailbox exists."""
    return 500 <= code < 600 and not enhanced.startswith("5.7")


def domain_of(session: Session, domain_id: str) -> Domain | None:
    return session.get(Domain, domain_id)


def list_bounce(session: Session, vault: Vault, domain_id: str, email: str, *, code: int,
                detail: str, clock: Clock = SYSTEM_CLOCK) -> None:
    """Put a hard-bounced address on the domain's bounce list, unless it is allowlisted."""
    domain = domain_of(session, domain_id)
    if domain is None or allowlisted(session, vault, domain.account_id, domain_id, email):
        return
    add(session, vault, domain, "bounces", [Entry(email, code=str(code), detail=detail)], clock)
