"""The one rule for which addresses are public (webhook targets, MX hosts)."""

from __future__ import annotations

import pytest

from mailhaven.netpolicy import is_public

PUBLIC = [
    "8.8.8.8", "93.184.215.14", "2606:4700::1111",
    "::ffff:8.8.8.8",  # IPv4-mapped
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]
NOT_PUBLIC = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fec0::1", "fc00::1", "fd12:3456::1",
    "ff02::1", "ff0e::1",
    "2001:db8::1", "3fff::1",
    # IPv6 forms of private IPv4 addresses
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe",  # NAT64
    "2002:7f00:1::1", "2002:a00:1::", "2002:c0a8:101::1",  # 6to4
    # never public, whatever they embed
    "64:ff9b:1::808:808", "64:ff9b:1:ffff::1",  # local-use NAT64
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1",  # Teredo
    "not-an-address", "",
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_that_lead_inside(address: str) -> None:
    assert not is_public(address)
