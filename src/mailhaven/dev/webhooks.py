"""Development mode's webhooks: a POST to this machine goes out, any other is kept in the
data directory (`dev-webhooks/`) and answered as if received."""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path

import httpx

from mailhaven.clock import SYSTEM_CLOCK
from mailhaven.dev.mode import is_loopback

log = logging.getLogger("mailhaven.dev.webhooks")
CAPTURED = "Captured by Mailhaven's development mode"


class CapturingTransport(httpx.AsyncBaseTransport):
    """Sends to loopback hosts through `inner`; writes every other request to `folder`."""

    def __init__(self, folder: Path, inner: httpx.AsyncBaseTransport) -> None:
        self.folder = folder
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if is_loopback(request.url.host):
            return await self.inner.handle_async_request(request)
        body = await request.aread()
        name = f"{time.time_ns()}-{secrets.token_hex(3)}.json"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / name).write_text(json.dumps({
            "url": str(request.url), "received_at": SYSTEM_CLOCK.now(),
            "content_type": request.headers.get("content-type"),
            "body": body.decode("utf-8", "replace")}))
        log.info(json.dumps({"kind": "webhook", "state": "captured", "host": request.url.host,
                             "file": str(self.folder / name)}))
        return httpx.Response(200, text=CAPTURED, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def captured(folder: Path) -> list[dict]:
    """The captured POSTs, oldest first."""
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
