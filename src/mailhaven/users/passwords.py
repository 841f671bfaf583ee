"""What a new password must be: long enough, not one everybody tries first, not the address.
No composition rules (NIST SP 800-63B): length does the work, a short deny list the rest."""

from __future__ import annotations

from mailhaven.errors import BadRequest
from mailhaven.users.service import MAX_PASSWORD, MIN_PASSWORD, PASSWORD_LENGTH, hash_password
from mailhaven.vault.service import normalize_address

# The long passwords that lead the breach corpora (12 characters and more, lower-cased).
COMMON_PASSWORDS = frozenset({
    "password1234", "password12345", "password123456", "passwordpassword", "123456789012",
    "1234567890123", "12345678901234", "123456789000", "qwertyuiop12", "qwertyuiop123",
    "qwerty123456", "123456qwerty", "1q2w3e4r5t6y", "1qaz2wsx3edc", "qazwsxedcrfv",
    "iloveyou1234", "abcdefghijkl", "abc123456789", "letmein12345", "welcome12345",
    "changeme1234", "administrator", "mailhaven123", "correcthorsebatterystaple",
})
TOO_COMMON = "This password is one of the first an attacker tries: choose another"
IS_ADDRESS = "Your password must not be your e-mail address"


def new_password_hash(password: str, email: str) -> str:
    """The hash of an acceptable new password (BadRequest otherwise). Slow: call it outside
    a write transaction."""
    check_new_password(password, email)
    return hash_password(password)


def check_new_password(password: str, email: str) -> None:
    """BadRequest unless `password` is acceptable as a new one for `email` (quick: no
    hashing, so limits can be checked between this and the hash)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(PASSWORD_LENGTH)
    folded = password.strip().lower()
    if folded == normalize_address(email) or folded == normalize_address(email).split("@")[0]:
        raise BadRequest(IS_ADDRESS)
    if folded in COMMON_PASSWORDS or len(set(folded)) == 1:
        raise BadRequest(TOO_COMMON)
