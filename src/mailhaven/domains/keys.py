"""A domain's DKIM keys over their life: pending → active → retiring → deleted.

A rotation adds a `pending` key, published beside the key that signs today. When DNS shows
the new record, the new key signs and the old one of its algorithm is `retiring`: still
published for RETIRE_SECONDS, so mail it signed still verifies wherever it is read late,
then deleted. Every domain always has one active RSA key; an active Ed25519 key signs
beside it (dual signing, because many receivers cannot verify Ed25519 yet).
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhaven.domains.dkim import ED25519, KEY_SIZES, RSA, DkimKeyPair
from mailhaven.domains.models import DkimKey, Domain
from mailhaven.errors import BadRequest
from mailhaven.storage.base import new_id
from mailhaven.storage.db import affected
from mailhaven.vault import Vault

ACTIVE, PENDING, RETIRING = "active", "pending", "retiring"
RETIRE_SECONDS = 7 * 86400
ALGORITHMS = {"rsa": RSA, "rsa-sha256": RSA, "ed25519": ED25519, "ed25519-sha256": ED25519}
ED25519_SUFFIX = "-ed"  # the Ed25519 key's selector beside the RSA one: mh202611-ed
MAX_LABEL = 63  # one DNS label; also the width of the selector and web_prefix columns
LABELS = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
_ORDER = {ACTIVE: 0, PENDING: 1, RETIRING: 2}


# -- reading the API's fields ------------------------------------------------------------
def algorithm_field(value: str | None) -> str:
    """`dkim_algorithm` (a Mailhaven extension): rsa (default) or ed25519."""
    algorithm = ALGORITHMS.get((value or "rsa").strip().lower())
    if algorithm is None:
        raise BadRequest("dkim_algorithm must be rsa or ed25519")
    return algorithm


def key_size_field(value: str | None) -> int:
    try:
        size = int(value or 2048)
    except ValueError:
        size = 0
    if size not in KEY_SIZES:
        raise BadRequest("dkim_key_size must be 1024 or 2048")
    return size


def selector_field(value: str) -> str:
    selector = value.strip().lower()
    if len(selector) > MAX_LABEL or not LABELS.match(selector):
        raise BadRequest(f"'{selector}' is not a valid dkim_selector")
    return selector


def default_selector(now: float) -> str:
    return "mh" + datetime.fromtimestamp(now, UTC).strftime("%Y%m")


def companion_selector(selector: str) -> str:
    """The Ed25519 key's selector for a domain created with `selector` for its RSA key."""
    return selector_field(selector + ED25519_SUFFIX)


# -- the keys of a domain ----------------------------------------------------------------
def new_key(vault: Vault, domain_id: str, selector: str, pair: DkimKeyPair, state: str,
            now: float) -> DkimKey:
    return DkimKey(
        id=new_id(), domain_id=domain_id, selector=selector, algorithm=pair.algorithm,
        key_size=pair.bits, public_key=pair.public_b64, state=state, created_at=now,
        activated_at=now if state == ACTIVE else None, retire_after=None,
        # Sealed as before keys had a table of their own (migration 0006 moved them as
        # they were): bound to the domain, so a key can't be replayed on another one.
        private_key=vault.seal_secret(f"dkim:{domain_id}", pair.private_pem),
    )


def private_key(vault: Vault, key: DkimKey) -> bytes:
    return vault.open_secret(f"dkim:{key.domain_id}", key.private_key)


def published(domain: Domain) -> list[DkimKey]:
    """Every key whose record belongs in DNS: signing first, RSA before Ed25519."""
    return sorted(domain.dkim_keys, key=lambda k: (
        _ORDER.get(k.state, 3), k.algorithm != RSA, k.created_at, k.selector))


def signing(domain: Domain) -> list[DkimKey]:
    """The keys mail is signed with, RSA first: a receiver that reads only the topmost
    signature then reads the one it can verify."""
    return [k for k in published(domain) if k.state == ACTIVE]


def primary(domain: Domain) -> DkimKey:
    """The active RSA key: the domain's key as Mailgun's API knows it."""
    return next(k for k in signing(domain) if k.algorithm == RSA)


# -- changing them -----------------------------------------------------------------------
def rotate(session: Session, vault: Vault, domain: Domain, pair: DkimKeyPair,
           selector: str | None, now: float) -> DkimKey:
    """Add a pending key of `pair`'s algorithm. A rotation of that algorithm still pending
    is replaced: its key never signed anything."""
    for old in [k for k in domain.dkim_keys if k.state == PENDING
                and k.algorithm == pair.algorithm]:
        domain.dkim_keys.remove(old)
    session.flush()  # its selector is free before the new key may take it
    if selector is None:
        selector = _free_selector(domain, default_selector(now), pair.algorithm)
    elif _taken(domain, selector):
        raise BadRequest(f"The DKIM selector {selector} is already used by this domain")
    key = new_key(vault, domain.id, selector, pair, PENDING, now)
    domain.dkim_keys.append(key)
    return key


def _free_selector(domain: Domain, base: str, algorithm: str) -> str:
    suffix = ED25519_SUFFIX if algorithm == ED25519 else ""
    for letter in ["", *string.ascii_lowercase[1:]]:  # mh202611, mh202611b, mh202611c…
        if not _taken(domain, base + letter + suffix):
            return base + letter + suffix
    raise BadRequest("No DKIM selector is free this month; give one in dkim_selector")


def _taken(domain: Domain, selector: str) -> bool:
    return any(k.selector == selector for k in domain.dkim_keys)


def rename_primary(domain: Domain, selector: str) -> None:
    """Mailgun's PUT dkim_selector: the domain's key is published and signs under a new name
    from now on, so its record must be (re)published there."""
    key = primary(domain)
    if key.selector != selector and _taken(domain, selector):
        raise BadRequest(f"The DKIM selector {selector} is already used by this domain")
    key.selector = selector


def promote(domain: Domain, verified: set[str], now: float) -> None:
    """Pending keys whose record DNS now shows (by selector) start signing; the key each
    replaces retires."""
    for key in [k for k in domain.dkim_keys if k.state == PENDING and k.selector in verified]:
        for old in domain.dkim_keys:
            if old.state == ACTIVE and old.algorithm == key.algorithm:
                old.state, old.retire_after = RETIRING, now + RETIRE_SECONDS
        key.state, key.activated_at = ACTIVE, now


def drop_retired(domain: Domain, now: float) -> None:
    for key in [k for k in domain.dkim_keys if k.state == RETIRING
                and k.retire_after is not None and k.retire_after <= now]:
        domain.dkim_keys.remove(key)


def retired_due(session: Session, now: float) -> list[str]:
    return list(session.scalars(select(DkimKey.id).where(
        DkimKey.state == RETIRING, DkimKey.retire_after <= now)))


def delete_retired(session: Session, ids: list[str], now: float) -> int:
    result = session.execute(delete(DkimKey).where(
        DkimKey.id.in_(ids), DkimKey.state == RETIRING, DkimKey.retire_after <= now))
    return affected(result)
