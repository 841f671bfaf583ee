"""PLACEHOLDER (intake's worktree only): the routes builder owns this module and the lead
replaces this file at merge. `RouteAction` exactly as CONTRACT13 has it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteAction:
    route_id: str
    kind: str  # "forward" | "store"
    target: str | None
    notify: str | None = None
