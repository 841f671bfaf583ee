"""Signed tracking URLs: `/o/` opens, `/c/` clicks, `/u/` unsubscribes.

A token names the delivery (one message to one recipient) and, for a click, the target URL,
and carries a 128-bit MAC under the vault's token key: it can't be guessed, altered or
pointed somewhere else (no open redirect), and it holds no address.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass

from mailhaven.vault import Vault
from mailhaven.vault.service import TokenMac

KINDS = {"o": "open", "c": "click", "u": "unsubscribe"}
_MAC_LENGTH = 32  # hex: 128 bits
# What make() writes: the shape is no secret, so a malformed token (non-ASCII, a MAC not hex)
# is turned away before the MAC, with the answer a forged one gets.
_TOKEN = re.compile(rf"([A-Za-z0-9_-]+)\.([0-9a-f]{{{_MAC_LENGTH}}})", re.ASCII)


@dataclass(frozen=True)
class Link:
    kind: str  # "o" | "c" | "u"
    delivery_id: int
    data: str  # the URL of a click; "*" or the tags (JSON) of an unsubscribe


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make(vault: Vault | TokenMac, link: Link) -> str:
    body = _b64(f"{link.kind}|{link.delivery_id}|{link.data}".encode())
    return f"{body}.{vault.token_mac('track:' + body, _MAC_LENGTH)}"


def read(vault: Vault, token: str) -> Link | None:
    """The link a token stands for, or None for anything we did not make."""
    shape = _TOKEN.fullmatch(token)
    if shape is None:
        return None
    body, mac = shape.groups()
    if not hmac.compare_digest(vault.token_mac("track:" + body, _MAC_LENGTH).encode(),
                               mac.encode()):
        return None
    try:
        kind, delivery_id, data = base64.urlsafe_b64decode(
            body + "=" * (-len(body) % 4)).decode().split("|", 2)
        return Link(kind, int(delivery_id), data)
    except ValueError:
        return None


def url(base: str, vault: Vault | TokenMac, link: Link) -> str:
    return f"{base}/{link.kind}/{make(vault, link)}"
