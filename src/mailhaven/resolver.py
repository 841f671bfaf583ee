"""The DNS resolver every lookup shares (MX routing, domain verification): the system's,
or the one MAILHAVEN_DNS_NAMESERVER names, and what its failures mean."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver

ABSENT = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)  # DNS answered: there is none
FAILED = (dns.exception.Timeout, dns.resolver.NoNameservers)  # DNS did not answer


def make_resolver(nameserver: tuple[str, int] | None, *,
                  timeout: float = 10.0) -> dns.asyncresolver.Resolver:
    """The system's resolver, or the one at `nameserver` (MAILHAVEN_DNS_NAMESERVER); a
    lookup with no answer within `timeout` seconds raises Timeout."""
    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.lifetime = timeout
    return resolver
