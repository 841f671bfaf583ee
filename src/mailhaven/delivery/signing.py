"""DKIM signatures and the VERP return path of each copy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from mailhaven.vault import Vault

SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"mime-version", b"content-type", b"list-unsubscribe",
                  b"list-unsubscribe-post", b"x-mailgun-variables"]
_LINE_END = re.compile(rb"\r?\n")
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_HEADER = b"DKIM-Signature"


class DkimSigner:
    """rsa-sha256, relaxed/relaxed, for one domain and selector.

    dkimpy parses, canonicalises and hashes; the RSA step is OpenSSL's (through
    `cryptography`), because dkimpy's pure-Python RSA costs ~6 ms a message, most of a
    worker's CPU (docs/BENCHMARKS.md). dkimpy verifies what this signs (tests/delivery).
    """

    def __init__(self, *, domain: str, selector: str, private_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("DKIM keys are RSA")
        self._key = key
        self._domain, self._selector = domain.encode(), selector.encode()

    def sign(self, data: bytes, *, timestamp: int) -> bytes:
        """The message with a DKIM-Signature header prepended."""
        # Raw MIME may come with bare LFs; SMTP sends CRLF anyway, and only with CRLF can we
        # find the header block and sign the headers that are really there.
        data = _LINE_END.sub(b"\r\n", data)
        headers, body = dkim.rfc822_parse(data)
        present = {name.lower() for name, _ in headers}
        signed = [h for h in SIGNED_HEADERS if h in present]
        body_hash = base64.b64encode(hashlib.sha256(_RELAXED.canonicalize_body(body)).digest())
        # " : " between names: fold() may break a line at any space, never inside a name.
        fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"),
                  (b"d", self._domain), (b"s", self._selector),
                  (b"t", str(timestamp).encode()), (b"h", b" : ".join(signed)),
                  (b"bh", body_hash), (b"b", b"")]
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_HEADER))
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, _RELAXED, _RELAXED.canonicalize_headers(headers), signed,
                          (_HEADER, b" " + value), dict(fields))
        signature = base64.b64encode(self._key.sign(
            hasher.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256())))
        # Whitespace inside b= is ignored by verifiers, so the signature may be folded freely.
        folded = b"\r\n ".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        return _HEADER + b": " + value + folded + b"\r\n" + data


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
