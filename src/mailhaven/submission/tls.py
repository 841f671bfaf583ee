"""The submission server's TLS: the operator's certificate, or one made for this host."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailhaven.config import Settings

log = logging.getLogger("mailhaven.submission")

SELF_SIGNED_FILE = "smtp-tls.pem"  # in the data directory: the key, then the certificate
SELF_SIGNED_DAYS = 825  # the longest validity clients have accepted for a server certificate
ONE_OF_TWO = "Set both MAILHAVEN_TLS_CERT_FILE and MAILHAVEN_TLS_KEY_FILE, or neither"


class TlsSetupError(Exception):
    """The configured certificate can't be used; the message says which setting to fix."""


def server_context(settings: Settings) -> ssl.SSLContext:
    """A server context for STARTTLS and implicit TLS: TLS 1.2 and later, the default
    cipher choice of Python's `create_default_context`, no client certificates asked."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if (cert is None) != (key is None):
        raise TlsSetupError(ONE_OF_TWO)
    if cert is None or key is None:
        context.load_cert_chain(self_signed(settings.data_dir, settings.hostname))
        return context
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"MAILHAVEN_TLS_CERT_FILE ({cert}) and MAILHAVEN_TLS_KEY_FILE ({key}) can't be "
            f"used: {exc.strerror or exc}") from None
    return context


def self_signed(data_dir: Path, hostname: str) -> Path:
    """The data directory's self-signed key and certificate for `hostname`, made on first
    use. Written under a temporary name and linked into place, so two processes starting
    at once both end up with the first one's pair, never with a key and another's
    certificate."""
    path = data_dir / SELF_SIGNED_FILE
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    pem, fingerprint = _make_pair(hostname)
    temporary = data_dir / f".{SELF_SIGNED_FILE}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
        os.link(temporary, path)
    except FileExistsError:
        return path  # another process made one first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
    log.warning(json.dumps({
        "kind": "smtp-tls", "state": "self-signed certificate made", "file": str(path),
        "hostname": hostname, "sha256": fingerprint,
        "hint": "set MAILHAVEN_TLS_CERT_FILE and MAILHAVEN_TLS_KEY_FILE for a trusted one"}))
    return path


def _make_pair(hostname: str) -> tuple[bytes, str]:
    """An ECDSA P-256 key and a certificate for `hostname` signed with it (PEM, key first),
    and the certificate's SHA-256 fingerprint as clients show it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    try:
        alternative: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        alternative = x509.DNSName(hostname)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([alternative]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += certificate.public_bytes(serialization.Encoding.PEM)
    return pem, fingerprint(certificate.public_bytes(serialization.Encoding.DER))


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` writes it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
