"""PLACEHOLDER (intake's worktree only): the actions builder owns this module and the lead
replaces this file at merge. Same signature as CONTRACT13; does nothing."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailhaven.config import Settings
from mailhaven.messages.models import Message
from mailhaven.routes.expressions import RouteAction
from mailhaven.vault import Vault


def dispatch(session: Session, vault: Vault, settings: Settings, *, message: Message,
             recipient: str, actions: list[RouteAction], now: float) -> None:
    """PLACEHOLDER: executes nothing."""
