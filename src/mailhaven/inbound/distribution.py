"""PLACEHOLDER (intake's worktree only): the lists builder owns this module and the lead
replaces this file at merge. Same signature as CONTRACT13; does nothing."""

# ruff: noqa: ARG001 (a placeholder: the arguments are the contract's)
from __future__ import annotations

from sqlalchemy.orm import Session

from mailhaven.domains.models import Domain
from mailhaven.vault import Vault


def distribute(session: Session, vault: Vault, *, domain: Domain, recipient: str, sender: str,
               raw: bytes, now: float) -> int | None:
    """PLACEHOLDER: no recipient is a mailing list here."""
    return None
