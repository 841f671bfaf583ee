"""Which IP addresses are public: the one rule for webhook targets and MX hosts."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

# IPv6 forms that carry an IPv4 address: they reach whatever that address is.
_IPV4_MAPPED = ip_network("::ffff:0:0/96")  # RFC 4291 §2.5.5.2
_IPV4_COMPATIBLE = ip_network("::/96")  # RFC 4291 §2.5.5.1 (deprecated)
_NAT64 = ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits
_SIX_TO_FOUR = ip_network("2002::/16")  # RFC 3056: bits 16–47
# Never public, whatever they embed: a local NAT64 translator (RFC 8215) leads into the
# operator's network, and Teredo (RFC 4380) tunnels to an obfuscated IPv4 client.
_NEVER = (ip_network("64:ff9b:1::/48"), ip_network("2001::/32"),
          ip_network("3fff::/20"),  # RFC 9637 documentation, newer than some Pythons' tables
          ip_network("fec0::/10"))  # site-local (RFC 3879 deprecated it; still routed inside)


def is_public(address: str | IPv4Address | IPv6Address) -> bool:
    """Whether connecting to `address` reaches the public Internet: not loopback, private,
    link-local, shared, multicast, reserved or documentation space — nor an IPv6 address
    that embeds such an IPv4 address. Unparsable means no."""
    try:
        ip = ip_address(str(address).split("%", 1)[0])  # an IPv6 zone: fe80::1%eth0
    except ValueError:
        return False
    if isinstance(ip, IPv6Address):
        if any(ip in network for network in _NEVER):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    if ip in _IPV4_MAPPED or ip in _IPV4_COMPATIBLE or ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


IPV6_CLIENT_PREFIX = 64  # what one subscriber usually gets: one client


def client_network(host: str | None, ipv6_prefix: int = IPV6_CLIENT_PREFIX) -> str:
    """Who a client is, for counting it in limits: its IPv4 address (also when written
    IPv4-mapped), or its IPv6 /64, since one machine usually holds a whole /64 (a wider
    `ipv6_prefix`, such as a site's /48, counts all the networks of one subscriber)."""
    try:
        ip = ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network((ip, ipv6_prefix), strict=False))
    return str(ip)
