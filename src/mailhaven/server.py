"""Process roles: `serve` (API + worker [+ dev mailbox]) and `worker`, on one event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import uvicorn

from mailhaven.app import create_app
from mailhaven.config import Settings
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.domains.verify import DomainChecker
from mailhaven.feedback.listener import start_listener
from mailhaven.retention.runner import RetentionRunner
from mailhaven.services import Services
from mailhaven.webhooks.sender import WebhookSender
from mailhaven.wiring import wire

log = logging.getLogger("mailhaven.server")


async def run_server(settings: Settings, *, dev: bool = False) -> None:
    capture = None
    if dev:
        from mailhaven.dev.demo import ensure_demo, print_welcome
        from mailhaven.dev.mailbox import start_capture

        settings = settings.with_(
            relayhost=("127.0.0.1", settings.dev_capture_port),
            require_verified_domains=False,  # all mail goes to the local mailbox anyway
            public_url=settings.public_url or f"http://{settings.http_host}:{settings.http_port}")
        capture = await start_capture(settings.data_dir / "dev-mailbox", "127.0.0.1",
                                      settings.dev_capture_port)
    services = await asyncio.to_thread(Services.start, settings)
    wire()
    if dev:
        demo = await asyncio.to_thread(ensure_demo, services)
        print_welcome(settings, demo)
    feedback = await start_listener(services, settings.mx_host, settings.mx_port)
    server = uvicorn.Server(uvicorn.Config(
        create_app(services, dev=dev), host=settings.http_host, port=settings.http_port,
        log_config=None, access_log=False, lifespan="off"))
    stop = asyncio.Event()
    worker = DeliveryWorker(services)
    runners = [worker, DomainChecker(services), WebhookSender(services),
               RetentionRunner(services)]
    log.info(json.dumps({"kind": "worker", "owner": worker.owner, "state": "started"}))
    tasks = [asyncio.create_task(r.run(stop)) for r in runners]
    try:
        await server.serve()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        feedback.close()
        if capture is not None:
            capture.close()
        services.close()


async def run_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    services = await asyncio.to_thread(Services.start, settings)
    wire()
    worker = DeliveryWorker(services, concurrency=concurrency)
    webhooks = WebhookSender(services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(json.dumps({"kind": "worker", "owner": worker.owner, "state": "started"}))
    try:
        await asyncio.gather(worker.run(stop), webhooks.run(stop))
    finally:
        services.close()
        log.info(json.dumps({"kind": "worker", "owner": worker.owner, "state": "stopped"}))
