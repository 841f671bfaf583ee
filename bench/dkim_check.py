"""Both sides of `postfix.py` sign with the same key: Mailhaven's domain key exported for
OpenDKIM, what each side signs printed, and Postfix + OpenDKIM's output verified at a sink.

The key is the one `seed` created for the bench domain (2048-bit RSA, its selector), read
back in this process through the vault as the worker reads it (`domains.keys`), and written
for OpenDKIM (bench/mta.py `OpenDkim`). A sample of messages is relayed by Postfix to a
capturing aiosmtpd sink (a `transport_maps` entry for one recipient domain, so the counting
sink of the timed phases is not involved) and each DKIM-Signature is verified with dkimpy
against the public key, served by a DNS stub (`dnsfunc`): no DNS query leaves the machine.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization

from common import DOMAIN
from mailhaven.delivery.signing import SIGNED_HEADERS, DkimSigner
from mailhaven.domains import keys
from mailhaven.domains.dkim import RSA
from mailhaven.domains.service import owned_domain
from mailhaven.services import Services

VERIFY_DOMAIN = "verify.bench.test"  # recipients here go to the capturing sink
HEADERS = [h.decode() for h in SIGNED_HEADERS]  # OpenDKIM's SignHeaders: Mailhaven's list


@dataclass(frozen=True)
class DomainKey:
    selector: str
    private_pem: bytes

    def dns_txt(self) -> bytes:
        """The TXT record of `selector._domainkey.domain`."""
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        der = private.public_key().public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def dnsfunc(self, name: bytes | str, **_options: object) -> bytes:
        wanted = f"{self.selector}._domainkey.{DOMAIN}."
        asked = name.decode() if isinstance(name, bytes) else name
        return self.dns_txt() if asked.rstrip(".") == wanted.rstrip(".") else b""


def export_key(services: Services, account_id: str) -> DomainKey:
    """The bench domain's signing key (its primary, RSA), as Mailhaven's worker signs with."""
    with services.db.sessions() as session:
        domain = owned_domain(session, account_id, DOMAIN)
        signing = keys.signing(domain)
        if len(signing) != 1 or signing[0].algorithm != RSA:
            raise RuntimeError(f"expected one RSA signing key, got "
                               f"{[(k.selector, k.algorithm) for k in signing]}")
        key = signing[0]
        return DomainKey(key.selector, keys.private_key(services.vault, key))


def signature_tags(message: bytes) -> dict[str, str]:
    """The tags of a message's first DKIM-Signature (b= and bh= shortened)."""
    head = message.partition(b"\r\n\r\n")[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"dkim-signature:"):
            value = line.split(b":", 1)[1].decode()
            tags = {}
            for part in value.split(";"):
                name, _, tag = part.strip().partition("=")
                if name:
                    tags[name] = re.sub(r"\s+", "", tag)
            for name in ("b", "bh"):
                if name in tags:
                    tags[name] = tags[name][:12] + "..."
            return tags
    return {}


def describe(who: str, tags: dict[str, str]) -> str:
    shown = " ".join(f"{k}={tags.get(k, '-')}" for k in ("a", "c", "d", "s"))
    headers = ":".join(h.strip().lower() for h in tags.get("h", "").split(":"))
    return f"  {who:<18} {shown} h={headers}"


def mailhaven_signature(key: DomainKey, message: bytes) -> dict[str, str]:
    """What Mailhaven's DkimSigner puts on `message` with this key."""
    signer = DkimSigner(domain=DOMAIN, keys=[(key.selector, key.private_pem)])
    return signature_tags(signer.sign(message, timestamp=int(time.time())))


class CaptureSink:
    """An aiosmtpd server on 127.0.0.1:port (a thread of this process) that keeps what it
    receives: the sample relayed by Postfix."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[bytes] = []
        self._got = threading.Condition()
        outer = self

        class Keep:
            async def handle_DATA(self, _server: object, _session: object,
                                  envelope: object) -> str:
                with outer._got:
                    outer.messages.append(envelope.original_content)  # type: ignore[attr-defined]
                    outer._got.notify_all()
                return "250 2.0.0 kept"

        self.controller = Controller(Keep(), hostname="127.0.0.1", port=port,
                                     server_hostname="capture.bench.test")
        self.controller.start()

    def wait_for(self, count: int, timeout: float) -> list[bytes]:
        with self._got:
            if not self._got.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"the capturing sink has {len(self.messages)} of {count}")
            return list(self.messages)

    def stop(self) -> None:
        self.controller.stop()


def verify_all(key: DomainKey, messages: list[bytes]) -> int:
    """How many of `messages` carry a DKIM-Signature dkimpy verifies (d= the bench domain,
    s= the key's selector); raises on the first that does not."""
    for number, message in enumerate(messages):
        tags = signature_tags(message)
        if tags.get("d") != DOMAIN or tags.get("s") != key.selector:
            raise RuntimeError(f"sample {number}: no signature by {key.selector}: {tags}")
        if not dkim.verify(message, dnsfunc=key.dnsfunc):
            raise RuntimeError(f"sample {number}: its DKIM-Signature does not verify: {tags}")
    return len(messages)
