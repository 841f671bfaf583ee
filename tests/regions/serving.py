"""Helpers for the serving tests: the platform's app on a live server, and one tenant per
region."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain
from mailhaven.regional import create_platform_app
from mailhaven.services import Platform, Services
from tests.support import DatabaseDump, LiveServer, dump_database

T = TypeVar("T")


class PlatformServer(LiveServer):
    """`create_platform_app` on a live server."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(app=create_platform_app(platform))


@dataclass
class RegionalTenant:
    region: str
    account_id: str
    api_key: str
    domain: str


def tenant_in(services: Services, name: str, domain: str) -> RegionalTenant:
    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name=name,
                                email=f"ops@{domain.split('.', 1)[-1]}", region=services.region,
                                clock=services.clock)
        create_domain(session, services.vault, issued.account_id, {"name": domain},
                      services.clock)
    return RegionalTenant(services.region, issued.account_id, issued.api_key, domain)


def dumps(platform: Platform) -> dict[str, DatabaseDump]:
    """Every database of the platform, raw: "main" and each region's."""
    found = {"main": dump_database(SimpleNamespace(db=platform.directory))}  # type: ignore[arg-type]
    found.update({name: dump_database(services) for name, services in platform.regions.items()})
    return found


class LoopThread:
    """An event loop on a thread of its own, for servers the test talks to over sockets."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()
