"""The HTTP API: FastAPI over the capability routers."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mailhaven import __version__, http
from mailhaven.accounts.throttle import FailedLogins
from mailhaven.domains.router import router as domains_router
from mailhaven.events.router import router as events_router
from mailhaven.privacy.router import router as privacy_router
from mailhaven.retention.router import router as retention_router
from mailhaven.sending.router import router as sending_router
from mailhaven.sending.service import group_commit
from mailhaven.services import Services
from mailhaven.stats.router import router as stats_router
from mailhaven.suppressions.router import router as suppressions_router
from mailhaven.tracking.router import router as tracking_router
from mailhaven.webhooks.router import router as webhooks_router
from mailhaven.wiring import wire

METRICS_REFUSED = "Invalid metrics token"


def create_app(services: Services, *, dev: bool = False) -> FastAPI:
    wire()
    # Swagger UI and ReDoc load their scripts from a CDN into the API's origin: only when
    # asked for (or in development). The OpenAPI document they show is public anyway.
    docs = dev or services.settings.api_docs
    app = FastAPI(title="Mailhaven", version=__version__,
                  description="Mailgun-compatible email delivery with an executable privacy notice",
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)
    app.state.services = services
    app.state.failed_logins = FailedLogins(services.clock)
    app.state.sends = group_commit(services.db, services.vault, services.clock,
                                   require_verified=services.settings.require_verified_domains,
                                   sender_policy=services.settings.sender_policy)
    http.install(app)
    app.include_router(domains_router)
    app.include_router(sending_router)
    app.include_router(events_router)
    app.include_router(suppressions_router)
    app.include_router(stats_router)
    app.include_router(webhooks_router)
    app.include_router(tracking_router)
    app.include_router(privacy_router)
    app.include_router(retention_router)
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


def _bearer_is(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode())
