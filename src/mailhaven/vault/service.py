"""Seal and open personal data under per-subject keys; find subjects by blind index.

Every personal value at rest is AES-256-GCM ciphertext under a data key, and every data
key is stored only wrapped by the master key. Erasing a subject is deleting its key row.
A wrapped blob names the version of the KEK that wraps it, so a rotation can re-wrap rows
one batch at a time while every row stays readable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Select, case, select, update
from sqlalchemy.orm import Session

from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.storage.base import new_id, table
from mailhaven.storage.db import affected, insert_for
from mailhaven.vault.keyring import LEGACY_VERSION, Keyring
from mailhaven.vault.models import DESTROYED, ERASED, VaultKey

_NONCE = 12
_CACHE_SIZE = 4096
_MARK = 0x4B  # a wrapped blob: MARK, KEK version (2 bytes), nonce, ciphertext
_HEADER = 3


def _signature(path: Path | None) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path) if path is not None else None
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size) if info else None


def _candidates(blob: bytes, versions: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """The (version, nonce + ciphertext) readings of a wrapped blob. Blobs from before KEK
    versions carry no header; a header-less reading under the legacy KEK is tried too, as
    such a blob may begin with the header's bytes by chance (AES-GCM rejects a wrong one)."""
    if len(blob) > _HEADER + _NONCE and blob[0] == _MARK:
        version = int.from_bytes(blob[1:_HEADER], "big")
        if version in versions:
            yield version, blob[_HEADER:]
    if LEGACY_VERSION in versions:
        yield LEGACY_VERSION, blob


class WrappedKey(Protocol):
    """What opening under a key needs: a VaultKey, or a row of its id and wrapped key."""

    @property
    def id(self) -> str: ...
    @property
    def wrapped_key(self) -> bytes: ...


class Opener:
    """Opens what one key sealed (`Vault.open` with that key), without looking it up again."""

    __slots__ = ("_cipher",)

    def __init__(self, cipher: AESGCM) -> None:
        self._cipher = cipher

    def __call__(self, sealed: bytes, context: str = "") -> bytes:
        return self._cipher.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())


def normalize_address(address: str) -> str:
    """The form an address is indexed under: trimmed and lower-cased. The only one: every
    blind index, and every lookup of a subject key by address, goes through it."""
    return address.strip().lower()


class Subjects(Mapping[str, VaultKey]):
    """Subject keys by address, looked up under `normalize_address` (however the caller
    spells it). A missing address raises a KeyError that does not name it: an exception's
    message reaches log lines, where no address may go."""

    def __init__(self, by_address: dict[str, VaultKey]) -> None:
        self._keys = by_address

    def __getitem__(self, address: str) -> VaultKey:
        try:
            return self._keys[normalize_address(address)]
        except KeyError:
            raise KeyError("no subject key for this address") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): shown as nothing, so
# "an\u00adn@…" (a soft hyphen) looks like "ann@…" and may well reach the same mailbox.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")


def _folded(text: str) -> str:
    """NFKC with case folding and without invisible code points (fullwidth ＡＮＮ is ann)."""
    text = _IGNORABLE.sub("", unicodedata.normalize("NFKC", text))
    return unicodedata.normalize("NFKC", text.casefold()).strip()


def canonical_domain(name: str) -> str:
    """One spelling of a domain name: folded as `canonical_mailbox` does, in IDNA's ASCII
    form (bücher.example and xn--bcher-kva.example are one), without the final dot."""
    name = _folded(name).rstrip(".")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:  # an empty or overlong label: not a name IDNA can spell
        return name


def canonical_mailbox(address: str) -> str:
    """One spelling per mailbox, for counting what is sent to it, never for finding what is
    stored (the blind index keeps `normalize_address`): NFKC, invisible code points dropped,
    case folded, the domain as `canonical_domain`, and no `+tag` (most providers deliver
    ann+x@ to ann@)."""
    local, at, domain = _folded(address).rpartition("@")
    if not at:
        return _folded(address)
    return f"{local.split('+', 1)[0]}@{canonical_domain(domain)}"


class TokenMac:
    """The authenticator of the tokens we hand out, on its own: all that a process which
    renders mail (tracking links) needs of the vault, and picklable to get there."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def token_mac(self, value: str, length: int = 12) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:length]


class Vault:
    def __init__(self, keyring: Keyring, clock: Clock = SYSTEM_CLOCK,
                 key_file: Path | None = None) -> None:
        self._keks = (keyring.current, {v: AESGCM(k) for v, k in keyring.keks.items()})
        self._index_key = keyring.index_key
        self._key_file = key_file
        self._key_file_seen = _signature(key_file)
        self._clock = clock
        self._unwrapped: OrderedDict[str, AESGCM] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- blind index ---------------------------------------------------------------
    def blind_index(self, account_id: str, value: str) -> str:
        """A keyed hash, scoped by account, so equal addresses can be found but not read."""
        msg = f"{account_id}\x00{normalize_address(value)}".encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()

    def message_index(self, account_id: str, message_id: str) -> str:
        """The blind index of a Message-ID (with or without its <>): client ids such as
        order-77.zelda@shop.test are personal data. In a namespace of its own, so it never
        equals the index of an address; normalised as addresses are (case-insensitive)."""
        return self.blind_index(account_id, f"message-id\x00{message_id.strip().strip('<>')}")

    # -- the master key ----------------------------------------------------------------
    def reload(self) -> bool:
        """Take up the key file's KEKs if the file changed: a rotation (in this process or
        another) added a KEK or retired old ones. Cheap when it did not (one stat)."""
        seen = _signature(self._key_file)
        if self._key_file is None or seen is None or seen == self._key_file_seen:
            return False
        ring = Keyring.from_json(self._key_file.read_text())
        if ring.index_key != self._index_key:  # every blind index would silently stop matching
            raise RuntimeError(f"{self._key_file}: the blind-index key changed; refusing it")
        self._keks = (ring.current, {v: AESGCM(k) for v, k in ring.keks.items()})
        self._key_file_seen = seen
        return True

    def _wrap(self, label: str, raw: bytes) -> bytes:
        self.reload()  # a rotation may have begun: new rows go under its new KEK
        current, keks = self._keks
        nonce = secrets.token_bytes(_NONCE)
        return (bytes([_MARK]) + current.to_bytes(_HEADER - 1, "big") + nonce
                + keks[current].encrypt(nonce, raw, label.encode()))

    def _unwrap(self, label: str, blob: bytes) -> tuple[int, bytes]:
        """(KEK version, plaintext); InvalidTag when no KEK of the key file opens it."""
        for retried in (False, True):
            _, keks = self._keks
            for version, body in _candidates(blob, keks):
                try:
                    return version, keks[version].decrypt(body[:_NONCE], body[_NONCE:],
                                                          label.encode())
                except InvalidTag:
                    continue
            if retried or not self.reload():  # wrapped by a KEK this process doesn't know yet
                break
        raise InvalidTag()

    def rewrap(self, label: str, blob: bytes) -> bytes | None:
        """`blob` wrapped under the current KEK, or None when it already is. The wrapped
        value itself (a data key, a secret) is unchanged: nothing it encrypts is touched."""
        version, raw = self._unwrap(label, blob)
        return None if version == self._keks[0] else self._wrap(label, raw)

    # -- keys ------------------------------------------------------------------------

    def _cipher(self, key: WrappedKey) -> AESGCM:
        with self._cache_lock:  # API and worker threads share the cache
            cipher = self._unwrapped.get(key.id)
            if cipher is not None:
                self._unwrapped.move_to_end(key.id)
                return cipher
        cipher = AESGCM(self._unwrap(key.id, key.wrapped_key)[1])
        with self._cache_lock:
            self._unwrapped[key.id] = cipher
            if len(self._unwrapped) > _CACHE_SIZE:
                self._unwrapped.popitem(last=False)
        return cipher

    def forget(self, key_id: str) -> None:
        """Drop an unwrapped key from memory (after its row is erased)."""
        with self._cache_lock:
            self._unwrapped.pop(key_id, None)

    def forget_all(self, key_ids: set[str]) -> None:
        """`forget` each of these (many: the cache is walked, not the set)."""
        with self._cache_lock:
            for key_id in [k for k in self._unwrapped if k in key_ids]:
                del self._unwrapped[key_id]

    def destroy(self, session: Session, keys: Iterable[str] | Select[Any]) -> int:
        """Destroy these keys at once (what they sealed is unreadable from the commit on)
        without deleting their rows: the key material goes (DESTROYED), the row stays until
        the rows that reference it are deleted; a subject key also loses its blind index and
        becomes ERASED, while a content key's indexed columns keep their values (a HOT
        update on PostgreSQL). `keys`: ids, or a SELECT of them (one statement however
        many; the caller `forget`s those it knows). How many were destroyed (not counting
        those destroyed already)."""
        if isinstance(keys, Select):
            which = [VaultKey.id.in_(keys)]
        else:
            ids = sorted(set(keys))
            which = [VaultKey.id.in_(ids[start:start + 500])
                     for start in range(0, len(ids), 500)]
            self.forget_all(set(ids))
        subject = VaultKey.purpose == "subject"
        return sum(affected(session.execute(
            update(VaultKey).where(these, VaultKey.wrapped_key != DESTROYED)
            .values(wrapped_key=DESTROYED,
                    purpose=case((subject, ERASED), else_=VaultKey.purpose),
                    blind_index=case((subject, None), else_=VaultKey.blind_index))
            .execution_options(synchronize_session=False))) for these in which)

    def _new_key_row(self, account_id: str, purpose: str, blind_index: str | None) -> dict:
        key_id = new_id()
        return {
            "id": key_id, "account_id": account_id, "purpose": purpose,
            "blind_index": blind_index, "created_at": self._clock.now(),
            "wrapped_key": self._wrap(key_id, AESGCM.generate_key(bit_length=256)),
        }

    def new_content_key(self, session: Session, account_id: str) -> VaultKey:
        return self.new_content_keys(session, [account_id])[0]

    def new_content_keys(self, session: Session, account_ids: list[str]) -> list[VaultKey]:
        """A new key for each account named, inserted at once in one statement (rows that
        reference them follow as plain INSERTs); the objects returned are not in the
        session, like the keys `subjects` creates."""
        rows = [self._new_key_row(account_id, "content", None) for account_id in account_ids]
        session.execute(table(VaultKey).insert(), rows)
        return [VaultKey(**row) for row in rows]

    def subject(self, session: Session, account_id: str, address: str) -> VaultKey:
        """The subject key of one address, created if missing."""
        return self.subjects(session, account_id, [address])[address]

    def subjects(self, session: Session, account_id: str,
                 addresses: Iterable[str]) -> Subjects:
        """The subject key of each address, created where missing (safe under concurrency)."""
        by_index = {self.blind_index(account_id, a): normalize_address(a) for a in addresses}
        found = self._find(session, account_id, list(by_index))
        missing = [i for i in by_index if i not in found]
        if missing:
            # In index order: concurrent first uses take the unique index's locks in one order.
            rows = {i: self._new_key_row(account_id, "subject", i) for i in sorted(missing)}
            inserted = session.execute(
                insert_for(session, VaultKey).on_conflict_do_nothing()
                .returning(VaultKey.blind_index),
                list(rows.values()),
            ).scalars().all()
            found.update({i: VaultKey(**rows[i]) for i in inserted})
            raced = [i for i in missing if i not in found]  # another writer inserted them
            if raced:
                found.update(self._find(session, account_id, raced))
        return Subjects({by_index[i]: key for i, key in found.items()})

    @staticmethod
    def keys(session: Session, ids: Iterable[str | None]) -> dict[str, VaultKey]:
        """The keys with these ids that still exist (an erased key is simply absent, its row
        deleted or DESTROYED); asked 500 at a time, within every database's limit of bound
        parameters."""
        wanted = sorted({i for i in ids if i})
        return {k.id: k for start in range(0, len(wanted), 500)
                for k in session.scalars(select(VaultKey).where(
                    VaultKey.id.in_(wanted[start:start + 500]),
                    VaultKey.wrapped_key != DESTROYED))}

    def openers(self, session: Session, ids: Iterable[str | None]) -> dict[str, Opener]:
        """What opens under each of the keys with these ids that still exist (an erased key
        is absent, as in `keys`), for ids just read from the rows sealed under them.

        Each is asked of the database, however recently used: an erasure destroys a key in
        its row (DESTROYED) and the rows sealed under it stay a while, so only the database
        knows whether a key another process has erased still exists. A key already
        unwrapped in this process is not unwrapped again; the others are read as rows of
        their id and wrapped key (no ORM object: a page of events may have 300 keys)."""
        wanted = sorted({i for i in ids if i})
        keys = table(VaultKey).c  # Core columns: no ORM step around the statement
        return {key.id: Opener(self._cipher(key))
                for start in range(0, len(wanted), 500)
                for key in session.execute(select(keys.id, keys.wrapped_key).where(
                    keys.id.in_(wanted[start:start + 500]),
                    keys.wrapped_key != DESTROYED))}

    def find_subject(self, session: Session, account_id: str, address: str) -> VaultKey | None:
        index = self.blind_index(account_id, address)
        return self._find(session, account_id, [index]).get(index)

    @staticmethod
    def _find(session: Session, account_id: str, indexes: list[str]) -> dict[str, VaultKey]:
        found: dict[str, VaultKey] = {}
        for start in range(0, len(indexes), 500):
            chunk = indexes[start:start + 500]
            rows = session.scalars(select(VaultKey).where(
                VaultKey.account_id == account_id, VaultKey.purpose == "subject",
                VaultKey.blind_index.in_(chunk),
            ))
            found.update({row.blind_index: row for row in rows if row.blind_index})
        return found

    # -- sealing ---------------------------------------------------------------------
    def seal(self, key: VaultKey, plaintext: bytes, context: str = "") -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._cipher(key).encrypt(nonce, plaintext, context.encode())

    def open(self, key: WrappedKey, sealed: bytes, context: str = "") -> bytes:
        return self._cipher(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())

    def seal_text(self, key: VaultKey, text: str, context: str = "") -> bytes:
        return self.seal(key, text.encode(), context)

    def open_text(self, key: WrappedKey, sealed: bytes, context: str = "") -> str:
        return self.open(key, sealed, context).decode()

    # -- platform secrets (DKIM private keys, webhook signing keys): wrapped by the master
    # key directly. Their column declares the label (info["master_key_label"]), so a
    # rotation finds and re-wraps them.
    def seal_secret(self, label: str, secret: bytes) -> bytes:
        return self._wrap(label, secret)

    def open_secret(self, label: str, sealed: bytes) -> bytes:
        return self._unwrap(label, sealed)[1]

    # -- short authenticators for tokens we hand out (VERP return paths, later links) -----
    @property
    def tokens(self) -> TokenMac:
        return TokenMac(hmac.new(self._index_key, b"mailhaven token mac",
                                 hashlib.sha256).digest())

    def token_mac(self, value: str, length: int = 12) -> str:
        return self.tokens.token_mac(value, length)

    # -- the audit log's hash chain (SPEC N14) ----------------------------------------
    def audit_mac(self, data: bytes) -> str:
        """HMAC-SHA256 under a key of its own derived from the index key: whoever can write
        to the database but lacks the key file cannot recompute the chain after an edit."""
        key = hmac.new(self._index_key, b"mailhaven audit log", hashlib.sha256).digest()
        return hmac.new(key, data, hashlib.sha256).hexdigest()
