"""Helpers for the serving tests: the platform's app on a live server, and one tenant per
region."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import uvicorn

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain
from mailhaven.regional import create_platform_app
from mailhaven.services import Platform, Services
from tests.support import DatabaseDump, dump_database, free_port

T = TypeVar("T")


class PlatformServer:
    """`create_platform_app` on uvicorn in a thread (tests.support.LiveServer's twin)."""

    def __init__(self, platform: Platform) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(
            create_platform_app(platform), host="127.0.0.1", port=self.port,
            log_config=None, access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> PlatformServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, api_key: str | None = None) -> httpx.Client:
        auth = ("api", api_key) if api_key else None
        return httpx.Client(base_url=self.base_url, auth=auth, timeout=60)


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
