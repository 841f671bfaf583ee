"""The master key file: a key-encryption key and a separate blind-index key."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Keyring:
    kek: bytes  # wraps every subject and content key (AES-256-GCM)
    index_key: bytes  # keys the blind index (HMAC-SHA256); never encrypts anything

    def to_json(self) -> str:
        return json.dumps({
            "version": 1,
            "kek": base64.b64encode(self.kek).decode(),
            "index_key": base64.b64encode(self.index_key).decode(),
        })

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        data = json.loads(text)
        return cls(base64.b64decode(data["kek"]), base64.b64decode(data["index_key"]))

    @classmethod
    def generate(cls) -> Keyring:
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))


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
