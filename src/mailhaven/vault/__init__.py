"""The vault (SPEC N2): the only door through which personal data is stored and read."""

from mailhaven.vault.keyring import Keyring, load_or_create_keyring
from mailhaven.vault.models import VaultKey
from mailhaven.vault.service import Vault

__all__ = ["Keyring", "Vault", "VaultKey", "load_or_create_keyring"]
