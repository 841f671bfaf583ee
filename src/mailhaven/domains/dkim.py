"""DKIM key generation and the `p=` value published in DNS."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_SIZES = (1024, 2048)


@dataclass(frozen=True)
class DkimKeyPair:
    private_pem: bytes
    public_b64: str  # SubjectPublicKeyInfo, base64, as published in `p=`


def generate_rsa(bits: int = 2048) -> DkimKeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKeyPair(private_pem, base64.b64encode(der).decode())
