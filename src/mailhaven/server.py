"""Process roles: `serve` (API + SMTP submission + MX + worker [+ dev mailbox]), `worker`
and `smtp`, each on one event loop."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager

import uvicorn

from mailhaven.app import create_app
from mailhaven.config import Settings
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.dev.mode import LocalNetwork, is_dev_data_dir
from mailhaven.disclosures.poster import NotificationSender
from mailhaven.domains.verify import DomainChecker
from mailhaven.feedback.listener import FeedbackHandler
from mailhaven.inbound.listener import start_mx
from mailhaven.inbound.posts import RoutePostSender
from mailhaven.inbound.processor import InboundProcessor
from mailhaven.retention.runner import RetentionRunner
from mailhaven.runner import Doorbell
from mailhaven.services import Services
from mailhaven.submission.server import start_submission
from mailhaven.users.runner import PanelSweeper
from mailhaven.webhooks.sender import WebhookSender
from mailhaven.wiring import wire

log = logging.getLogger("mailhaven.server")


class PortBusy(Exception):
    """A port this process must listen on is taken; the message names the setting to change."""


@contextmanager
def listening(setting: str, port: int) -> Iterator[None]:
    """Turn "address already in use" while binding `port` into PortBusy."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortBusy(f"Port {port} is already in use (another Mailhaven, or another "
                       f"program): set {setting} to a free port.") from None


def _bound(setting: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with listening(setting, port):
        return socket.create_server((host, port), family=family)


def _http_socket(settings: Settings) -> socket.socket:
    return _bound("MAILHAVEN_HTTP_PORT", settings.http_host, settings.http_port)


def _submission_sockets(stack: AsyncExitStack, settings: Settings,
                        ) -> tuple[socket.socket, socket.socket | None]:
    """The SMTP submission ports, bound (STARTTLS; implicit TLS unless its port is 0)."""
    starttls = _bound("MAILHAVEN_SMTP_PORT", settings.smtp_host, settings.smtp_port)
    stack.callback(starttls.close)
    if not settings.smtps_port:
        return starttls, None
    implicit = _bound("MAILHAVEN_SMTPS_PORT", settings.smtp_host, settings.smtps_port)
    stack.callback(implicit.close)
    return starttls, implicit


async def run_server(settings: Settings, *, dev: bool = False) -> None:
    async with AsyncExitStack() as stack:
        http = _http_socket(settings)  # first: a second instance stops before doing anything
        stack.callback(http.close)
        submission_sockets = _submission_sockets(stack, settings)
        local = None
        if dev:
            from mailhaven.dev.demo import ensure_demo, print_welcome
            from mailhaven.dev.mailbox import start_capture

            local = await LocalNetwork.start(settings)
            stack.callback(local.close)
            settings = local.settings
            with listening("MAILHAVEN_DEV_CAPTURE_PORT", settings.dev_capture_port):
                capture = await start_capture(settings.data_dir / "dev-mailbox", "127.0.0.1",
                                              settings.dev_capture_port)
            stack.callback(capture.close)
        services = await asyncio.to_thread(Services.start, settings)
        wire()
        stack.callback(services.close)
        inbound_bell = Doorbell()  # the MX rings it: this process's processor starts at once
        with listening("MAILHAVEN_MX_PORT", settings.mx_port):
            mx = await start_mx(services, settings.mx_host, settings.mx_port, bell=inbound_bell,
                              return_paths=FeedbackHandler(services))
        stack.callback(mx.close)
        submission = await start_submission(services, *submission_sockets)
        stack.callback(submission.close)
        if local is not None:
            local.answer_from(services.db)
            demo = await asyncio.to_thread(ensure_demo, services)
            print_welcome(settings, demo)
        server = uvicorn.Server(uvicorn.Config(
            create_app(services, dev=dev), host=settings.http_host, port=settings.http_port,
            log_config=None, access_log=False, lifespan="off"))
        stop = asyncio.Event()
        worker = DeliveryWorker(services)
        webhooks = WebhookSender(services, transport=local.webhook_transport() if local
                                 else None)
        runners = [worker, DomainChecker(services), webhooks, RetentionRunner(services),
                   PanelSweeper(services),
                   InboundProcessor(services, doorbell=inbound_bell),
                   RoutePostSender(services, transport=local.webhook_transport() if local
                                   else None),
                   NotificationSender(services, transport=local.webhook_transport() if local
                                      else None)]
        log.info(json.dumps({"kind": "worker", "owner": worker.owner, "state": "started"}))
        tasks = [asyncio.create_task(r.run(stop)) for r in runners]
        try:
            await server.serve(sockets=[http])
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def run_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    async with AsyncExitStack() as stack:
        local = None
        if is_dev_data_dir(settings.data_dir):
            local = await LocalNetwork.start(settings)
            stack.callback(local.close)
            settings = local.settings
            log.info(json.dumps({"kind": "worker", "state": "development", "mail_to": "127.0.0.1"
                                 f":{settings.dev_capture_port}", "webhooks": "captured"}))
        services = await asyncio.to_thread(Services.start, settings)
        wire()
        stack.callback(services.close)
        if local is not None:
            local.answer_from(services.db)
        worker = DeliveryWorker(services, concurrency=concurrency)
        webhooks = WebhookSender(services, transport=local.webhook_transport() if local
                                 else None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(json.dumps({"kind": "worker", "owner": worker.owner, "state": "started"}))
        try:
            route_posts = RoutePostSender(services, transport=local.webhook_transport()
                                          if local else None)
            await asyncio.gather(worker.run(stop), webhooks.run(stop), route_posts.run(stop),
                                 InboundProcessor(services).run(stop))
        finally:
            log.info(json.dumps({"kind": "worker", "owner": worker.owner, "state": "stopped"}))


async def run_smtp(settings: Settings) -> None:
    """The SMTP submission server alone (`mailhaven smtp`): a front door that can run on
    hosts of its own, beside `serve` or API-only processes sharing one PostgreSQL."""
    async with AsyncExitStack() as stack:
        sockets = _submission_sockets(stack, settings)
        services = await asyncio.to_thread(Services.start, settings)
        wire()
        stack.callback(services.close)
        submission = await start_submission(services, *sockets)
        stack.callback(submission.close)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(json.dumps({"kind": "smtp", "state": "started", "port": settings.smtp_port,
                             "tls_port": settings.smtps_port or None}))
        await stop.wait()
        log.info(json.dumps({"kind": "smtp", "state": "stopped"}))
