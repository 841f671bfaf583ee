"""Mailgun's Lists API as plain functions: an account's mailing lists (by address, on one of
its domains) and their members, with Mailgun's limits, shapes and messages. A list's name
and description are sealed under its content key; a member's address, name and vars under
the member's subject key, found by blind index."""

from __future__ import annotations

import base64
import csv
import hmac
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from mailhaven.addresses import MAX_DISPLAY_NAME_CHARS, Address, header_text, mailboxes
from mailhaven.clock import format_rfc2822
from mailhaven.domains.models import Domain
from mailhaven.domains.service import owned_domain
from mailhaven.errors import BadRequest, NotFound
from mailhaven.forms import flag, is_text, json_value, text_field
from mailhaven.lists.models import ListMember, MailingList
from mailhaven.storage.base import new_id, table
from mailhaven.vault import Vault, VaultKey
from mailhaven.vault.service import TokenMac, normalize_address

ACCESS_LEVELS = ("readonly", "members", "everyone")
REPLY_PREFERENCES = ("list", "sender")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000  # lists; members' plain listing is at most 100
MAX_MEMBERS_LIMIT = 100
MAX_BATCH = 1000  # members.json and members.csv, per call
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_VARS_BYTES = 16 * 1024  # a member's vars, as JSON

CREATED = "Mailing list has been created"
UPDATED = "Mailing list has been updated"
REMOVED = "Mailing list has been removed"
MEMBER_CREATED = "Mailing list member has been created"
MEMBER_UPDATED = "Mailing list member has been updated"
MEMBER_DELETED = "Mailing list member has been deleted"
LIST_NOT_FOUND = "Mailing list {} not found"
BULK_LIST_NOT_FOUND = "Mailing list '{}' not found"
MEMBER_NOT_FOUND = "Member {} of mailing list {} not found"
MEMBER_EXISTS = "Address already exists '{}'"
LIST_EXISTS = "Duplicate object"
ADDRESS_MISSING = "Missing mandatory parameter: address"
ADDRESS_INVALID = "'{}' parameter is not a valid address"
ACCESS_INVALID = ("Invalid access level '{}'. It can be any of: 'readonly', 'members', "
                  "'everyone'.")
REPLY_INVALID = "Invalid reply preference '{}'. It can be any of: 'sender', 'list'"
VARS_INVALID = "Invalid parameter: vars must be a JSON object"
VARS_TOO_LARGE = f"Invalid parameter: vars are larger than {MAX_VARS_BYTES // 1024}KB"
MEMBERS_MISSING = "Missing mandatory parameter: members"
MEMBERS_INVALID = ("Invalid parameter: members must be a JSON array of addresses or of "
                   "member objects")
TOO_MANY_MEMBERS = f"Too many members: at most {MAX_BATCH} per call"
CSV_TOO_LARGE = "CSV file is too big, max allowed size is 5 MB"
CSV_INVALID = "Invalid CSV file: {}"
PAGE_INVALID = "Invalid parameter: page must be one of first, last, next, prev"
_TOKEN = re.compile(r"([A-Za-z0-9_-]+)\.([0-9a-f]{32})", re.ASCII)


# -- reading forms -------------------------------------------------------------------------

def _address(value: str | None, field_name: str = "address") -> Address:
    if value is None or not value.strip():
        raise BadRequest(ADDRESS_MISSING)
    found = list(mailboxes([value]))
    if len(found) != 1 or not found[0][1] or len(found[0][0].name) > MAX_DISPLAY_NAME_CHARS \
            or not is_text(value):
        raise BadRequest(ADDRESS_INVALID.format(field_name))
    return found[0][0]


def _choice(value: str | None, allowed: tuple[str, ...], message: str) -> str | None:
    if value is None or value == "":
        return None
    if value.strip().lower() not in allowed:
        raise BadRequest(message.format(value))
    return value.strip().lower()


def _no_vars(value: Any) -> bool:
    """Vars an SDK sends when it has none: mailgun-go `null`, mailgun-php `[]` (PHP's
    empty array), a form's empty field."""
    if isinstance(value, str):
        value = value.strip()
        return value in ("", "null") or json_value(value) == []
    return value is None or value == []


def _vars(value: Any) -> dict[str, Any]:
    """A member's vars: a JSON object (or its text, as a form gives it); none: {}."""
    if _no_vars(value):
        return {}
    if isinstance(value, str):
        value = json_value(value)
    if not isinstance(value, dict):
        raise BadRequest(VARS_INVALID)
    if len(json.dumps(value).encode()) > MAX_VARS_BYTES:
        raise BadRequest(VARS_TOO_LARGE)
    return value


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return flag(str(value))


# -- lists ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Details:
    name: str = ""
    description: str = ""


def _seal_details(vault: Vault, key: VaultKey, row_id: str, details: Details) -> bytes:
    return vault.seal(key, json.dumps(details.__dict__).encode(), f"mailing-list:{row_id}")


def _details(vault: Vault, keys: dict[str, VaultKey], row: MailingList) -> Details:
    key = keys.get(row.content_key_id)
    if key is None:
        return Details()
    return Details(**json.loads(vault.open(key, row.details_sealed, f"mailing-list:{row.id}")))


def list_json(vault: Vault, keys: dict[str, VaultKey], row: MailingList,
              members: int) -> dict[str, Any]:
    details = _details(vault, keys, row)
    return {"access_level": row.access_level, "address": row.address,
            "created_at": format_rfc2822(row.created_at), "description": details.description,
            "members_count": members, "name": details.name,
            "reply_preference": row.reply_preference}


def _counts(session: Session, list_ids: list[str]) -> dict[str, int]:
    if not list_ids:
        return {}
    return dict(session.execute(
        select(ListMember.list_id, func.count()).where(ListMember.list_id.in_(list_ids))
        .group_by(ListMember.list_id)).all())


def as_json(session: Session, vault: Vault, rows: list[MailingList]) -> list[dict[str, Any]]:
    keys = vault.keys(session, (r.content_key_id for r in rows))
    counts = _counts(session, [r.id for r in rows])
    return [list_json(vault, keys, r, counts.get(r.id, 0)) for r in rows]


def one_json(session: Session, vault: Vault, row: MailingList) -> dict[str, Any]:
    return as_json(session, vault, [row])[0]


def find_list(session: Session, account_id: str, address: str) -> MailingList | None:
    """The account's list at this address, or None."""
    return session.scalar(select(MailingList).where(
        MailingList.account_id == account_id,
        MailingList.address == normalize_address(address)))


def lists_named(session: Session, account_id: str,
                addresses: Iterable[str]) -> dict[str, MailingList]:
    """The account's lists among these addresses, by normalised address (one query per 500)."""
    wanted = sorted({normalize_address(a) for a in addresses})
    found: dict[str, MailingList] = {}
    for start in range(0, len(wanted), 500):
        found.update({row.address: row for row in session.scalars(select(MailingList).where(
            MailingList.account_id == account_id,
            MailingList.address.in_(wanted[start:start + 500])))})
    return found


def get_list(session: Session, account_id: str, address: str,
             message: str = LIST_NOT_FOUND) -> MailingList:
    row = find_list(session, account_id, address)
    if row is None:
        raise NotFound(message.format(address))
    return row


def _list_domain(session: Session, account_id: str, address: Address) -> Domain:
    """The account's domain the list's address is on: Mailgun receives a list's mail at its
    address, so it must be on a domain of the account (404 as for any unknown domain)."""
    return owned_domain(session, account_id, address.email.rpartition("@")[2], with_keys=False)


def create(session: Session, vault: Vault, account_id: str, fields: dict[str, str],
           now: float) -> dict[str, Any]:
    address = _address(fields.get("address"))
    access = _choice(fields.get("access_level"), ACCESS_LEVELS, ACCESS_INVALID) or "readonly"
    reply = _choice(fields.get("reply_preference"), REPLY_PREFERENCES,
                    REPLY_INVALID) or "list"
    details = Details(name=text_field(fields, "name") or address.name,
                      description=text_field(fields, "description") or "")
    domain = _list_domain(session, account_id, address)
    if find_list(session, account_id, address.email) is not None:
        raise BadRequest(LIST_EXISTS)
    key = vault.new_content_key(session, account_id)
    row = MailingList(id=new_id(), account_id=account_id, domain_id=domain.id,
                      address=normalize_address(address.email), access_level=access,
                      reply_preference=reply, content_key_id=key.id, created_at=now,
                      details_sealed=b"")
    row.details_sealed = _seal_details(vault, key, row.id, details)
    session.add(row)
    session.flush()
    return {"list": list_json(vault, {key.id: key}, row, 0), "message": CREATED}


def update_list(session: Session, vault: Vault, account_id: str, address: str,
                fields: dict[str, str]) -> dict[str, Any]:
    row = get_list(session, account_id, address)
    access = _choice(fields.get("access_level"), ACCESS_LEVELS, ACCESS_INVALID)
    # Mailgun's documented field is reply_preference; its OpenAPI also names reply_reference.
    reply = _choice(fields.get("reply_preference", fields.get("reply_reference")),
                    REPLY_PREFERENCES, REPLY_INVALID)
    if fields.get("address"):
        new = _address(fields["address"])
        if normalize_address(new.email) != row.address:
            row.domain_id = _list_domain(session, account_id, new).id
            if find_list(session, account_id, new.email) is not None:
                raise BadRequest(LIST_EXISTS)
            row.address = normalize_address(new.email)
    row.access_level = access or row.access_level
    row.reply_preference = reply or row.reply_preference
    name, description = text_field(fields, "name"), text_field(fields, "description")
    if name is not None or description is not None:
        keys = vault.keys(session, [row.content_key_id])
        old = _details(vault, keys, row)
        key = keys[row.content_key_id]
        row.details_sealed = _seal_details(vault, key, row.id, Details(
            name=old.name if name is None else name,
            description=old.description if description is None else description))
    session.flush()
    return {"list": one_json(session, vault, row), "message": UPDATED}


def delete_list(session: Session, vault: Vault, account_id: str, address: str) -> dict:
    row = get_list(session, account_id, address)
    session.execute(delete(ListMember).where(ListMember.list_id == row.id)
                    .execution_options(synchronize_session=False))
    key_id = row.content_key_id
    session.delete(row)
    session.flush()
    session.execute(delete(VaultKey).where(VaultKey.id == key_id)
                    .execution_options(synchronize_session=False))
    vault.forget(key_id)
    return {"address": row.address, "message": REMOVED}


def listing(session: Session, vault: Vault, account_id: str, *, limit: int, skip: int,
            address: str | None) -> dict[str, Any]:
    """`GET /v3/lists`: Mailgun's `total_count` and a page by `skip` and `limit`."""
    where: list[ColumnElement[bool]] = [MailingList.account_id == account_id]
    if address:
        where.append(MailingList.address == normalize_address(address))
    total = session.scalar(select(func.count()).select_from(MailingList).where(*where)) or 0
    rows = list(session.scalars(select(MailingList).where(*where)
                                .order_by(MailingList.address).offset(skip).limit(limit)))
    return {"total_count": total, "items": as_json(session, vault, rows)}


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    first: str | None = None  # the pivots of the neighbouring pages: the first and last item's
    last: str | None = None
    # Members: the first and last item's place in the order (the links carry it, so a
    # pivot deleted meanwhile still says where the next page starts).
    first_position: int | None = None
    last_position: int | None = None


PAGES = (None, "first", "last", "next", "prev", "previous")


def _direction(page: str | None) -> str:
    if page not in PAGES:
        raise BadRequest(PAGE_INVALID)
    if page is None or page == "first":
        return "first"
    return "prev" if page == "previous" else page


def pages(session: Session, vault: Vault, account_id: str, *, limit: int,
          page: str | None, pivot: str | None) -> Page:
    """`GET /v3/lists/pages`: lists in address order, a page after or before the pivot."""
    direction = _direction(page)
    query = select(MailingList).where(MailingList.account_id == account_id)
    key = MailingList.address
    if direction == "next" and pivot:
        query = query.where(key > normalize_address(pivot))
    elif direction == "prev" and pivot:
        query = query.where(key < normalize_address(pivot))
    backwards = direction in ("last", "prev")
    rows = list(session.scalars(query.order_by(key.desc() if backwards else key).limit(limit)))
    if backwards:
        rows.reverse()
    items = as_json(session, vault, rows)
    return Page(items, rows[0].address if rows else pivot, rows[-1].address if rows else pivot)


# -- members -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """A member as given or as read back."""

    address: str
    name: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    subscribed: bool = True
    id: int = 0

    def json(self) -> dict[str, Any]:
        return {"address": self.address, "name": self.name, "subscribed": self.subscribed,
                "vars": self.vars}

    def formatted(self) -> str:
        return Address(self.name, self.address).formatted()


def _seal_member(vault: Vault, key: VaultKey, list_id: str, member: Member) -> bytes:
    return vault.seal(key, json.dumps({"address": member.address, "name": member.name,
                                       "vars": member.vars}).encode(), f"list-member:{list_id}")


def _open_member(vault: Vault, keys: dict[str, VaultKey], row: ListMember) -> Member | None:
    key = keys.get(row.subject_key_id)
    if key is None:  # erased
        return None
    doc = json.loads(vault.open(key, row.member_sealed, f"list-member:{row.list_id}"))
    return Member(doc["address"], doc["name"], doc["vars"], row.subscribed, row.id)


def _opened(session: Session, vault: Vault, rows: list[ListMember]) -> list[Member]:
    keys = vault.keys(session, (r.subject_key_id for r in rows))
    return [m for m in (_open_member(vault, keys, r) for r in rows) if m is not None]


def member_from(value: Any, *, subscribed: bool = True) -> Member:
    """One member of a form, a members.json item (an address, or an object) or a CSV row."""
    if isinstance(value, str):
        value = {"address": value}
    if not isinstance(value, dict) or not isinstance(value.get("address"), str):
        raise BadRequest(MEMBERS_INVALID)
    address = _address(value["address"])
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest(MEMBERS_INVALID)
    name = header_text(name if name is not None else address.name).strip()
    if len(name) > MAX_DISPLAY_NAME_CHARS or not is_text(name):
        raise BadRequest(ADDRESS_INVALID.format("name"))
    return Member(address.email, name, _vars(value.get("vars")),
                  _flag(value.get("subscribed"), subscribed))


def _rows_by_index(session: Session, list_id: str,
                   indexes: list[str]) -> dict[str, ListMember]:
    found: dict[str, ListMember] = {}
    for start in range(0, len(indexes), 500):
        found.update({row.address_index: row for row in session.scalars(select(ListMember).where(
            ListMember.list_id == list_id,
            ListMember.address_index.in_(indexes[start:start + 500])))})
    return found


def add_members(session: Session, vault: Vault, row: MailingList, members: list[Member], *,
                upsert: bool, now: float, fail_on_existing: bool = False) -> int:
    """Add these members (the last of any address given twice); an existing one is updated
    with `upsert`, else left as it is (or, adding one, a 400). How many were written."""
    unique = {normalize_address(m.address): m for m in members}
    if not unique:
        return 0
    indexes = {vault.blind_index(row.account_id, a): a for a in unique}
    existing = _rows_by_index(session, row.id, list(indexes))
    if existing and fail_on_existing and not upsert:
        raise BadRequest(MEMBER_EXISTS.format(next(iter(unique.values())).address))
    keys = vault.subjects(session, row.account_id, unique)
    inserts, written = [], 0
    for index, address in indexes.items():
        member, key = unique[address], keys[address]
        sealed = _seal_member(vault, key, row.id, member)
        old = existing.get(index)
        if old is None:
            inserts.append({"list_id": row.id, "account_id": row.account_id,
                            "address_index": index, "subject_key_id": key.id,
                            "member_sealed": sealed, "subscribed": member.subscribed,
                            "created_at": now})
        elif upsert:
            old.member_sealed, old.subject_key_id = sealed, key.id
            old.subscribed = member.subscribed
        else:
            continue
        written += 1
    if inserts:
        session.execute(table(ListMember).insert(), inserts)
    session.flush()
    return written


def _member_row(session: Session, vault: Vault, row: MailingList, address: str) -> ListMember:
    found = session.scalar(select(ListMember).where(
        ListMember.list_id == row.id,
        ListMember.address_index == vault.blind_index(row.account_id, address)))
    if found is None:
        raise NotFound(MEMBER_NOT_FOUND.format(address, row.address))
    return found


def get_member(session: Session, vault: Vault, row: MailingList, address: str) -> Member:
    member = _opened(session, vault, [_member_row(session, vault, row, address)])
    if not member:
        raise NotFound(MEMBER_NOT_FOUND.format(address, row.address))
    return member[0]


def add_member(session: Session, vault: Vault, row: MailingList, fields: dict[str, str],
               now: float) -> dict[str, Any]:
    """`POST /members`: one member; with `upsert=yes` an existing one is updated (fields
    not given kept: an empty name or vars count as not given, as mailgun-go's
    CreateMember(merge) sends `name=""` and `vars=null` always), else an existing address
    is a 400."""
    given = member_from({k: v for k, v in fields.items()
                         if k in ("address", "name", "vars", "subscribed")})
    upsert = flag(fields.get("upsert"))
    if upsert:
        try:
            old = get_member(session, vault, row, given.address)
        except NotFound:
            old = None
        if old is not None:
            given = Member(given.address,
                           given.name if fields.get("name") else old.name,
                           old.vars if _no_vars(fields.get("vars")) else given.vars,
                           given.subscribed if fields.get("subscribed") else old.subscribed)
    add_members(session, vault, row, [given], upsert=upsert, now=now, fail_on_existing=True)
    return {"member": given.json(), "message": MEMBER_CREATED}


def update_member(session: Session, vault: Vault, row: MailingList, address: str,
                  fields: dict[str, str]) -> dict[str, Any]:
    """`PUT /members/{address}`: the fields given change, the others stay (a new `address`
    moves the membership to that address's subject)."""
    found = _member_row(session, vault, row, address)
    old = get_member(session, vault, row, address)
    new_address = _address(fields["address"]).email if fields.get("address") else old.address
    member = Member(
        new_address,
        header_text(fields["name"]).strip() if fields.get("name") is not None else old.name,
        _vars(fields["vars"]) if fields.get("vars") is not None else old.vars,
        _flag(fields.get("subscribed"), old.subscribed))
    if normalize_address(new_address) != normalize_address(old.address):
        index = vault.blind_index(row.account_id, new_address)
        if _rows_by_index(session, row.id, [index]):
            raise BadRequest(MEMBER_EXISTS.format(new_address))
        found.address_index = index
    key = vault.subject(session, row.account_id, new_address)
    found.subject_key_id, found.subscribed = key.id, member.subscribed
    found.member_sealed = _seal_member(vault, key, row.id, member)
    session.flush()
    return {"member": member.json(), "message": MEMBER_UPDATED}


def delete_member(session: Session, vault: Vault, row: MailingList, address: str) -> dict:
    found = _member_row(session, vault, row, address)
    session.delete(found)
    session.flush()
    return {"member": {"address": address}, "message": MEMBER_DELETED}


def _member_filter(row: MailingList, subscribed: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [ListMember.list_id == row.id]
    if subscribed is not None and subscribed != "":
        where.append(ListMember.subscribed == flag(subscribed))
    return where


def members_listing(session: Session, vault: Vault, row: MailingList, *, limit: int,
                    skip: int, address: str | None, subscribed: str | None) -> dict[str, Any]:
    where = _member_filter(row, subscribed)
    if address:
        where.append(ListMember.address_index == vault.blind_index(row.account_id, address))
    total = session.scalar(select(func.count()).select_from(ListMember).where(*where)) or 0
    rows = list(session.scalars(select(ListMember).where(*where).order_by(ListMember.id)
                                .offset(skip).limit(limit)))
    return {"total_count": total, "items": [m.json() for m in _opened(session, vault, rows)]}


def members_page(session: Session, vault: Vault, row: MailingList, *, limit: int,
                 page: str | None, pivot: str | None, subscribed: str | None,
                 position: int | None = None) -> Page:
    """Members in the order they were added, a page after or before the pivot: our links'
    `position` (a place in that order, there even when its member is gone), else the
    member at address `pivot` (as Mailgun's links name it; found by its blind index). A
    pivot that is neither gives an empty page, never the first again (an SDK's iterator
    would go round for ever)."""
    direction = _direction(page)
    where = _member_filter(row, subscribed)
    if direction in ("next", "prev") and (pivot or position):
        at = position or session.scalar(select(ListMember.id).where(
            ListMember.list_id == row.id,
            ListMember.address_index == vault.blind_index(row.account_id, pivot or "")))
        if at is None:
            return Page([], pivot, pivot)
        where.append(ListMember.id > at if direction == "next" else ListMember.id < at)
    backwards = direction in ("last", "prev")
    rows = list(session.scalars(select(ListMember).where(*where).order_by(
        ListMember.id.desc() if backwards else ListMember.id).limit(limit)))
    if backwards:
        rows.reverse()
    members = _opened(session, vault, rows)
    return Page([m.json() for m in members], members[0].address if members else pivot,
                members[-1].address if members else pivot,
                rows[0].id if rows else position, rows[-1].id if rows else position)


def bulk_json(session: Session, vault: Vault, row: MailingList, fields: dict[str, str],
              now: float) -> dict[str, Any]:
    """`POST /members.json`: up to 1,000 members, a JSON array of addresses or objects."""
    text = fields.get("members")
    if text is None or not text.strip():
        raise BadRequest(MEMBERS_MISSING)
    given = json_value(text)
    if not isinstance(given, list):
        raise BadRequest(MEMBERS_INVALID)
    if len(given) > MAX_BATCH:
        raise BadRequest(TOO_MANY_MEMBERS)
    members = [member_from(m) for m in given]
    add_members(session, vault, row, members, upsert=flag(fields.get("upsert")), now=now)
    return {"list": one_json(session, vault, row), "message": UPDATED}


def csv_members(data: bytes, *, subscribed: bool) -> list[Member]:
    """A members.csv upload: a header row naming `address` (and `name`, `vars`,
    `subscribed`), or one address per row; at most 1,000 members, 5 MB."""
    if len(data) > MAX_CSV_BYTES:
        raise BadRequest(CSV_TOO_LARGE)
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace",
                            newline="")
    rows = (r for r in csv.reader(text) if any(cell.strip() for cell in r))
    records: list[Any] = []
    try:  # a row at a time, and no further than one row past the limit
        first = next(rows, None)
        header = [cell.strip().lower() for cell in first] if first else []
        if first is not None and "address" not in header:
            records.append(first[0])
        for row in rows:
            if len(records) >= MAX_BATCH:
                raise BadRequest(TOO_MANY_MEMBERS)
            records.append(dict(zip(header, row, strict=False)) if "address" in header
                           else row[0])
    except csv.Error as exc:
        raise BadRequest(CSV_INVALID.format(exc)) from exc
    return [member_from(r, subscribed=subscribed) for r in records]


def bulk_csv(session: Session, vault: Vault, row: MailingList, members: list[Member], *,
             upsert: bool, now: float) -> dict[str, Any]:
    add_members(session, vault, row, members, upsert=upsert, now=now)
    return {"list": one_json(session, vault, row), "message": UPDATED}


# -- sending to a list ---------------------------------------------------------------------

MAX_FANOUT = 10_000  # a list's copies per message: one transaction writes them all


def subscribed_members(session: Session, vault: Vault, row: MailingList, *,
                       limit: int = MAX_FANOUT) -> list[Member]:
    """The list's subscribed members in the order they joined, at most `limit`."""
    rows = list(session.scalars(select(ListMember).where(
        ListMember.list_id == row.id, ListMember.subscribed.is_(True))
        .order_by(ListMember.id).limit(limit)))
    return _opened(session, vault, rows)


def is_member(session: Session, vault: Vault, row: MailingList, address: str) -> bool:
    return session.scalar(select(ListMember.id).where(
        ListMember.list_id == row.id,
        ListMember.address_index == vault.blind_index(row.account_id, address))) is not None


def unsubscribe_base(public_url: str, domain: Domain) -> str:
    """Where list-unsubscribe links point: as tracking links do, the domain's tracking host
    (`email.<domain>`, a CNAME to Mailhaven) unless the operator set one public URL."""
    return public_url or f"{domain.web_scheme or 'http'}://{domain.web_prefix or 'email'}." \
                         f"{domain.name}"


def unsubscribe_url(tokens: Vault | TokenMac, base: str, member_id: int) -> str:
    """A signed link that unsubscribes one membership; it names the row, not the address."""
    body = base64.urlsafe_b64encode(str(member_id).encode()).rstrip(b"=").decode()
    return f"{base}/lists/unsubscribe/{body}.{tokens.token_mac('list:' + body, 32)}"


def _token_member(vault: Vault, token: str) -> int | None:
    shape = _TOKEN.fullmatch(token)
    if shape is None:
        return None
    body, mac = shape.groups()
    if not hmac.compare_digest(vault.token_mac("list:" + body, 32).encode(), mac.encode()):
        return None
    try:
        return int(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode())
    except ValueError:
        return None


def token_is_valid(vault: Vault, token: str) -> bool:
    return _token_member(vault, token) is not None


def unsubscribe(session: Session, vault: Vault, token: str) -> bool:
    """Unsubscribe the membership a link names (`subscribed=false`); False for a link we did
    not sign or a membership that is gone."""
    member_id = _token_member(vault, token)
    if member_id is None:
        return False
    changed = session.execute(update(ListMember).where(ListMember.id == member_id)
                              .values(subscribed=False)
                              .execution_options(synchronize_session=False))
    return bool(changed.rowcount)  # type: ignore[attr-defined]


# -- privacy -------------------------------------------------------------------------------

def erase_memberships(session: Session, account_id: str, index: str) -> int:
    """Erasure: every membership of the subject with this blind index goes."""
    result = session.execute(delete(ListMember).where(
        ListMember.account_id == account_id, ListMember.address_index == index)
        .execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


def exported_memberships(session: Session, vault: Vault, account_id: str,
                         index: str | None) -> Iterable[dict[str, Any]]:
    """An access export's memberships: the subject's (by index), or all the account's."""
    query = (select(ListMember, MailingList.address)
             .join(MailingList, MailingList.id == ListMember.list_id)
             .where(ListMember.account_id == account_id).order_by(ListMember.id))
    if index is not None:
        query = query.where(ListMember.address_index == index)
    rows = session.execute(query).all()
    keys = vault.keys(session, (r.subject_key_id for r, _ in rows))
    for row, list_address in rows:
        member = _open_member(vault, keys, row)
        if member is not None:
            yield {"list": list_address, **member.json(), "created_at": row.created_at}
