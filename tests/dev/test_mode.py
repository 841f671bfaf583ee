"""Development mode keeps everything on this machine: its name server and its webhooks."""

from __future__ import annotations

import asyncio
import json

import httpx

from mailhaven.delivery.mx import make_resolver
from mailhaven.dev.mode import LocalNetwork
from mailhaven.dev.webhooks import CAPTURED, CapturingTransport, captured
from mailhaven.domains import verify
from mailhaven.domains.models import Domain
from mailhaven.webhooks.network import checked_transport
from tests.support import WebhookReceiver


def test_the_local_name_server_publishes_what_verification_checks(services, domain) -> None:
    """A `.test` name is in no real DNS: it verifies only through the local server."""

    async def run() -> tuple[dict, bool]:
        local = await LocalNetwork.start(services.settings)
        try:
            local.answer_from(services.db)
            assert local.settings.dns_nameserver is not None
            assert local.settings.dns_nameserver[0] == "127.0.0.1"
            resolver = make_resolver(local.settings.dns_nameserver)
            with services.db.sessions() as session:
                stored = session.query(Domain).filter_by(name=domain).one()
                status = await verify.check(stored, services.settings.hostname, resolver)
            try:
                await resolver.resolve("example.org", "MX")
                known = True
            except Exception:  # NXDOMAIN: the local server knows no other name
                known = False
            return status, known
        finally:
            local.close()

    status, known_elsewhere = asyncio.run(run())
    assert {kind: s["valid"] for kind, s in status.items()} == dict.fromkeys(status, "valid")
    assert {"spf", "mx", "tracking"} <= set(status) and any(k.startswith("dkim") for k in status)
    assert not known_elsewhere


def test_webhooks_to_this_machine_go_out_and_others_are_captured(tmp_path) -> None:
    folder = tmp_path / "dev-webhooks"

    async def post(url: str) -> httpx.Response:
        transport = CapturingTransport(folder, checked_transport(allow_private=True))
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post(url, json={"event": "delivered"})

    with WebhookReceiver() as receiver:
        local = asyncio.run(post(receiver.url))
        elsewhere = asyncio.run(post("https://hooks.example.com/mailhaven"))
    assert local.status_code == 200 and len(receiver.received) == 1
    assert (elsewhere.status_code, elsewhere.text) == (200, CAPTURED)
    [hook] = captured(folder)
    assert hook["url"] == "https://hooks.example.com/mailhaven"
    assert json.loads(hook["body"]) == {"event": "delivered"}


def test_a_machine_named_without_a_dot_still_gets_the_platforms_mail() -> None:
    """`make run` on a host called `vm`: system mail comes from a name it can be sent from."""
    from mailhaven.config import Settings
    from mailhaven.dev.mode import DEV_SYSTEM_FROM

    async def system_from(settings: Settings) -> str:
        local = await LocalNetwork.start(settings)
        local.close()
        return local.settings.system_from

    assert asyncio.run(system_from(Settings(hostname="vm"))) == DEV_SYSTEM_FROM
    assert asyncio.run(system_from(Settings(hostname="mx.example.org"))) == \
        "Mailhaven <no-reply@mx.example.org>"
