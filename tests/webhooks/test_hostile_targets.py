"""Webhook targets chosen by an attacker: a stored URL the sender can't use, and a name whose
DNS answer changes between the check and the connection (DNS rebinding)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import socket
import ssl
import time

import httpcore
import pytest
from sqlalchemy import select, update

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain
from mailhaven.webhooks.models import WebhookDelivery
from mailhaven.webhooks.network import checked_transport
from tests.delivery.sinks import self_signed_tls
from tests.support import WebhookReceiver, send_webhooks

# What finding 3 stored before URLs were checked at creation.
UNUSABLE = ["http://b.example:99999/x", "http://b.example:abc/x", "http://[::1"]
STUCK_ROWS = 60  # three claims' worth, due before A's event


def _send(client, domain: str) -> None:  # type: ignore[no-untyped-def]
    reply = client.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi", "text": "Hi"})
    assert reply.status_code == 200, reply.text


def _other_tenant(services, live):  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="B", email="ops@b.test")
        create_domain(session, services.vault, other.account_id, {"name": "mg.b.test"},
                      services.clock)
    return other, live.client(other.api_key)


def test_unusable_stored_urls_do_not_hold_up_another_account(api, services, live, clock,
                                                           domain) -> None:
    other, b_client = _other_tenant(services, live)
    with b_client, WebhookReceiver() as receiver:
        assert b_client.post("/v1/webhooks", data={"url": "http://b.example/x",
                                                   "event_types": "accepted"}).status_code == 200
        _send(b_client, "mg.b.test")
        with services.db.transaction() as session:  # as if stored before the fix
            [row] = session.scalars(select(WebhookDelivery).where(
                WebhookDelivery.account_id == other.account_id))
            session.execute(WebhookDelivery.__table__.insert(), [
                {"account_id": row.account_id, "domain_id": row.domain_id,
                 "event_id": row.event_id, "webhook": "accepted",
                 "url": UNUSABLE[n % len(UNUSABLE)], "next_attempt_at": clock.now() - 60,
                 "created_at": row.created_at, "updated_at": row.updated_at,
                 "status": "pending", "attempts": 0, "attempt_log": "[]"}
                for n in range(STUCK_ROWS - 1)])
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == row.id)
                            .values(url=UNUSABLE[0], next_attempt_at=clock.now() - 60))
        assert api.post(f"/v3/domains/{domain}/webhooks",
                        data={"id": "accepted", "url": receiver.url}).status_code == 200
        _send(api, domain)

        started = time.monotonic()
        assert send_webhooks(services) == STUCK_ROWS + 1
        assert time.monotonic() - started < 5  # the whole batch once failed, every 60 s
        assert [h.json["event-data"]["event"] for h in receiver.received] == ["accepted"]
        clock.advance(24 * 3600)
        assert send_webhooks(services) == 0  # settled for good, not retried forever

    with services.db.sessions() as session:
        stuck = session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.account_id == other.account_id)).all()
    assert len(stuck) == STUCK_ROWS
    assert {r.status for r in stuck} == {"gave-up"}
    assert all("invalid URL" in json.loads(r.attempt_log)[0]["error"] for r in stuck)


# -- DNS rebinding ------------------------------------------------------------------------
PUBLIC = "93.184.215.14"  # a public address: served here by a receiver on loopback


class Internet(httpcore.AnyIOBackend):
    """The Internet as these tests see it: each public address in `sites` is a receiver on
    loopback; no other address outside loopback answers. Every dial is recorded."""

    def __init__(self, sites: dict[str, int]) -> None:
        self.sites = sites
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None,  # type: ignore[no-untyped-def]
                          socket_options=None):
        self.dialled.append((host, port))
        if host in self.sites:
            host, port = "127.0.0.1", self.sites[host]
        elif not _loopback_or_name(host):
            raise httpcore.ConnectError(f"{host} is unreachable from the tests")
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


def _loopback_or_name(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: the system resolves it, as httpx's own network would


class NameServer:
    """The system resolver, answering for a few names of the attacker's: the n-th lookup of a
    name gets its n-th answer (the last one from then on). Other names resolve as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        system = socket.getaddrinfo

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # type: ignore[no-untyped-def]
            name = host.decode() if isinstance(host, bytes) else host
            if name not in self.answers:
                return system(host, port, family, type, proto, flags)
            self.lookups.append(name)
            turn = min(self.lookups.count(name), len(self.answers[name])) - 1
            return [_info(address, int(port)) for address in self.answers[name][turn]]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _info(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def _strict(services):  # type: ignore[no-untyped-def]
    return dataclasses.replace(
        services, settings=services.settings.with_(webhook_allow_private=False))


def test_a_name_that_rebinds_to_a_private_address_never_reaches_it(
        api, services, domain, monkeypatch) -> None:
    with WebhookReceiver() as internal, WebhookReceiver() as public_site:
        dns = NameServer(monkeypatch, {"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
        internet = Internet({PUBLIC: public_site.server.server_address[1]})
        port = internal.server.server_address[1]
        api.post(f"/v3/domains/{domain}/webhooks",
                 data={"id": "accepted", "url": f"http://rebind.test:{port}/hooks"})
        _send(api, domain)
        send_webhooks(_strict(services), checked_transport(allow_private=False,
                                                            inner=internet))
    assert internal.received == []  # before the fix: the second lookup led here
    [hook] = public_site.received  # the address that was checked
    assert hook.headers["Host"] == f"rebind.test:{port}"
    assert dns.lookups == ["rebind.test"] and internet.dialled == [(PUBLIC, port)]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("answer", [
    [PUBLIC, "127.0.0.1"],  # one private address among public ones
    ["64:ff9b::7f00:1"],  # NAT64 of 127.0.0.1
    ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254, the cloud metadata service
    ["2002:7f00:1::"],  # 6to4 of 127.0.0.1
    ["::ffff:127.0.0.1"],  # IPv4-mapped
])
def test_names_leading_inside_are_refused_before_any_connection(
        api, services, domain, monkeypatch, answer: list[str]) -> None:
    with WebhookReceiver() as internal:
        port = internal.server.server_address[1]
        NameServer(monkeypatch, {"inside.test": [answer]})
        internet = Internet({})
        api.post(f"/v3/domains/{domain}/webhooks",
                 data={"id": "accepted", "url": f"http://inside.test:{port}/hooks"})
        _send(api, domain)
        send_webhooks(_strict(services), checked_transport(allow_private=False,
                                                            inner=internet))
    assert internal.received == [] and internet.dialled == []
    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert record["status"] == "gave-up"
    assert "non-public address" in record["attempts"][0]["error"]


def test_tls_is_verified_for_the_url_s_host_name_not_the_address(
        api, services, domain, monkeypatch, tmp_path) -> None:
    server_tls = self_signed_tls(tmp_path, "hooks.test")  # also valid for 127.0.0.1
    names: list[str | None] = []
    server_tls.sni_callback = lambda _socket, name, _context: names.append(name)
    client_tls = ssl.create_default_context(cafile=tmp_path / "sink-cert.pem")
    with WebhookReceiver() as receiver:
        receiver.server.socket = server_tls.wrap_socket(receiver.server.socket,
                                                        server_side=True)
        port = receiver.server.server_address[1]
        NameServer(monkeypatch, {"hooks.test": [["127.0.0.1"]],
                                 "impostor.test": [["127.0.0.1"]]})
        for name in ("hooks.test", "impostor.test"):
            api.post(f"/v4/domains/{domain}/webhooks",
                     data={"url": f"https://{name}:{port}/hooks", "event_types": "accepted"})
        _send(api, domain)
        send_webhooks(services, checked_transport(allow_private=True, ssl_context=client_tls))
    [hook] = receiver.received
    assert hook.headers["Host"] == f"hooks.test:{port}"
    assert sorted(n for n in names if n) == ["hooks.test", "impostor.test"]  # SNI: the name
    records = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    failed = next(r for r in records if "impostor" in r["url"])
    assert failed["status"] == "pending" and "CERTIFICATE_VERIFY_FAILED" in \
        failed["attempts"][0]["error"]
