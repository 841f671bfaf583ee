"""The retention categories: what expires, after how long by default, and how it is purged.

A category is a query for the ids of one account group's expired rows and, when deleting
them is not the whole story, a purge for a batch of those ids. Adding one is one line at
the end of this module (see `requests`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    delete,
    exists,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from mailhaven.config import Settings
from mailhaven.delivery.models import QUEUED, Delivery
from mailhaven.domains.models import Domain
from mailhaven.events.models import Event
from mailhaven.inbound.models import WAITING, InboundMessage, RoutePost
from mailhaven.messages.models import Message
from mailhaven.privacy import requests
from mailhaven.site import contact
from mailhaven.vault.models import VaultKey
from mailhaven.webhooks.models import PENDING, WebhookDelivery

DAY = 86_400.0
MIN_DAYS, MAX_DAYS = 1, 3650


@dataclass(frozen=True)
class Accounts:
    """The accounts one purge covers: these, or (`all_but`) every account but these. For a
    category with periods per domain (`Category.per_domain`), `domains` narrows it to those
    domains, and `own_period` says it leaves the domains with a message_ttl to their own
    scopes (found by a subquery: however many there are, no list of them is bound)."""

    ids: frozenset[str]
    all_but: bool = False
    domains: frozenset[str] | None = None
    own_period: bool = False

    def of(self, account_id: SQLColumnExpression[str]) -> ColumnElement[bool]:
        return account_id.not_in(self.ids) if self.all_but else account_id.in_(self.ids)

    def in_domains(self, domain_id: SQLColumnExpression[str]) -> ColumnElement[bool]:
        if self.domains is not None:
            return domain_id.in_(self.domains)
        if not self.own_period:
            return true()
        return domain_id.not_in(select(Domain.id).where(Domain.message_ttl.is_not(None)))


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    default_days: int
    # The ids of the rows that expired at `cutoff` (epoch seconds) for these accounts.
    expired: Callable[[Accounts, float], Select]
    # Purge a batch of those ids; None deletes the rows the ids' column belongs to.
    purge: Callable[[Session, list], None] | None = None
    # Whether a domain may keep its rows for less time than its account (Mailgun's
    # message_ttl, domains.message_ttl): `expired` then honours `Accounts.in_domains`.
    per_domain: bool = False
    # A period the operator sets for the whole installation (the name of a `Settings` field,
    # in days; `default_days` where no settings are given) instead of each account: the
    # platform's own records, such as its contact form's messages.
    setting: str | None = None

    def operator_days(self, settings: Settings | None) -> int:
        """The operator's period of a `setting` category."""
        assert self.setting is not None
        return int(getattr(settings, self.setting)) if settings else self.default_days


CATEGORIES: dict[str, Category] = {}


def register(category: Category) -> None:
    if category.name in CATEGORIES:
        raise ValueError(f"retention category {category.name!r} is already registered")
    if not MIN_DAYS <= category.default_days <= MAX_DAYS:
        raise ValueError(f"{category.name}: default_days out of {MIN_DAYS}..{MAX_DAYS}")
    CATEGORIES[category.name] = category


def delete_rows(session: Session, category: Category, ids: list) -> None:
    """The default purge: delete the rows whose ids `expired` selects."""
    key = category.expired(Accounts(frozenset()), 0.0).selected_columns[0]
    session.execute(delete(key.table).where(key.in_(ids)))


# -- event logs -------------------------------------------------------------------------------

def _expired_events(accounts: Accounts, cutoff: float) -> Select:
    # By domain and time: the (domain_id, timestamp) index finds the oldest rows directly.
    domains = select(Domain.id).where(accounts.of(Domain.account_id))
    return select(Event.id).where(Event.domain_id.in_(domains), Event.timestamp < cutoff)


def _purge_events(session: Session, ids: list) -> None:
    """Delete the events (their webhook deliveries go with them: ON DELETE CASCADE), and
    the one-off content keys that sealed recipient-less `rejected` events. The hourly
    counters were added to when each event was recorded: they are not touched."""
    keys = set(session.scalars(select(Event.key_id).where(Event.id.in_(ids),
                                                          Event.key_id.is_not(None))))
    session.execute(delete(Event).where(Event.id.in_(ids)))
    if keys:
        session.execute(delete(VaultKey).where(
            VaultKey.id.in_(keys), VaultKey.purpose == "content",
            ~exists().where(Message.content_key_id == VaultKey.id),
            ~exists().where(Event.key_id == VaultKey.id)))


# -- stored message bodies --------------------------------------------------------------------

def _expired_bodies(accounts: Accounts, cutoff: float) -> Select:
    """Bodies whose every copy reached its final state (delivered, failed, cancelled)
    before `cutoff`: a copy still queued, or settled since, keeps the body."""
    open_copy = exists().where(Delivery.message_id == Message.id,
                               or_(Delivery.status == QUEUED, Delivery.updated_at >= cutoff))
    # a received message is kept until processed, and its period counts from then
    unprocessed = exists().where(InboundMessage.message_id == Message.id,
                                 or_(InboundMessage.status == WAITING,
                                     InboundMessage.updated_at >= cutoff))
    return select(Message.id).where(accounts.of(Message.account_id),
                                    accounts.in_domains(Message.domain_id),
                                    Message.content_sealed.is_not(None),
                                    Message.created_at < cutoff, ~open_copy, ~unprocessed)


def _purge_bodies(session: Session, ids: list) -> None:
    """Clear the sealed body and delete its content key: the ciphertext is gone, and any
    copy of it (a backup, a replica) can no longer be opened. The message row stays, for
    the events and the copies that point to it."""
    keys = list(session.scalars(select(Message.content_key_id).where(
        Message.id.in_(ids), Message.content_key_id.is_not(None))))
    session.execute(update(Message).where(Message.id.in_(ids)).values(content_sealed=None))
    session.execute(delete(VaultKey).where(VaultKey.id.in_(keys),
                                           VaultKey.purpose == "content"))


# -- received mail's queue rows -----------------------------------------------------------------

def _expired_inbound(accounts: Accounts, cutoff: float) -> Select:
    return select(InboundMessage.id).where(accounts.of(InboundMessage.account_id),
                                           InboundMessage.status != WAITING,
                                           InboundMessage.updated_at < cutoff)


# -- webhook delivery records -----------------------------------------------------------------

def _expired_webhook_deliveries(accounts: Accounts, cutoff: float) -> Select:
    return select(WebhookDelivery.id).where(accounts.of(WebhookDelivery.account_id),
                                            WebhookDelivery.status != PENDING,
                                            WebhookDelivery.updated_at < cutoff)


register(Category("events", "Event logs (the Events API, webhooks' source)", 30,
                  expired=_expired_events, purge=_purge_events))
register(Category("message_bodies", "Stored message bodies, counted from the message's "
                  "final state (every copy delivered, failed or cancelled); a domain's "
                  "message_ttl may shorten it", 3,
                  expired=_expired_bodies, purge=_purge_bodies, per_domain=True))
register(Category("webhook_deliveries", "Records of finished webhook deliveries", 30,
                  expired=_expired_webhook_deliveries))
register(Category("requests", "Working data of finished data subject requests (the "
                  "requester's address and details; the request record itself is kept "
                  "under the legal hold)", 7,
                  expired=requests.expired_working_data, purge=requests.purge_working_data))
register(Category("inbound_messages", "Received mail's queue records (the sealed sender and "
                  "recipient, authentication results), counted from when it was processed",
                  3, expired=_expired_inbound))


# -- route POST records (forward() and store()'s notify) ------------------------------------------

def _expired_route_posts(accounts: Accounts, cutoff: float) -> Select:
    return select(RoutePost.id).where(accounts.of(RoutePost.account_id),
                                      RoutePost.status != PENDING,
                                      RoutePost.updated_at < cutoff)


register(Category("route_posts", "Records of finished route POSTs (forward() and store()'s "
                  "notify: the sealed recipient and URL, each attempt's outcome)", 30,
                  expired=_expired_route_posts))


# -- the website's contact form (the platform's own records) -------------------------------------

register(Category("contact_messages", "Messages sent through the website's contact form (the "
                  "operator's period, MAILHAVEN_CONTACT_RETENTION_DAYS)", 365,
                  expired=contact.expired_messages, setting="contact_retention_days"))
