"""Development mode keeps everything on this machine: mail goes to the capture mailbox,
names are answered by a local name server, and webhooks to other hosts are captured.

`serve --dev` makes its data directory a development one (`demo.json`); a `mailhaven
worker` started on that directory runs the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import httpx

from mailhaven.config import Settings
from mailhaven.dev import dns
from mailhaven.domains.reserved import system_domain
from mailhaven.domains.service import is_domain_name
from mailhaven.storage.db import Database

MARKER = "demo.json"  # written by dev.demo.ensure_demo on the first `serve --dev`
# The platform's own mail where the machine's name is no domain name (a laptop's `vm`)
DEV_SYSTEM_FROM = "Mailhaven <no-reply@mailhaven.test>"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def is_dev_data_dir(data_dir: Path) -> bool:
    return (data_dir / MARKER).exists()


def mailbox_folder(settings: Settings) -> Path:
    return settings.data_dir / "dev-mailbox"


@dataclass
class LocalNetwork:
    """What stands in for the Internet while a dev-mode process runs."""

    settings: Settings  # the process's settings, pointed at the stand-ins
    name_server: dns.LocalNameServer
    _dns: asyncio.DatagramTransport

    @classmethod
    async def start(cls, settings: Settings) -> LocalNetwork:
        transport, server = await dns.start(settings.hostname)
        local = settings.with_(
            relayhost=("127.0.0.1", settings.dev_capture_port),
            dns_nameserver=transport.get_extra_info("sockname")[:2],
            require_verified_domains=False,  # all mail goes to the local mailbox anyway
            system_from=settings.system_from
            if is_domain_name(system_domain(settings)) else DEV_SYSTEM_FROM,
            public_url=settings.public_url
            or f"http://{settings.http_host}:{settings.http_port}")
        return cls(local, server, transport)

    def answer_from(self, db: Database) -> None:
        """Start answering names from this database's domain table."""
        self.name_server.db = db

    def webhook_transport(self) -> httpx.AsyncBaseTransport:
        from mailhaven.dev.webhooks import CapturingTransport
        from mailhaven.webhooks.network import checked_transport

        return CapturingTransport(self.settings.data_dir / "dev-webhooks",
                                  checked_transport(allow_private=True))

    def close(self) -> None:
        self._dns.close()
