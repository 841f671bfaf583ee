"""PLACEHOLDER (intake's worktree only): the routes builder owns this module and the lead
replaces this file at merge. Same signature as CONTRACT13; matches nothing."""

# ruff: noqa: ARG001 (a placeholder: the arguments are the contract's)
from __future__ import annotations

from sqlalchemy.orm import Session

from mailhaven.routes.expressions import RouteAction
from mailhaven.vault import Vault


def matching_actions(session: Session, vault: Vault, account_id: str, recipient: str,
                     headers: list[tuple[str, str]]) -> list[RouteAction]:
    """PLACEHOLDER: no route matches."""
    return []
