"""What the app serves beside the API: `/metrics`, the OpenAPI document and its viewers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from mailhaven.app import METRICS_REFUSED
from tests.support import LiveServer

TOKEN = "s3cret-metrics-token"


@contextmanager
def _app(services, *, dev: bool = False) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    # 60 s as every live client: httpx's default 5 s was too short for /redoc's bundle while
    # the other xdist worker ran several `serve` processes on this 2-core machine
    with LiveServer(services, dev=dev) as live, live.client() as client:
        yield client


@pytest.fixture
def with_token(services):  # type: ignore[no-untyped-def]
    services.settings = services.settings.with_(metrics_token=TOKEN)
    return services


def test_by_default_metrics_and_the_docs_viewers_are_not_served(services) -> None:
    """Anyone could read them: the routes, the volumes, the delivery outcomes."""
    with _app(services) as client:
        for path in ("/metrics", "/docs", "/redoc"):
            reply = client.get(path)
            assert (reply.status_code, reply.json()) == (404, {"message": "Not Found"}), path
        assert "/v3/{domain_name}/messages" in client.get("/openapi.json").json()["paths"]


def test_with_a_token_metrics_ask_for_it(with_token, account) -> None:
    with _app(with_token) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            reply = client.get("/metrics", headers=headers)
            assert (reply.status_code, reply.json()) == (401, {"message": METRICS_REFUSED})
            assert reply.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", auth=("api", account[1])).status_code == 401
        reply = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200 and "mailhaven_http_requests_total" in reply.text


def test_in_development_metrics_and_docs_are_served(services) -> None:
    with _app(services, dev=True) as client:
        for path in ("/metrics", "/docs", "/redoc"):
            assert client.get(path).status_code == 200, path


def test_the_docs_viewers_can_be_turned_on(services) -> None:
    services.settings = services.settings.with_(api_docs=True)
    with _app(services) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/metrics").status_code == 404


def test_the_docs_viewers_load_nothing_from_another_host(services) -> None:
    """Offline they still work, and no CDN learns who reads the API's documentation."""
    with _app(services, dev=True) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            urls = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html)
            assert re.findall(r"(?:https?:)?//[\w.-]+", html) == [], page
            assert urls and all(u.startswith("/") for u in urls), urls
            for url in urls:
                reply = client.get(url)
                assert reply.status_code == 200 and reply.content, url
        # else Swagger UI fetches a badge from validator.swagger.io
        assert '"validatorUrl": null' in client.get("/docs").text


def test_the_token_is_not_in_the_settings_repr(with_token) -> None:
    assert TOKEN not in repr(with_token.settings)
