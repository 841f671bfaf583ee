"""The HTTP API: FastAPI over the capability routers."""

from __future__ import annotations

import hmac
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mailhaven import __version__, http, openapi
from mailhaven.accounts.router import router as keys_router
from mailhaven.accounts.throttle import FailedLogins
from mailhaven.analytics.router import router as analytics_router
from mailhaven.credentials.router import router as credentials_router
from mailhaven.disclosures.router import router as disclosures_router
from mailhaven.domains.router import router as domains_router
from mailhaven.events.router import router as events_router
from mailhaven.inbound.router import router as inbound_router
from mailhaven.lists.router import router as lists_router
from mailhaven.notices.router import router as notices_router
from mailhaven.privacy.router import router as privacy_router
from mailhaven.retention.router import router as retention_router
from mailhaven.routes.router import router as routes_router
from mailhaven.sending.router import router as sending_router
from mailhaven.sending.service import group_commit
from mailhaven.services import Services
from mailhaven.stats.router import router as stats_router
from mailhaven.suppressions.router import router as suppressions_router
from mailhaven.templates.router import router as templates_router
from mailhaven.tracking.router import router as tracking_router
from mailhaven.web import router as web
from mailhaven.webhooks.router import router as webhooks_router
from mailhaven.wiring import wire

METRICS_REFUSED = "Invalid metrics token"


def create_app(services: Services, *, dev: bool = False) -> FastAPI:
    wire()
    app = FastAPI(title="Mailhaven", version=__version__,
                  description="Mailgun-compatible email delivery with an executable privacy notice",
                  docs_url=None, redoc_url=None)
    if dev or services.settings.api_docs:  # the OpenAPI document they show is public anyway
        _serve_docs(app)
    app.state.services = services
    app.state.failed_logins = FailedLogins(services.clock,
                                           services.settings.api_auth_failures_per_minute)
    app.state.sends = group_commit(services.db, services.vault, services.clock,
                                   require_verified=services.settings.require_verified_domains,
                                   sender_policy=services.settings.sender_policy,
                                   public_url=services.settings.public_url)
    http.install(app)
    openapi.install(app)
    app.include_router(domains_router)
    app.include_router(sending_router)
    app.include_router(events_router)
    app.include_router(suppressions_router)
    app.include_router(stats_router)
    app.include_router(webhooks_router)
    app.include_router(tracking_router)
    app.include_router(privacy_router)
    app.include_router(notices_router)
    app.include_router(disclosures_router)
    app.include_router(retention_router)
    app.include_router(analytics_router)
    app.include_router(credentials_router)
    app.include_router(templates_router)
    app.include_router(routes_router)
    app.include_router(lists_router)
    app.include_router(inbound_router)
    app.include_router(keys_router)
    web.install(app)
    if dev:
        from mailhaven.dev.router import router as dev_router
        app.include_router(dev_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            ok = services.db.ping()
        except Exception:  # the database is down: say so, don't crash
            ok = False
        return JSONResponse({"status": "ok" if ok else "unavailable"},
                            status_code=200 if ok else 503)

    token = services.settings.metrics_token
    if token or dev:  # else on a port of its own only (`serve --metrics-port`)
        @app.get("/metrics", include_in_schema=False)
        def metrics(request: Request) -> Response:
            if token and not _bearer_is(request, token):
                return JSONResponse({"message": METRICS_REFUSED}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


DOCS_ASSETS = "/docs/assets"


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their scripts served from here (the
    fastapi-offline package ships them): no CDN, so they work offline and no third party
    sees who reads them. Swagger UI's validator badge (another host) is off."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    favicon = f"{DOCS_ASSETS}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="Mailhaven API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css", swagger_favicon_url=favicon,
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="Mailhaven API",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=favicon, with_google_fonts=False)


def _bearer_is(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode())
