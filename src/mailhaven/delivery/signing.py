"""DKIM signatures and the VERP return path of each copy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from mailhaven.messages.payloads import Rendered
from mailhaven.vault import Vault

SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"mime-version", b"content-type", b"list-unsubscribe",
                  b"list-unsubscribe-post", b"x-mailgun-variables"]
_LINE_END = re.compile(rb"\r?\n")
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_HEADER = b"DKIM-Signature"


@dataclass(frozen=True)
class _Key:
    selector: bytes
    algorithm: bytes
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def load(cls, selector: str, private_pem: bytes) -> _Key:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            return cls(selector.encode(), b"rsa-sha256", key)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(selector.encode(), b"ed25519-sha256", key)
        raise ValueError("DKIM keys are RSA or Ed25519")

    def sign(self, digest: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return self.private.sign(digest)  # RFC 8463: PureEdDSA over the SHA-256 hash


class DkimSigner:
    """relaxed/relaxed signatures for one domain: one DKIM-Signature per key given
    (rsa-sha256, and ed25519-sha256 beside it when the domain has such a key), the first
    key's on top.

    dkimpy parses, canonicalises and hashes; the public-key step is OpenSSL's (through
    `cryptography`), because dkimpy's pure-Python RSA costs ~6 ms a message, most of a
    worker's CPU (docs/BENCHMARKS.md). dkimpy verifies what this signs (tests/delivery).
    """

    def __init__(self, *, domain: str, keys: Sequence[tuple[str, bytes]]) -> None:
        """`keys`: (selector, private key PEM) pairs."""
        self._keys = [_Key.load(selector, pem) for selector, pem in keys]
        self._domain = domain.encode()

    def sign(self, data: bytes | Rendered, *, timestamp: int) -> bytes:
        """The message with its DKIM-Signature headers prepended. A message rendered with
        payloads is hashed piece by piece: its payloads are neither copied nor canonicalised
        again for each copy."""
        payloads = data.payloads if isinstance(data, Rendered) else ()
        # Raw MIME may come with bare LFs; SMTP sends CRLF anyway, and only with CRLF can we
        # find the header block and sign the headers that are really there.
        data = _LINE_END.sub(b"\r\n", data.light if isinstance(data, Rendered) else data)
        headers, body = _parse(data)
        present = {name.lower() for name, _ in headers}
        signed = [h for h in SIGNED_HEADERS if h in present]
        rendered = Rendered(data, payloads)
        hasher = hashlib.sha256()
        for piece in rendered.canonical_body(body) if payloads else [
                _RELAXED.canonicalize_body(body)]:
            hasher.update(piece)
        body_hash = base64.b64encode(hasher.digest())
        canonical = _RELAXED.canonicalize_headers(headers)
        return b"".join([*(self._signature(key, canonical, signed, body_hash, timestamp)
                           for key in self._keys), *rendered.pieces()])

    def _signature(self, key: _Key, headers: list, signed: list[bytes], body_hash: bytes,
                   timestamp: int) -> bytes:
        # " : " between names: fold() may break a line at any space, never inside a name.
        fields = [(b"v", b"1"), (b"a", key.algorithm), (b"c", b"relaxed/relaxed"),
                  (b"d", self._domain), (b"s", key.selector),
                  (b"t", str(timestamp).encode()), (b"h", b" : ".join(signed)),
                  (b"bh", body_hash), (b"b", b"")]
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_HEADER))
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, _RELAXED, headers, signed, (_HEADER, b" " + value),
                          dict(fields))
        signature = base64.b64encode(key.sign(hasher.digest()))
        # Whitespace inside b= is ignored by verifiers, so the signature may be folded freely.
        folded = b"\r\n ".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        return _HEADER + b": " + value + folded + b"\r\n"


def _parse(data: bytes) -> tuple[list, bytes]:
    """dkimpy's (headers, body) of a CRLF message, without splitting the body into lines:
    it may be 25 MB."""
    if data.startswith(b"\r\n"):
        return [], data[2:]
    head, _, body = data.partition(b"\r\n\r\n")
    headers, _ = dkim.rfc822_parse(head + b"\r\n\r\n")
    return headers, body


def return_path(vault: Vault, delivery_id: int, domain: str) -> str:
    """`bounce+<id>-<mac>@domain`: names the delivery, not the recipient, and can't be forged."""
    token = f"{delivery_id}-{vault.token_mac(str(delivery_id))}"
    return f"bounce+{token}@{domain}"


def delivery_of(vault: Vault, address: str) -> int | None:
    """The delivery a VERP return path names, if its authenticator is ours; else None."""
    local = address.rpartition("@")[0].lower()
    if not local.startswith("bounce+"):
        return None
    ident, _, mac = local.removeprefix("bounce+").partition("-")
    if not ident.isdigit() or not hmac.compare_digest(mac, vault.token_mac(ident)):
        return None
    return int(ident)
