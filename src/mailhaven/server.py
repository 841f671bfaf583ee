"""Process roles: `serve` (API + SMTP submission + MX + worker [+ dev mailbox]), `worker`
and `smtp`, each on one event loop."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Protocol

import uvicorn

from mailhaven.config import Settings
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.dev.mode import LocalNetwork, is_dev_data_dir
from mailhaven.disclosures.poster import NotificationSender
from mailhaven.domains.verify import DomainChecker
from mailhaven.feedback.listener import FeedbackHandler
from mailhaven.inbound.listener import MXRegion, start_mx
from mailhaven.inbound.posts import RoutePostSender
from mailhaven.inbound.processor import InboundProcessor
from mailhaven.notices.runner import NoticeRunner
from mailhaven.privacy.runner import ErasureDeleter
from mailhaven.regional import create_platform_app
from mailhaven.retention.runner import RetentionRunner
from mailhaven.runner import Doorbell
from mailhaven.services import Platform, Services
from mailhaven.storage import queued, revocations
from mailhaven.submission.server import start_submission
from mailhaven.users.runner import PanelSweeper
from mailhaven.webhooks.sender import WebhookSender
from mailhaven.wiring import wire

log = logging.getLogger("mailhaven.server")


class Runner(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


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


# `serve`'s delivery worker, with attempts in flight, claims this long after the API rings
# it (idle, at once), and not at all while `mailhaven worker` processes say they are there
# (storage.queued): they, woken by the same commit, take the copies, and serve's core is
# left to the API; alone and busy, its worker takes a few sends' copies in one claim.
API_WORKER_DEFERS = 0.02


def region_runners(services: Services, *, local: LocalNetwork | None = None,
                   inbound_bell: Doorbell | None = None, concurrency: int | None = None,
                   worker_only: bool = False,
                   workers_alive: Callable[[], bool] | None = None) -> list[Runner]:
    """The background runners of one region, each with that region's services (a process
    runs them once per region it opened). `worker_only`: what `mailhaven worker` runs.
    `workers_alive`: whether `mailhaven worker` processes are at work beside this `serve`,
    which then leaves the mail its API queues to them (its worker still polls)."""
    hooks = local.webhook_transport() if local is not None else None
    runners: list[Runner] = [
        DeliveryWorker(services, concurrency=concurrency,
                       defer=0.0 if worker_only else API_WORKER_DEFERS,
                       give_way=None if worker_only else workers_alive),
        WebhookSender(services, transport=hooks),
        RoutePostSender(services, transport=hooks),
        NotificationSender(services, transport=hooks),
        InboundProcessor(services, doorbell=inbound_bell),
        ErasureDeleter(services),  # erased subjects' rows: wherever mail is handled
    ]
    if not worker_only:
        runners += [
            DomainChecker(services),
            RetentionRunner(services),
            PanelSweeper(services),
            NoticeRunner(services),
        ]
    return runners


def _open(settings: Settings, only: str | None) -> Platform:
    return Platform.start(settings, only=[only] if only else None)


async def run_server(settings: Settings, *, dev: bool = False, region: str | None = None,
                     ) -> None:
    """API + SMTP submission + MX + the runners, for every region (or only `region`: a site
    per region, whose API answers only its accounts)."""
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
        platform = await asyncio.to_thread(_open, settings, region)
        wire()
        stack.callback(platform.close)
        stack.callback(_watch_revocations(platform))
        listeners = _hear_queued(stack, platform)
        services = _first(platform)
        # The MX rings a region's bell: that region's processor starts at once
        inbound_bells = {name: Doorbell() for name in platform.regions}
        with listening("MAILHAVEN_MX_PORT", settings.mx_port):
            mx = await start_mx(services, settings.mx_host, settings.mx_port,
                                bell=inbound_bells[services.region],
                                return_paths=FeedbackHandler(services),
                                regions=_mx_regions(platform, inbound_bells))
        stack.push_async_callback(mx.aclose)
        submission = await start_submission(services, *submission_sockets,
                                            regions=list(platform.regions.values()))
        stack.push_async_callback(submission.aclose)
        if local is not None:
            local.answer_from(services.db)
            demo = await asyncio.to_thread(ensure_demo, services)
            print_welcome(settings, demo)
        server = uvicorn.Server(uvicorn.Config(
            create_platform_app(platform, dev=dev), host=settings.http_host,
            port=settings.http_port, log_config=None, access_log=False, lifespan="off",
            proxy_headers=bool(settings.forwarded_allow_ips.strip()),
            forwarded_allow_ips=settings.forwarded_allow_ips))
        stop = asyncio.Event()
        runners = [runner for name, regional in platform.regions.items()
                   for runner in region_runners(regional, local=local,
                                                inbound_bell=inbound_bells[name],
                                                workers_alive=listeners[name].workers_alive)]
        _started(runners)
        tasks = [asyncio.create_task(r.run(stop)) for r in runners]
        try:
            await server.serve(sockets=[http])
        finally:
            stop.set()
            await asyncio.gather(*tasks)


def _watch_revocations(platform: Platform) -> Callable[[], None]:
    """This process's caches hear every database's revocations (keys, accounts, domains
    ended by any process); the function that stops listening."""
    return revocations.watch([platform.directory,
                              *(regional.db for regional in platform.regions.values())])


def _hear_queued(stack: AsyncExitStack, platform: Platform, *,
                 worker: bool = False) -> dict[str, queued.Listener]:
    """Each region's delivery worker in this process wakes when another process queues mail
    in its database (`storage.queued`); a `worker` process says it is there. The listeners
    by region, stopped with `stack`."""
    listeners = {name: queued.Listener(regional.db, regional.delivery_bell.ring,
                                       worker=worker).start()
                 for name, regional in platform.regions.items()}
    for listener in listeners.values():
        stack.callback(listener.stop)
    return listeners


def _first(platform: Platform) -> Services:
    """The home region, or (a process of another region's site) the first one open."""
    home = platform.settings.home_region
    return platform.regions[home] if home in platform.regions \
        else next(iter(platform.regions.values()))


def _mx_regions(platform: Platform, bells: dict[str, Doorbell]) -> list[MXRegion] | None:
    """With several regions, each MX recipient's domain names the region it is stored in."""
    if len(platform.regions) == 1:
        return None
    return [MXRegion(regional, bell=bells[name], return_paths=FeedbackHandler(regional))
            for name, regional in platform.regions.items()]


def _started(runners: list[Runner]) -> None:
    for runner in runners:
        if isinstance(runner, DeliveryWorker):
            log.info(json.dumps({"kind": "worker", "owner": runner.owner,
                                 "region": runner.services.region, "state": "started"}))


async def run_worker(settings: Settings, *, concurrency: int | None = None,
                     region: str | None = None) -> None:
    async with AsyncExitStack() as stack:
        local = None
        if is_dev_data_dir(settings.data_dir):
            local = await LocalNetwork.start(settings)
            stack.callback(local.close)
            settings = local.settings
            log.info(json.dumps({"kind": "worker", "state": "development", "mail_to": "127.0.0.1"
                                 f":{settings.dev_capture_port}", "webhooks": "captured"}))
        platform = await asyncio.to_thread(_open, settings, region)
        wire()
        stack.callback(platform.close)
        stack.callback(_watch_revocations(platform))
        _hear_queued(stack, platform, worker=True)
        if local is not None:
            local.answer_from(_first(platform).db)
        runners = [runner for regional in platform.regions.values()
                   for runner in region_runners(regional, local=local, concurrency=concurrency,
                                                worker_only=True)]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        _started(runners)
        try:
            await asyncio.gather(*(r.run(stop) for r in runners))
        finally:
            log.info(json.dumps({"kind": "worker", "state": "stopped"}))


async def run_smtp(settings: Settings) -> None:
    """The SMTP submission server alone (`mailhaven smtp`): a front door that can run on
    hosts of its own, beside `serve` or API-only processes sharing one PostgreSQL."""
    async with AsyncExitStack() as stack:
        sockets = _submission_sockets(stack, settings)
        platform = await asyncio.to_thread(_open, settings, None)
        wire()
        stack.callback(platform.close)
        stack.callback(_watch_revocations(platform))
        submission = await start_submission(_first(platform), *sockets,
                                            regions=list(platform.regions.values()))
        stack.push_async_callback(submission.aclose)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(json.dumps({"kind": "smtp", "state": "started", "port": settings.smtp_port,
                             "tls_port": settings.smtps_port or None}))
        await stop.wait()
        log.info(json.dumps({"kind": "smtp", "state": "stopped"}))
