"""Trusted networks (MAILHAVEN_SMTP_TRUSTED_NETWORKS): clients that submit as one domain
without TLS or AUTH — printers, legacy applications and relays on a network the operator
vouches for, as Postfix's `mynetworks` and Postal's IP credentials allow. Only the operator
names them (no API does), each bound to one domain: its account is the sender, and the
envelope sender and From are held to that account's domains as after AUTH."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from mailhaven.clock import monotonic
from mailhaven.credentials.service import Credential
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.errors import NotFound
from mailhaven.services import Services
from mailhaven.storage import revocations
from mailhaven.storage.revocations import Revoked

# a domain moved stops being trusted within a minute; a deleted one within a second or two
# (`storage.revocations`)
RESOLVED_SECONDS = 60.0
NO_SUCH_DOMAIN = ("MAILHAVEN_SMTP_TRUSTED_NETWORKS names {}, which is not a verified domain "
                  "here")


@dataclass(frozen=True)
class TrustedNetwork:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    domain: str


class TrustedNetworks:
    """The networks of the setting, and the domain each submits as (looked up, then kept
    for a minute, so a client connecting per message costs no query of its own).

    Drops come from the revocations thread while sessions resolve: a lock keeps them apart,
    and a lookup that began before a drop keeps nothing (it may have read what was ended).
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._networks = sorted(
            (TrustedNetwork(ipaddress.ip_network(network), domain)
             for network, domain in services.settings.smtp_trusted_networks),
            key=lambda t: -t.network.prefixlen)  # the most specific first
        self._resolved: dict[str, tuple[Credential, float]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # drops so far
        revocations.subscribe(self)

    def drop(self, revoked: Collection[Revoked] | None) -> None:
        """What `storage.revocations` heard: domains and accounts named, or (None) all."""
        names = {r.value for r in revoked or () if r.kind == "domain"}
        accounts = {r.value for r in revoked or () if r.kind == "account"}
        with self._lock:
            self._generation += 1
            self._resolved = {} if revoked is None else {
                domain: kept for domain, kept in self._resolved.items()
                if domain not in names and kept[0].account_id not in accounts}

    def network_of(self, host: str | None) -> TrustedNetwork | None:
        """The trusted network `host` (a peer's address) is in, if any."""
        if not self._networks or not host:
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return next((t for t in self._networks if address in t.network), None)

    def credential(self, trusted: TrustedNetwork) -> Credential:
        """Who a client of `trusted` submits as: its domain's account (NotFound when the
        setting names a domain that isn't here, or isn't one account's)."""
        with self._lock:
            kept = self._resolved.get(trusted.domain)
            looked_up_at = self._generation
        if kept is not None and monotonic() - kept[1] < RESOLVED_SECONDS:
            return kept[0]
        with self._services.db.sessions() as session:
            rows = session.execute(select(Domain.id, Domain.account_id, Domain.name,
                                          Domain.state).where(Domain.name == trusted.domain)
                                   ).all()
        # Only a verified name: it is one account's. An unverified one could be added by
        # another tenant too, and the network's mail would go to whichever copy is left.
        verified = [row for row in rows if row.state == ACTIVE_DOMAIN]
        if not verified:
            raise NotFound(NO_SUCH_DOMAIN.format(trusted.domain))
        row = verified[0]
        credential = Credential(id=f"network:{trusted.network}", account_id=row.account_id,
                                domain_id=row.id, domain_name=row.name, login="",
                                created_at=0.0)
        with self._lock:
            if looked_up_at == self._generation:
                self._resolved[trusted.domain] = (credential, monotonic())
        return credential
