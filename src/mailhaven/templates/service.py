"""Mailgun's Templates API as plain functions: a domain's templates (by name) and their
versions (by tag, one active), Mailgun's limits, shapes and messages, and the template a
send names. What the customer wrote is sealed under each template's content key; deleting
that key deletes the template and its versions (ON DELETE CASCADE), and nothing of it is
left readable anywhere, backups included."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from mailhaven.addresses import header_text, mailboxes
from mailhaven.clock import format_rfc2822
from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest, Conflict, NotFound
from mailhaven.forms import (
    MAX_TEXT_CHARS,
    NOT_TEXT,
    TEXT_TOO_LONG,
    flag,
    is_text,
    json_object,
    text_field,
)
from mailhaven.messages import handlebars
from mailhaven.messages.document import StoredTemplate
from mailhaven.storage.base import table
from mailhaven.templates.models import Template, TemplateVersion
from mailhaven.vault import Vault, VaultKey

MAX_TEMPLATES = 100  # per domain (Mailgun's limits, api-templates)
MAX_VERSIONS = 10  # per template
MAX_TEMPLATE_BYTES = 100 * 1024  # one version's content
MAX_LABEL_CHARS = 255  # a name or a tag
MAX_HEADER_CHARS = 998  # a stored header's value: one line of RFC 5322
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
ENGINE = "handlebars"
INITIAL_TAG = "initial"
# Letters (any script), digits and .-_~, as Mailgun allows in names and tags.
_LABEL = re.compile(r"[\w.\-~]+")
HEADER_NAMES = {"from": "From", "subject": "Subject", "reply-to": "Reply-To"}

STORED = "template has been stored"
VERSION_STORED = "new version of the template has been stored"
UPDATED = "template has been updated"
DELETED = "template has been deleted"
ALL_DELETED = "templates have been deleted"
VERSION_UPDATED = "version has been updated"
VERSION_DELETED = "version has been deleted"
VERSION_COPIED = "version has been copied"
NOT_FOUND = "template not found"
VERSION_NOT_FOUND = "template version not found"
NAME_MISSING = "Missing mandatory parameter: name"
NAME_INVALID = "Invalid parameter: name is invalid"
TEMPLATE_MISSING = "Missing mandatory parameter: template"
TAG_MISSING = "Missing mandatory parameter: tag"
TAG_INVALID = "Invalid parameter: tag is invalid"
NOTHING_TO_UPDATE = "No fields are provided to update"
ENGINE_UNSUPPORTED = "Invalid parameter: engine {} is not supported"
PAGE_INVALID = "Invalid parameter: page must be one of first, last, next, prev"
PIVOT_MISSING = "Invalid parameter: pivot "
TEMPLATE_EXISTS = "template {} already exists"
VERSION_EXISTS = "version {} already exists"
TOO_MANY_TEMPLATES = f"Maximum number of templates ({MAX_TEMPLATES}) per domain is reached"
TOO_MANY_VERSIONS = f"Maximum number of versions ({MAX_VERSIONS}) per template is reached"
TOO_LARGE = f"Invalid parameter: template is larger than {MAX_TEMPLATE_BYTES // 1024}KB"
NOT_HANDLEBARS = "Invalid parameter: template is not a valid handlebars template: {}"
HEADERS_INVALID = ("Invalid parameter: headers must be a JSON object of the From, Subject "
                   "and Reply-To headers, each a string")
HEADER_NOT_ADDRESS = "Invalid parameter: headers: {} is not a valid address"
HEADER_TOO_LONG = f"Invalid parameter: headers: {{}} is longer than {MAX_HEADER_CHARS} characters"
# A send's template (sending refuses the message with these).
SEND_NOT_FOUND = "template '{}' not found"
SEND_VERSION_NOT_FOUND = "template '{}' has no version '{}'"
SEND_NO_ACTIVE = "template '{}' has no active version: name one with t:version"


@dataclass(frozen=True)
class Details:
    """What the customer wrote about a template (sealed)."""

    description: str = ""
    created_by: str = ""


@dataclass(frozen=True)
class Content:
    """What the customer wrote in a version (sealed)."""

    template: str
    comment: str = ""
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    first: str | None  # the pivots of the neighbouring pages: the first and last item's
    last: str | None


# -- reading forms -------------------------------------------------------------------------

def _label(value: str, invalid: str) -> str:
    label = value.strip().lower()
    if not _is_label(label):
        raise BadRequest(invalid)
    return label


def _is_label(value: str) -> bool:
    """Whether it could name a template or a version: a send's that cannot (a NUL, which
    PostgreSQL refuses in a query) is looked for nowhere. (A URL's NUL is refused earlier.)"""
    return len(value) <= MAX_LABEL_CHARS and _LABEL.fullmatch(value) is not None


def _engine(fields: dict[str, str]) -> None:
    engine = fields.get("engine")
    if engine and engine.strip().lower() != ENGINE:
        raise BadRequest(ENGINE_UNSUPPORTED.format(engine))


def _source(value: str) -> str:
    """A version's content: at most 100 KB, and Handlebars we can render."""
    if not is_text(value):
        raise BadRequest(NOT_TEXT.format("template"))
    if len(value.encode()) > MAX_TEMPLATE_BYTES:
        raise BadRequest(TOO_LARGE)
    try:
        handlebars.compile_template(value)
    except handlebars.TemplateError as exc:
        raise BadRequest(NOT_HANDLEBARS.format(exc)) from exc
    return value


def _headers(value: str | None) -> dict[str, str] | None:
    """The `headers` JSON: From, Subject and Reply-To only (Mailgun's), the addresses
    well formed; None when not given."""
    if value is None or not value.strip():
        return None
    given = json_object(value)
    if given is None or not all(isinstance(v, str) for v in given.values()):
        raise BadRequest(HEADERS_INVALID)
    headers: dict[str, str] = {}
    for name, text in given.items():
        canonical = HEADER_NAMES.get(name.strip().lower())
        if canonical is None:
            raise BadRequest(HEADERS_INVALID)
        text = header_text(text).strip()
        if not is_text(text):
            raise BadRequest(HEADERS_INVALID)
        if len(text) > MAX_HEADER_CHARS:
            raise BadRequest(HEADER_TOO_LONG.format(canonical))
        if canonical != "Subject" and not _well_formed(text):
            raise BadRequest(HEADER_NOT_ADDRESS.format(canonical))
        headers[canonical] = text
    return headers


def _well_formed(addresses: str) -> bool:
    named = list(mailboxes([addresses]))
    return bool(named) and all(ok for _, ok in named)


# -- sealing -------------------------------------------------------------------------------

def _seal(vault: Vault, key: VaultKey, value: Details | Content, context: str) -> bytes:
    return vault.seal(key, json.dumps(value.__dict__).encode(), context)


def _details(vault: Vault, key: VaultKey, row: Template) -> Details:
    return Details(**json.loads(vault.open(key, row.details_sealed, f"template:{row.public_id}")))


def _content(vault: Vault, key: VaultKey, row: TemplateVersion) -> Content:
    return Content(**json.loads(vault.open(key, row.content_sealed,
                                           f"template-version:{row.public_id}")))


def _key(session: Session, row: Template) -> VaultKey:
    key = session.get(VaultKey, row.content_key_id)
    assert key is not None  # deleting the key deletes the template
    return key


# -- shapes --------------------------------------------------------------------------------

def _date(epoch: float) -> str:
    """Mailgun's template dates: `Wed, 29 Aug 2018 23:31:13 UTC` (whatever the locale)."""
    return format_rfc2822(epoch).removesuffix("GMT") + "UTC"


def template_json(row: Template, details: Details) -> dict[str, Any]:
    shown: dict[str, Any] = {"name": row.name, "description": details.description,
                             "createdAt": _date(row.created_at), "id": row.public_id}
    if details.created_by:
        shown["createdBy"] = details.created_by
    return shown


def version_json(row: TemplateVersion, content: Content) -> dict[str, Any]:
    return {"tag": row.tag, "template": content.template, "engine": ENGINE, "mjml": "",
            "createdAt": _date(row.created_at), "comment": content.comment,
            "active": row.active, "id": row.public_id, "headers": content.headers or {}}


# -- templates -----------------------------------------------------------------------------

def _named(domain: Domain, name: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Where the domain's template of that name is."""
    return Template.domain_id == domain.id, Template.name == name.strip().lower()


def _find(session: Session, domain: Domain, name: str, *, lock: bool = False) -> Template:
    query = select(Template).where(*_named(domain, name))
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def create(session: Session, vault: Vault, domain: Domain, fields: dict[str, str],
           now: float) -> dict[str, Any]:
    """`POST /v3/{domain}/templates`: a template, and its first version (active) when the
    form has `template`."""
    if not fields.get("name", "").strip():
        raise BadRequest(NAME_MISSING)
    name = _label(fields["name"], NAME_INVALID)
    details = Details(text_field(fields, "description") or "",
                      text_field(fields, "createdBy") or "")
    source = fields.get("template") or None
    version: tuple[str, Content] | None = None
    if source is not None:
        _engine(fields)
        version = (_label(fields.get("tag") or INITIAL_TAG, TAG_INVALID),
                   Content(_source(source), text_field(fields, "comment") or "",
                           _headers(fields.get("headers"))))
    session.execute(select(Domain.id).where(Domain.id == domain.id).with_for_update())
    if session.scalar(select(Template.id).where(*_named(domain, name))) is not None:
        raise Conflict(TEMPLATE_EXISTS.format(name))
    count = session.scalar(select(func.count()).where(Template.domain_id == domain.id)) or 0
    if count >= MAX_TEMPLATES:
        raise BadRequest(TOO_MANY_TEMPLATES)
    key = vault.new_content_key(session, domain.account_id)
    public_id = str(uuid.uuid4())
    row = Template(public_id=public_id, account_id=domain.account_id, domain_id=domain.id,
                   name=name, content_key_id=key.id, created_at=now,
                   details_sealed=_seal(vault, key, details, f"template:{public_id}"))
    session.add(row)
    session.flush()
    shown = template_json(row, details)
    if version is not None:
        tag, content = version
        shown["version"] = version_json(_add_version(session, vault, key, row, tag, content,
                                                     active=True, now=now), content)
    return {"message": STORED, "template": shown}


def get(session: Session, vault: Vault, domain: Domain, name: str, *,
        active: bool) -> dict[str, Any]:
    """`GET …/templates/{name}`; with `active=yes`, its active version too."""
    row = _find(session, domain, name)
    key = _key(session, row)
    shown = template_json(row, _details(vault, key, row))
    if active:
        current = session.scalar(select(TemplateVersion).where(
            TemplateVersion.template_id == row.id, TemplateVersion.active))
        if current is not None:
            shown["version"] = version_json(current, _content(vault, key, current))
    return {"template": shown}


def describe(session: Session, vault: Vault, domain: Domain, name: str,
             fields: dict[str, str]) -> dict[str, Any]:
    """`PUT …/templates/{name}`: its description, the only thing that changes (an empty
    one is no change, as Mailgun has it)."""
    description = text_field(fields, "description")
    if not description:
        raise BadRequest(NOTHING_TO_UPDATE)
    row = _find(session, domain, name, lock=True)
    key = _key(session, row)
    details = _details(vault, key, row)
    row.details_sealed = _seal(vault, key, Details(description, details.created_by),
                               f"template:{row.public_id}")
    return {"message": UPDATED, "template": {"name": row.name}}


def remove(session: Session, vault: Vault, domain: Domain, name: str) -> dict[str, Any]:
    """`DELETE …/templates/{name}`, all its versions with it."""
    row = _find(session, domain, name)
    name, key_id = row.name, row.content_key_id
    _delete_keys(session, [key_id])
    vault.forget(key_id)
    return {"message": DELETED, "template": {"name": name}}


def remove_all(session: Session, vault: Vault, domain: Domain) -> dict[str, Any]:
    """`DELETE /v3/{domain}/templates`."""
    for key_id in _domain_keys(session, domain):
        vault.forget(key_id)
    domain_deleted(session, domain)
    return {"message": ALL_DELETED}


def domain_deleted(session: Session, domain: Domain) -> None:
    """Delete the domain's templates with their keys (a domain's deletion runs this: the
    rows would go by cascade, but deleting the keys is what erases them)."""
    _delete_keys(session, _domain_keys(session, domain))


def _domain_keys(session: Session, domain: Domain) -> list[str]:
    return list(session.scalars(select(Template.content_key_id)
                                .where(Template.domain_id == domain.id)))


def _delete_keys(session: Session, key_ids: list[str]) -> None:
    """Delete these keys, and the templates they seal with them (ON DELETE CASCADE)."""
    if not key_ids:
        return
    session.execute(delete(VaultKey).where(VaultKey.id.in_(key_ids))
                    .execution_options(synchronize_session=False))
    session.expire_all()  # the templates went by cascade: no stale object may be read


def listing(session: Session, vault: Vault, domain: Domain, *, page: str | None,
            pivot: str | None, limit: int) -> Page:
    """A page of the domain's templates, in the order they were created."""
    pivot_id = _pivot(session, page, pivot,
                      select(Template.id).where(*_named(domain, pivot or "")))
    rows = _paged(session, select(Template).where(Template.domain_id == domain.id),
                  Template.id, page, pivot_id, limit)
    keys = Vault.keys(session, [r.content_key_id for r in rows])
    items = [template_json(r, _details(vault, keys[r.content_key_id], r)) for r in rows]
    return Page(items, rows[0].name if rows else pivot, rows[-1].name if rows else pivot)


def summaries(session: Session, domain: Domain) -> dict[str, tuple[int, str | None]]:
    """Each of the domain's templates by name: how many versions it has, and its active
    version's tag (None: none active); nothing sealed is opened."""
    rows = session.execute(
        select(Template.name, TemplateVersion.tag, TemplateVersion.active)
        .join(TemplateVersion, TemplateVersion.template_id == Template.id, isouter=True)
        .where(Template.domain_id == domain.id)).all()
    found: dict[str, tuple[int, str | None]] = {}
    for name, tag, active in rows:
        count, current = found.get(name, (0, None))
        found[name] = (count + (tag is not None), tag if active else current)
    return found


def _pivot(session: Session, page: str | None, pivot: str | None,
           query: Any) -> int | None:
    """The id of the page's pivot (next and prev pages start after or before it); -1 when
    it names nothing (a deleted template): the page is empty."""
    if page not in (None, "", "first", "last", "next", "prev", "previous"):
        raise BadRequest(PAGE_INVALID)
    if page not in ("next", "prev", "previous"):
        return None
    if not pivot:
        raise BadRequest(PIVOT_MISSING)
    found = session.scalar(query)
    return -1 if found is None else int(found)


def _paged(session: Session, query: Any, order: Any, page: str | None, pivot_id: int | None,
           limit: int) -> list[Any]:
    if pivot_id == -1:
        return []
    if page == "next":
        query = query.where(order > pivot_id)
    elif page in ("prev", "previous"):
        query = query.where(order < pivot_id)
    backwards = page in ("last", "prev", "previous")
    rows = list(session.scalars(query.order_by(order.desc() if backwards else order)
                                .limit(limit)))
    return rows[::-1] if backwards else rows


# -- versions ------------------------------------------------------------------------------

def _version(session: Session, template: Template, tag: str) -> TemplateVersion:
    """One of the template's versions (the template's row lock guards changes to it)."""
    row = session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_id == template.id, TemplateVersion.tag == tag.strip().lower()))
    if row is None:
        raise NotFound(VERSION_NOT_FOUND)
    return row


def _add_version(session: Session, vault: Vault, key: VaultKey, template: Template,
                 tag: str, content: Content, *, active: bool, now: float) -> TemplateVersion:
    if active:
        _deactivate(session, template)
    public_id = str(uuid.uuid4())
    row = TemplateVersion(public_id=public_id, template_id=template.id, tag=tag,
                          active=active, size=len(content.template.encode()), created_at=now,
                          content_sealed=_seal(vault, key, content,
                                               f"template-version:{public_id}"))
    session.add(row)
    session.flush()
    return row


def _deactivate(session: Session, template: Template) -> None:
    session.execute(update(table(TemplateVersion))
                    .where(TemplateVersion.template_id == template.id,
                           TemplateVersion.active)
                    .values(active=False))
    session.expire_all()


def _room_for_a_version(session: Session, template: Template) -> bool:
    count = session.scalar(select(func.count()).where(
        TemplateVersion.template_id == template.id)) or 0
    return count < MAX_VERSIONS


def create_version(session: Session, vault: Vault, domain: Domain, name: str,
                   fields: dict[str, str], now: float) -> dict[str, Any]:
    """`POST …/templates/{name}/versions`: active if `active=yes`, or if it is the first."""
    if not fields.get("template"):
        raise BadRequest(TEMPLATE_MISSING)
    if not fields.get("tag", "").strip():
        raise BadRequest(TAG_MISSING)
    tag = _label(fields["tag"], TAG_INVALID)
    _engine(fields)
    content = Content(_source(fields["template"]), text_field(fields, "comment") or "",
                      _headers(fields.get("headers")))
    template = _find(session, domain, name, lock=True)
    if session.scalar(select(TemplateVersion.id).where(
            TemplateVersion.template_id == template.id,
            TemplateVersion.tag == tag)) is not None:
        raise Conflict(VERSION_EXISTS.format(tag))
    if not _room_for_a_version(session, template):
        raise BadRequest(TOO_MANY_VERSIONS)
    first = session.scalar(select(TemplateVersion.id).where(
        TemplateVersion.template_id == template.id).limit(1)) is None
    key = _key(session, template)
    row = _add_version(session, vault, key, template, tag, content,
                       active=first or flag(fields.get("active")), now=now)
    shown = template_json(template, _details(vault, key, template))
    shown["version"] = version_json(row, content)
    return {"message": VERSION_STORED, "template": shown}


def get_version(session: Session, vault: Vault, domain: Domain, name: str,
                tag: str) -> dict[str, Any]:
    template = _find(session, domain, name)
    row = _version(session, template, tag)
    key = _key(session, template)
    shown = template_json(template, _details(vault, key, template))
    shown["version"] = version_json(row, _content(vault, key, row))
    return {"template": shown}


def update_version(session: Session, vault: Vault, domain: Domain, name: str, tag: str,
                   fields: dict[str, str]) -> dict[str, Any]:
    """`PUT …/versions/{tag}`: its content, comment, headers; `active=yes` makes it the
    active one. Fields not given stay as they are."""
    given = [f for f in ("template", "comment", "active", "headers") if fields.get(f)]
    if not given:
        raise BadRequest(NOTHING_TO_UPDATE)
    source = _source(fields["template"]) if fields.get("template") else None
    headers = _headers(fields.get("headers"))
    comment = text_field(fields, "comment")
    template = _find(session, domain, name, lock=True)
    row = _version(session, template, tag)
    key = _key(session, template)
    content = _content(vault, key, row)
    content = Content(source if source is not None else content.template,
                      comment if comment else content.comment,
                      headers if headers is not None else content.headers)
    if flag(fields.get("active")) and not row.active:
        _deactivate(session, template)
        row.active = True
    row.content_sealed = _seal(vault, key, content, f"template-version:{row.public_id}")
    row.size = len(content.template.encode())
    return {"message": VERSION_UPDATED, "template": {"name": template.name,
                                                     "version": {"tag": row.tag}}}


def remove_version(session: Session, domain: Domain, name: str, tag: str) -> dict[str, Any]:
    """`DELETE …/versions/{tag}`. Deleting the active version leaves none active: a send
    must then name a version (t:version) until another is made active."""
    template = _find(session, domain, name, lock=True)
    row = _version(session, template, tag)
    shown = {"name": template.name, "version": {"tag": row.tag}}
    session.delete(row)
    return {"message": VERSION_DELETED, "template": shown}


def copy_version(session: Session, vault: Vault, domain: Domain, name: str, tag: str,
                 new_tag: str, comment: str | None, now: float) -> dict[str, Any]:
    """`PUT …/versions/{tag}/copy/{new_tag}`: a new version with the same content (and
    `comment` if given); a version already named `new_tag` is overwritten, and stays
    active if it was."""
    target_tag = _label(new_tag, TAG_INVALID)
    if comment is not None and len(comment) > MAX_TEXT_CHARS:
        raise BadRequest(TEXT_TOO_LONG.format("comment"))
    template = _find(session, domain, name, lock=True)
    source = _version(session, template, tag)
    key = _key(session, template)
    content = _content(vault, key, source)
    if comment is not None:
        content = Content(content.template, comment, content.headers)
    existing = session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_id == template.id, TemplateVersion.tag == target_tag))
    if existing is not None:
        existing.content_sealed = _seal(vault, key, content,
                                        f"template-version:{existing.public_id}")
        existing.size = len(content.template.encode())
        existing.created_at = now
        row = existing
    elif not _room_for_a_version(session, template):
        raise BadRequest(TOO_MANY_VERSIONS)
    else:
        row = _add_version(session, vault, key, template, target_tag, content, active=False,
                           now=now)
    shown = version_json(row, content)
    return {"message": VERSION_COPIED, "version": shown, "template": shown}


def versions(session: Session, vault: Vault, domain: Domain, name: str, *, page: str | None,
             pivot: str | None, limit: int) -> tuple[dict[str, Any], Page]:
    """`GET …/templates/{name}/versions`: the template, and a page of its versions in the
    order they were created."""
    template = _find(session, domain, name)
    key = _key(session, template)
    pivot_id = _pivot(session, page, pivot, select(TemplateVersion.id).where(
        TemplateVersion.template_id == template.id,
        TemplateVersion.tag == (pivot or "").strip().lower()))
    rows = _paged(session, select(TemplateVersion).where(
        TemplateVersion.template_id == template.id), TemplateVersion.id, page, pivot_id, limit)
    items = [version_json(r, _content(vault, key, r)) for r in rows]
    return (template_json(template, _details(vault, key, template)),
            Page(items, rows[0].tag if rows else pivot, rows[-1].tag if rows else pivot))


# -- sending -------------------------------------------------------------------------------

def for_send(session: Session, vault: Vault, domain: Domain, name: str, tag: str | None, *,
             text: bool, variables: dict[str, Any]) -> StoredTemplate:
    """The template a send names (`template`, `t:version`), as it is now: the message
    keeps this copy, so a later edit or deletion doesn't change mail already accepted."""
    row = session.scalar(select(Template).where(*_named(domain, name))) \
        if _is_label(name.strip().lower()) else None
    if row is None:
        raise BadRequest(SEND_NOT_FOUND.format(name))
    query = select(TemplateVersion).where(TemplateVersion.template_id == row.id)
    if tag and not _is_label(tag.strip().lower()):
        version = None
    else:
        version = session.scalar(query.where(TemplateVersion.tag == tag.strip().lower())
                                 if tag else query.where(TemplateVersion.active))
    if version is None:
        raise BadRequest(SEND_VERSION_NOT_FOUND.format(name, tag) if tag
                         else SEND_NO_ACTIVE.format(name))
    content = _content(vault, _key(session, row), version)
    return StoredTemplate(name=row.name, version=version.tag, source=content.template,
                          headers=content.headers or {}, text=text, variables=variables)


# -- exports -------------------------------------------------------------------------------

def exported(session: Session, vault: Vault, account_id: str) -> Iterator[dict[str, Any]]:
    """Every template of the account with all its versions, opened (the account holder's
    access and portability export)."""
    query = (select(Template, Domain.name).join(Domain, Domain.id == Template.domain_id)
             .where(Template.account_id == account_id).order_by(Template.id))
    for row, domain in session.execute(query):
        key = _key(session, row)
        details = _details(vault, key, row)
        rows = session.scalars(select(TemplateVersion).where(
            TemplateVersion.template_id == row.id).order_by(TemplateVersion.id))
        yield {"id": row.public_id, "domain": domain, "name": row.name,
               "description": details.description, "created_by": details.created_by,
               "created_at": row.created_at,
               "versions": [version_json(v, _content(vault, key, v)) for v in rows]}
