"""DKIM key pairs (RSA, Ed25519) and the TXT record value that publishes each."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA, ED25519 = "rsa-sha256", "ed25519-sha256"  # the a= tag of the signatures each key makes
KEY_SIZES = (1024, 2048)
ED25519_BITS = 256


@dataclass(frozen=True)
class DkimKeyPair:
    algorithm: str
    bits: int
    private_pem: bytes
    public_b64: str  # as published in `p=`


def generate_rsa(bits: int = 2048) -> DkimKeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(  # SubjectPublicKeyInfo
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKeyPair(RSA, bits, private_pem, base64.b64encode(der).decode())


def generate_ed25519() -> DkimKeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = key.public_key().public_bytes(  # RFC 8463: the bare 32-byte key, not SPKI
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return DkimKeyPair(ED25519, ED25519_BITS, private_pem, base64.b64encode(raw).decode())


def generate(algorithm: str, bits: int = 2048) -> DkimKeyPair:
    return generate_ed25519() if algorithm == ED25519 else generate_rsa(bits)


def key_type(algorithm: str) -> str:
    """The record's k= tag."""
    return "ed25519" if algorithm == ED25519 else "rsa"


def record_value(algorithm: str, public_b64: str) -> str:
    # RSA keeps the value Mailgun shows (and existing users published); an Ed25519 record
    # names its version too, as RFC 8463's examples do.
    if algorithm == ED25519:
        return f"v=DKIM1; k=ed25519; p={public_b64}"
    return f"k=rsa; p={public_b64}"
