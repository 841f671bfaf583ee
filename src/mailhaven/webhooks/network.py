"""How webhook POSTs reach the network: a name is resolved once, every address it has is
checked, and the connection goes to one of the checked addresses — never to the answer of a
second lookup, which a hostile name server could change (DNS rebinding)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from mailhaven.clock import monotonic
from mailhaven.netpolicy import is_public

MAX_ADDRESSES = 4  # tried in turn, of those a name resolves to
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                           keepalive_expiry=5.0)  # httpx's defaults


class Refused(Exception):
    """The target resolves to an address webhooks may not reach: given up at once."""

    prefix = "refused:"


async def resolve(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host`, in its order, each once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CheckedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network, with every TCP connection aimed at an address that was checked.
    TLS is untouched: httpcore still sends SNI for, and verifies the certificate against,
    the URL's host name."""

    def __init__(self, *, allow_private: bool,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not self.allow_private and not all(is_public(a) for a in addresses):
            raise Refused(f"{Refused.prefix} {host} resolves to a non-public address")
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses[:MAX_ADDRESSES]:
            left = None if deadline is None else max(deadline - monotonic(), 0.001)
            try:
                return await self.inner.connect_tcp(address, port, timeout=left,
                                                    local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, network: CheckedNetwork, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False, limits=POOL_LIMITS)
        # httpx takes no network backend: the same pool as its own, on our network.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=POOL_LIMITS.max_connections,
            max_keepalive_connections=POOL_LIMITS.max_keepalive_connections,
            keepalive_expiry=POOL_LIMITS.keepalive_expiry, network_backend=network)


def checked_transport(*, allow_private: bool,
                      inner: httpcore.AsyncNetworkBackend | None = None,
                      ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncBaseTransport:
    """An httpx transport on a CheckedNetwork (`inner` and `ssl_context`: tests' stand-ins
    for the Internet and its certificate authorities)."""
    return _CheckedTransport(CheckedNetwork(allow_private=allow_private, inner=inner),
                             ssl_context)
