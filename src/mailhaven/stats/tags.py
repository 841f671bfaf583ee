"""A domain's tags: registered where events are counted, described, listed and deleted.

First and last use are not stored: they are the first and last hour of the tag's counters,
read through the counters' unique index (one index probe each). So an event writes to
`tags` only the first time one of its tags is seen, and never updates a tag row.
"""

from __future__ import annotations

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from mailhaven.clock import rfc3339_seconds
from mailhaven.errors import BadRequest, NotFound
from mailhaven.stats.models import StatCount, Tag
from mailhaven.storage.db import affected, insert_for
from mailhaven.vault.recognise import kept_clear

MAX_TAGS = 5000  # per domain, as Mailgun
MAX_LENGTH = 256  # the width of the tag columns; longer tags are counted by their start
NOT_FOUND = "Tag not found"
LIMIT_REACHED = f"Tag limit exceeded: a domain has at most {MAX_TAGS} tags"


def name(tag: str) -> str:
    return tag[:MAX_LENGTH]


def tracked(session: Session, domain_id: str, tags: set[str], new_ok: set[str]) -> set[str]:
    """Which of `tags` get counters: the domain's known tags, and those of `new_ok` it does
    not have yet, registered now while it is under MAX_TAGS. Past the limit a new tag is not
    tracked (the domain's own totals still count its messages); the count runs only when an
    unknown tag shows up."""
    known = set(session.scalars(select(Tag.tag).where(Tag.domain_id == domain_id,
                                                      Tag.tag.in_(tags))))
    new = sorted((tags & new_ok) - known)
    if not new:
        return known
    room = MAX_TAGS - _count(session, domain_id)
    new = new[:max(room, 0)]
    if new:  # sorted: concurrent first uses take the unique index's locks in one order
        session.execute(insert_for(session, Tag).on_conflict_do_nothing(),
                        [{"domain_id": domain_id, "tag": t, "description": ""} for t in new])
    return known | set(new)


def _count(session: Session, domain_id: str) -> int:
    return session.scalar(select(func.count()).where(Tag.domain_id == domain_id)) or 0


def _query() -> Select[str, str, int | None, int | None]:
    """Tag, description, first and last hour counted."""
    hours = [select(aggregate(StatCount.hour)).where(
        StatCount.domain_id == Tag.domain_id, StatCount.tag == Tag.tag).scalar_subquery()
        for aggregate in (func.min, func.max)]
    return select(Tag.tag, Tag.description, *hours)


def _as_json(tag: str, description: str, first: int | None, last: int | None) -> dict:
    item = {"tag": tag, "description": description}
    if first is not None and last is not None:  # a tag described before its first use
        item |= {"first-seen": rfc3339_seconds(first), "last-seen": rfc3339_seconds(last)}
    return item


def get(session: Session, domain_id: str, tag: str) -> dict:
    row = session.execute(_query().where(Tag.domain_id == domain_id,
                                         Tag.tag == name(tag))).first()
    if row is None:
        raise NotFound(NOT_FOUND)
    return _as_json(*row)


def page(session: Session, domain_id: str, *, limit: int, direction: str | None,
         pivot: str | None, prefix: str | None) -> list[dict]:
    """A page in tag order; `pivot` is the tag at the page's edge (Mailgun's `tag`)."""
    query = _query().where(Tag.domain_id == domain_id)
    if prefix:
        query = query.where(Tag.tag.startswith(prefix, autoescape=True))
    backward = direction in ("prev", "previous", "last")
    if direction in ("next", "prev", "previous") and pivot:
        query = query.where(Tag.tag < pivot if backward else Tag.tag > pivot)
    rows = session.execute(query.order_by(Tag.tag.desc() if backward else Tag.tag.asc())
                           .limit(limit)).all()
    return [_as_json(*row) for row in (rows[::-1] if backward else rows)]


def describe(session: Session, domain_id: str, tag: str, description: str | None) -> None:
    """Set a tag's description; a tag not used yet is created (as Mailgun's own mock does),
    within the domain's limit."""
    where = (Tag.domain_id == domain_id, Tag.tag == name(kept_clear(tag, "tag")))
    if session.scalar(select(Tag.id).where(*where)) is None:
        if _count(session, domain_id) >= MAX_TAGS:
            raise BadRequest(LIMIT_REACHED)
        session.execute(insert_for(session, Tag).on_conflict_do_nothing(),
                        [{"domain_id": domain_id, "tag": name(tag), "description": ""}])
    if description is not None:
        session.execute(update(Tag).where(*where).values(
            description=kept_clear(description, "description")))


def remove(session: Session, domain_id: str, tag: str) -> None:
    """Delete the tag and its counters (the domain's totals keep what they counted)."""
    deleted = session.execute(delete(Tag).where(Tag.domain_id == domain_id,
                                                Tag.tag == name(tag)))
    if not affected(deleted):
        raise NotFound(NOT_FOUND)
    session.execute(delete(StatCount).where(StatCount.domain_id == domain_id,
                                            StatCount.tag == name(tag)))


def limits(session: Session, domain_id: str) -> dict:
    return {"limit": MAX_TAGS, "count": _count(session, domain_id)}
