"""PLACEHOLDER for the actions builder's worktree: the contract's `RouteAction` only. The
routes builder's real module replaces this file at merge."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteAction:
    route_id: str
    kind: str  # "forward" | "store"   (stop() is applied by evaluation, never returned)
    target: str | None  # forward: an http(s) URL or an email address; store: None
    notify: str | None = None  # store(notify="…"): the URL, captures substituted; else None
