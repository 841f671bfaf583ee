"""The second factor: TOTP (RFC 6238, 30-second steps, 6 digits) with ten recovery codes.

The secret is sealed under the user's vault key. A code is accepted one step either side of
now, and each step once (the last one used is kept); recovery codes are kept as SHA-256
digests (80 random bits each, so a fast hash is enough) and each works once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy.orm import Session

from mailhaven.errors import BadRequest, Conflict
from mailhaven.users.models import User
from mailhaven.vault import Vault, VaultKey

STEP = 30
ISSUER = "Mailhaven"
RECOVERY_CODES = 10
TOTP_CONTEXT = "users.totp"
WRONG_CODE = "That code is not right: type the 6 digits your app shows now"
NOT_PENDING = "Start the set-up again: no two-factor set-up is under way"


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret to type, its otpauth URI and a QR code."""

    secret: str
    uri: str
    qr_data_uri: str  # an SVG as a data: URI (the CSP allows img-src data:)


def _key(session: Session, vault: Vault, user: User) -> VaultKey:
    key = vault.keys(session, [user.key_id]).get(user.key_id)
    if key is None:
        raise Conflict("This user was erased")
    return key


def _secret(session: Session, vault: Vault, user: User) -> str | None:
    if user.totp_secret_sealed is None:
        return None
    return vault.open_text(_key(session, vault, user), user.totp_secret_sealed,
                           TOTP_CONTEXT)


def start_enrolment(session: Session, vault: Vault, user: User) -> None:
    """A new secret, pending until a code from it is confirmed (2FA stays off till then)."""
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on")
    user.totp_secret_sealed = vault.seal_text(_key(session, vault, user), pyotp.random_base32(),
                                              TOTP_CONTEXT)
    user.totp_last_step = None


def pending_enrolment(session: Session, vault: Vault, user: User,
                      account_label: str) -> Enrolment | None:
    """The enrolment under way (secret made, not confirmed yet), or None."""
    secret = _secret(session, vault, user) if user.totp_enabled_at is None else None
    if secret is None:
        return None
    uri = pyotp.TOTP(secret).provisioning_uri(name=account_label, issuer_name=ISSUER)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, dark="#111", light="#fff")
    return Enrolment(secret, uri, qr)


def confirm_enrolment(session: Session, vault: Vault, user: User, code: str, *,
                      now: float) -> list[str]:
    """Turns 2FA on once `code` matches the pending secret; the recovery codes, shown once."""
    secret = _secret(session, vault, user) if user.totp_enabled_at is None else None
    if secret is None:
        raise BadRequest(NOT_PENDING)
    if not _check_totp(user, secret, code, now=now):
        raise BadRequest(WRONG_CODE)
    user.totp_enabled_at = now
    return new_recovery_codes(user)


def new_recovery_codes(user: User) -> list[str]:
    codes = [_format(base64.b32encode(secrets.token_bytes(10)).decode().lower())
             for _ in range(RECOVERY_CODES)]
    user.recovery_codes = json.dumps([_digest(c) for c in codes])
    return codes


def recovery_codes_left(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


def disable(user: User) -> None:
    user.totp_secret_sealed = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    user.recovery_codes = None


def verify(session: Session, vault: Vault, user: User, code: str, *, now: float) -> str | None:
    """How `code` proved the second factor ("totp" or "recovery", used up), or None. Call it
    on a row locked for update, in the transaction that records the login."""
    secret = _secret(session, vault, user) if user.totp_enabled_at is not None else None
    if secret is None:
        return None
    if _check_totp(user, secret, code, now=now):
        return "totp"
    digests: list[str] = json.loads(user.recovery_codes or "[]")
    given = _digest(code)
    for known in digests:
        if hmac.compare_digest(known, given):
            digests.remove(known)
            user.recovery_codes = json.dumps(digests)
            return "recovery"
    return None


def _check_totp(user: User, secret: str, code: str, *, now: float) -> bool:
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return False
    totp, current = pyotp.TOTP(secret), int(now // STEP)
    for step in (current - 1, current, current + 1):
        if step > (user.totp_last_step or -1) and \
                hmac.compare_digest(totp.at(step * STEP), code):
            user.totp_last_step = step
            return True
    return False


def _format(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def _digest(code: str) -> str:
    folded = "".join(code.split()).replace("-", "").lower()
    return hashlib.sha256(folded.encode()).hexdigest()
