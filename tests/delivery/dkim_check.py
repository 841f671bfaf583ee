"""Check every DKIM signature of a message with dkimpy's verifier, as a receiver would.

dkimpy verifies Ed25519 with PyNaCl, which Mailhaven does not depend on. Here the three
PyNaCl names dkimpy uses are backed by `cryptography` (OpenSSL's Ed25519), so dkimpy still
does all the rest: the key lookup, tags, canonicalisation, body and header hashes.
test_dkim checks this against RFC 8463's own signed example.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from unittest import mock

import dkim
import dkim.util
import dns.exception
import dns.resolver
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DnsFunc = Callable[..., bytes | None]


class _BadSignatureError(Exception):
    pass


class _Base64Encoder:
    @staticmethod
    def decode(data: bytes) -> bytes:
        return base64.b64decode(data)


class _VerifyKey:
    def __init__(self, key: bytes, encoder: type[_Base64Encoder] = _Base64Encoder) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(encoder.decode(key))

    def verify(self, message: bytes, signature: bytes) -> bytes:
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise _BadSignatureError(str(exc)) from exc
        return message


_NACL = SimpleNamespace(
    signing=SimpleNamespace(VerifyKey=_VerifyKey),
    encoding=SimpleNamespace(Base64Encoder=_Base64Encoder),
    exceptions=SimpleNamespace(BadSignatureError=_BadSignatureError, ValueError=ValueError),
)


@contextlib.contextmanager
def _ed25519_for_dkimpy() -> Iterator[None]:
    if hasattr(dkim, "nacl"):  # PyNaCl is installed: dkimpy uses it
        yield
        return
    with mock.patch.object(dkim, "nacl", _NACL, create=True):
        yield


def signatures(data: bytes) -> list[dict[str, str]]:
    """The tags of each DKIM-Signature, top first."""
    headers, _ = dkim.rfc822_parse(data)
    return [{k.decode(): b"".join(v.split()).decode()
             for k, v in dkim.util.parse_tag_value(value).items()}
            for name, value in headers if name.lower() == b"dkim-signature"]


def verify_each(data: bytes, dnsfunc: DnsFunc) -> list[tuple[str, str, bool]]:
    """(algorithm, selector, verified) for each DKIM-Signature, top first."""
    results = []
    with _ed25519_for_dkimpy():
        for index, tags in enumerate(signatures(data)):
            try:
                verified = dkim.DKIM(data).verify(idx=index, dnsfunc=dnsfunc)
            except dkim.DKIMException:
                verified = False
            results.append((tags["a"], tags["s"], bool(verified)))
    return results


def from_records(records: list[dict]) -> DnsFunc:
    """A dkimpy `dnsfunc` serving the DKIM records the domain API lists, as listed."""
    published = {r["name"].lower(): r["value"] for r in records if "._domainkey." in r["name"]}

    def dnsfunc(query: bytes, timeout: float = 5) -> bytes | None:
        value = published.get(query.decode().rstrip(".").lower())
        return value.encode() if value is not None else None
    return dnsfunc


def from_dns(nameserver: tuple[str, int]) -> DnsFunc:
    """A dkimpy `dnsfunc` asking a real DNS server (tests' DnsServer) for TXT records."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [nameserver[0]], nameserver[1], 5

    def dnsfunc(query: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(query.decode(), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(answer[0].strings)  # type: ignore[attr-defined]
    return dnsfunc
