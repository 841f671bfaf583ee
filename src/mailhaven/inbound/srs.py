"""The Sender Rewriting Scheme (SRS0, as libsrs2 and Postfix's postsrsd write it), for
forward("addr@…"): the copy leaves with an envelope sender on the receiving domain, so
SPF at the destination checks our domain, not the original sender's.

    SRS0=HHHH=TT=original-domain=original-local@receiving-domain

HHHH: the first 4 characters of the base64 HMAC-SHA1 of TT, the domain and the local part
(lower-cased), under a secret derived from the vault's token key; TT: the day, two base32
characters (days since the epoch, mod 1024). Only we check the hash (`reverse`), so a
bounce can't be turned into an open relay. The null sender is never rewritten: a bounce
being forwarded stays a bounce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from mailhaven.vault import Vault

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
DAY = 86400
MAX_AGE_DAYS = 21  # libsrs2's default: a bounce later than this is refused
HASH_CHARS = 4


def _secret(vault: Vault) -> bytes:
    return vault.token_mac("srs-secret", 64).encode()


def _stamp(now: float) -> str:
    day = int(now // DAY) % 1024
    return BASE32[day >> 5] + BASE32[day & 31]


def _hash(vault: Vault, stamp: str, domain: str, local: str) -> str:
    digest = hmac.new(_secret(vault), f"{stamp}{domain}{local}".lower().encode(),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()[:HASH_CHARS]


def forward(vault: Vault, sender: str, forwarder: str, now: float) -> str:
    """`sender` (the envelope sender as received) rewritten onto the `forwarder` domain;
    "" stays "" (a null sender is never rewritten)."""
    if not sender or "@" not in sender:
        return sender
    local, _, domain = sender.rpartition("@")
    stamp = _stamp(now)
    return f"SRS0={_hash(vault, stamp, domain, local)}={stamp}={domain}={local}@{forwarder}"


def reverse(vault: Vault, address: str, now: float) -> str | None:
    """The original sender an SRS0 address of ours stands for, if its hash is ours and it
    is at most MAX_AGE_DAYS old; else None (for the MX, to send a bounce back)."""
    local = address.rpartition("@")[0]
    if local[:5].upper() != "SRS0=":
        return None
    parts = local[5:].split("=", 3)
    if len(parts) != 4:
        return None
    given, stamp, domain, original = parts
    if len(stamp) != 2 or any(c not in BASE32 for c in stamp.upper()):
        return None
    expected = _hash(vault, stamp.upper(), domain, original)
    if not hmac.compare_digest(given.lower(), expected.lower()):
        return None
    then = BASE32.index(stamp[0].upper()) << 5 | BASE32.index(stamp[1].upper())
    age = (int(now // DAY) - then) % 1024
    if age > MAX_AGE_DAYS:
        return None
    return f"{original}@{domain}"
