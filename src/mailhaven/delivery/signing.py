"""DKIM signatures (dkimpy) and the VERP return path of each copy."""

from __future__ import annotations

import re

import dkim

from mailhaven.vault import Vault

SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"mime-version", b"content-type", b"list-unsubscribe",
                  b"list-unsubscribe-post", b"x-mailgun-variables"]
_LINE_END = re.compile(rb"\r?\n")


def dkim_sign(data: bytes, *, domain: str, selector: str, private_pem: bytes) -> bytes:
    """The message with a DKIM-Signature header (relaxed/relaxed, rsa-sha256) prepended."""
    # Raw MIME may come with bare LFs; SMTP sends CRLF anyway, and only with CRLF can we
    # find the header block and sign the headers that are really there.
    data = _LINE_END.sub(b"\r\n", data)
    present = {line.split(b":", 1)[0].strip().lower()
               for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if b":" in line}
    headers = [h for h in SIGNED_HEADERS if h in present]
    signature = dkim.sign(data, selector.encode(), domain.encode(), private_pem,
                          canonicalize=(b"relaxed", b"relaxed"), include_headers=headers)
    return signature + data


def return_path(vault: Vault, delivery_id: int, domain: str) -> str:
    """`bounce+<id>-<mac>@domain`: names the delivery, not the recipient, and can't be forged."""
    token = f"{delivery_id}-{vault.token_mac(str(delivery_id))}"
    return f"bounce+{token}@{domain}"
