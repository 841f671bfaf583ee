"""The master key file: key-encryption keys (KEKs) by version, and a separate blind-index key.

The file holds one KEK, except while a rotation runs (vault/rotation.py): then it holds the
old ones too, until no stored row is wrapped under them any more.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

LEGACY_VERSION = 1  # the KEK of a version-1 file: rows wrapped before versions existed


@dataclass(frozen=True)
class Keyring:
    keks: dict[int, bytes]  # version -> KEK; wraps every subject and content key (AES-GCM)
    current: int  # the version new wraps use
    index_key: bytes = field(repr=False)  # keys the blind index (HMAC); never rotated here

    def __post_init__(self) -> None:
        if self.current not in self.keks:
            raise ValueError("the current KEK is not in the keyring")

    @property
    def kek(self) -> bytes:
        return self.keks[self.current]

    @property
    def rotating(self) -> bool:
        return len(self.keks) > 1

    def with_new_kek(self) -> Keyring:
        version = max(self.keks) + 1
        return replace(self, keks={**self.keks, version: secrets.token_bytes(32)},
                       current=version)

    def without_old_keks(self) -> Keyring:
        return replace(self, keks={self.current: self.kek})

    def to_json(self) -> str:
        return json.dumps({
            "version": 2,
            "current": self.current,
            "keks": {str(v): base64.b64encode(k).decode() for v, k in sorted(self.keks.items())},
            "index_key": base64.b64encode(self.index_key).decode(),
        })

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        data = json.loads(text)
        index_key = base64.b64decode(data["index_key"])
        if data.get("version", 1) == 1:
            return cls({LEGACY_VERSION: base64.b64decode(data["kek"])}, LEGACY_VERSION,
                       index_key)
        keks = {int(v): base64.b64decode(k) for v, k in data["keks"].items()}
        return cls(keks, int(data["current"]), index_key)

    @classmethod
    def generate(cls) -> Keyring:
        return cls({LEGACY_VERSION: secrets.token_bytes(32)}, LEGACY_VERSION,
                   secrets.token_bytes(32))


def load_or_create_keyring(path: Path) -> Keyring:
    """Read the key file, writing a new one (mode 0600) on first start."""
    if path.exists():
        return Keyring.from_json(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = Keyring.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, keyring.to_json().encode())
    finally:
        os.close(fd)
    return keyring


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Replace the key file atomically (mode 0600): a crash leaves the old file or the new
    one, never half of either, and readers see one or the other."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, keyring.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
