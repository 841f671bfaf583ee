"""The process's wiring: who hears of recorded events. Every entry point that may record
events (the API, the worker, the CLI, the tests' set-up) calls `wire` once it has started,
so `events` never imports its consumers."""

from __future__ import annotations

from mailhaven.domains import service as domains
from mailhaven.events import service as events
from mailhaven.privacy import service as privacy
from mailhaven.stats.service import count_recorded
from mailhaven.templates.service import domain_deleted
from mailhaven.users.team import erase_account_users_mail
from mailhaven.webhooks.service import enqueue_recorded


def wire() -> None:
    """Subscribe statistics and webhooks to recorded events (again: no harm)."""
    events.subscribe(count_recorded)
    events.subscribe(enqueue_recorded)
    domains.on_delete(domain_deleted)  # a domain's templates go with their keys
    # the platform's mail to an account's users goes with the account
    privacy.on_account_deletion(erase_account_users_mail)
