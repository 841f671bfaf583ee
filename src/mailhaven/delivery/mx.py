"""Where mail for a domain goes: MX records, implicit MX, null MX, public addresses only —
with a short cache."""

from __future__ import annotations

from dataclasses import dataclass

import dns.resolver

from mailhaven.clock import monotonic
from mailhaven.delivery.replies import DeliveryFailure, local_failure
from mailhaven.netpolicy import is_public
from mailhaven.resolver import ABSENT, FAILED, make_resolver

CACHE_SECONDS_MAX = 300
NEGATIVE_CACHE_SECONDS = 60
CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class MailHost:
    name: str  # the MX host name (what TLS certificates name)
    address: str  # the IP we connect to
    port: int




class MxResolver:
    def __init__(self, *, nameserver: tuple[str, int] | None = None, port: int = 25,
                 allow_private: bool = False, timeout: float = 10.0) -> None:
        self._resolver = make_resolver(nameserver, timeout=timeout)
        self._port = port
        self._allow_private = allow_private  # MAILHAVEN_ALLOW_PRIVATE_MX
        self._cache: dict[str, tuple[float, list[MailHost] | DeliveryFailure]] = {}

    async def hosts(self, domain: str) -> list[MailHost]:
        """MX hosts in preference order, each with its addresses; raises a DeliveryFailure."""
        domain = domain.lower().rstrip(".")
        cached = self._cache.get(domain)
        if cached and cached[0] > monotonic():
            if isinstance(cached[1], DeliveryFailure):
                raise cached[1]
            return cached[1]
        try:
            hosts, ttl = await self._lookup(domain)
        except DeliveryFailure as failure:
            if failure.permanent:
                self._remember(domain, (monotonic() + NEGATIVE_CACHE_SECONDS, failure))
            raise
        self._remember(domain, (monotonic() + min(ttl, CACHE_SECONDS_MAX), hosts))
        return hosts

    def _remember(self, domain: str, entry: tuple[float, list[MailHost] | DeliveryFailure]) -> None:
        if len(self._cache) >= CACHE_ENTRIES:  # a long-lived worker meets many domains
            now = monotonic()
            self._cache = {d: e for d, e in self._cache.items() if e[0] > now}
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
        self._cache[domain] = entry

    async def _lookup(self, domain: str) -> tuple[list[MailHost], float]:
        try:
            answer = await self._resolver.resolve(domain, "MX")
            records = sorted(answer, key=lambda r: r.preference)
            ttl = float(answer.rrset.ttl) if answer.rrset is not None else 60.0
            if len(records) == 1 and str(records[0].exchange) == ".":
                raise local_failure(556, "5.1.10", f"Domain {domain} does not accept mail "
                                    "(null MX)", permanent=True)
            names = [str(r.exchange).rstrip(".") for r in records]
        except dns.resolver.NXDOMAIN as exc:
            raise local_failure(550, "5.1.2", f"Domain {domain} does not exist",
                                permanent=True) from exc
        except dns.resolver.NoAnswer:
            names, ttl = [domain], 60.0  # RFC 5321 §5.1: the implicit MX
        except FAILED as exc:
            raise local_failure(451, "4.4.3", f"DNS lookup for {domain} failed",
                                permanent=False) from exc
        hosts: list[MailHost] = []
        for name in names:
            hosts.extend(MailHost(name, ip, self._port) for ip in await self._addresses(name))
        if not hosts:
            raise local_failure(451, "4.4.4", f"No address for the mail hosts of {domain}",
                                permanent=False)
        return self._public(domain, hosts), ttl

    def _public(self, domain: str, hosts: list[MailHost]) -> list[MailHost]:
        """Only hosts on public addresses: a recipient domain's DNS, which anyone can write,
        must not aim our SMTP client at the platform's own network."""
        if self._allow_private:
            return hosts
        public = [host for host in hosts if is_public(host.address)]
        if not public:
            raise local_failure(550, "5.4.4", f"Not delivered: the mail hosts of {domain} "
                                "have only non-public addresses", permanent=True)
        return public

    async def _addresses(self, name: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(name, rdtype)
                found.extend(r.address for r in answer)
            except (*ABSENT, *FAILED):
                continue
        return found
