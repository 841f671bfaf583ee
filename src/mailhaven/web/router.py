"""The web pages: every page module's router, and our own static files at /static."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mailhaven.web import (
    auth,
    domains,
    keys,
    logs,
    message_templates,
    overview,
    privacy,
    public,
    routes,
    settings,
    smtp,
    suppressions,
    team,
    twofactor,
    webhooks,
)

STATIC = Path(__file__).parent / "static"
PAGES = (public, auth, twofactor, overview, domains, keys, smtp, logs, suppressions, webhooks,
         message_templates, routes, team, settings, privacy)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in PAGES:
        app.include_router(module.router)
