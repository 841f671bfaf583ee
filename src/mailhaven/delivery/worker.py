"""The delivery worker: claim due copies, sign, send over SMTP, settle — many at a time."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter
from sqlalchemy.orm import Session

from mailhaven.delivery import building, queue
from mailhaven.delivery.backoff import retry_delay
from mailhaven.delivery.mx import MailHost, MxResolver
from mailhaven.delivery.replies import DeliveryFailure, SmtpReply, local_failure
from mailhaven.delivery.shaping import Held, Shaper
from mailhaven.delivery.signing import DkimSigner, return_path
from mailhaven.delivery.transport import (
    Delivered,
    SmtpTransport,
    Timeouts,
    envelope_address,
)
from mailhaven.domains import keys
from mailhaven.domains.models import Domain
from mailhaven.errors import frames
from mailhaven.failure_reasons import FailureReason
from mailhaven.messages import content, payloads
from mailhaven.messages.document import Document
from mailhaven.messages.handlebars import TemplateError
from mailhaven.messages.renderer import RenderTimeout, RenderUnavailable
from mailhaven.runner import Doorbell, LateBell, Runner
from mailhaven.services import Services
from mailhaven.storage.outcomes import written_through_outage
from mailhaven.suppressions import service as suppressions
from mailhaven.tracking import render as tracking

log = logging.getLogger("mailhaven.delivery")

ATTEMPTS = Counter("mailhaven_delivery_attempts_total", "Delivery attempts by outcome",
                   ["outcome"])
TEST_MODE = SmtpReply(650, "", "Test mode")
SUPPRESSED = {
    FailureReason.SUPPRESS_BOUNCE: "Not delivering to previously bounced address",
    FailureReason.SUPPRESS_UNSUBSCRIBE: "Not delivering to unsubscribed address",
    FailureReason.SUPPRESS_COMPLAINT: "Not delivering to a user who marked your messages as "
                                      "spam",
    FailureReason.SUPPRESS_RESTRICTION: "Not delivering: the recipient restricted the "
                                        "processing of their data",
    FailureReason.SUPPRESS_OBJECTION: "Not delivering marketing: the recipient objected to it",
}
REFILL_SHARE = 0.25  # of the slots free before claiming more, unless none is in flight
LEASE_SHARE = 0.8  # of the lease an attempt may take, leaving time to record its outcome
SIGNER_SECONDS = 60.0  # a rotated key signs this long after DNS showed it, at the latest
BUILD_THREADS = 4  # threads building copies: plain rendering and signing, linear in size


class DeliveryWorker(Runner):
    name = "delivery"

    def __init__(self, services: Services, *, owner: str | None = None,
                 concurrency: int | None = None, defer: float = 0.0,
                 give_way: Callable[[], bool] | None = None) -> None:
        """`defer`: how long after its doorbell rings the worker claims while attempts are
        in flight (idle, it claims at once); `give_way`: when it leaves the ring to others
        (`LateBell`)."""
        settings = services.settings
        self.services = services
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.concurrency = concurrency or settings.worker_concurrency
        self.shaper = Shaper(settings.shaping_rules, services.clock)
        # The shaper limits sessions per MX host; the transport's own cap must not be lower.
        self.transport = SmtpTransport(
            settings.hostname, per_host=max(r.connections for r in settings.shaping_rules),
            timeouts=Timeouts(settings.smtp_connect_seconds, settings.smtp_command_seconds,
                              settings.smtp_data_seconds))
        self.resolver = MxResolver(nameserver=settings.dns_nameserver,
                                   timeout=settings.dns_timeout_seconds,
                                   port=settings.smtp_delivery_port,
                                   allow_private=settings.allow_private_mx)
        self._inflight: set[asyncio.Task] = set()
        # attempts in flight by account, for the fair shares of the next claim
        self._held: defaultdict[str, int] = defaultdict(int)
        self._signers: dict[str, tuple[float, DkimSigner]] = {}  # domain id: (until, signer)
        self._signers_lock = threading.Lock()
        self.doorbell: Doorbell = services.delivery_bell
        if defer > 0 or give_way is not None:
            self.doorbell = LateBell(self.doorbell, defer, give_way,
                                     busy=lambda: bool(self._inflight))
        # Building copies (plain rendering, signing) has threads of its own, apart from the
        # claims' and outcomes' database work; other rendering runs in the render pool.
        self._builders = ThreadPoolExecutor(BUILD_THREADS, thread_name_prefix="mailhaven-build")
        self._room = building.Room()
        self._lights = building.Lights()
        self.settler = queue.settler(services.db, services.vault, services.clock)

    # -- the loop ----------------------------------------------------------------------
    async def run_once(self) -> int:
        """Top up the in-flight set from the queue, then wait for one attempt to finish."""
        busy = len(self._inflight)  # attempts this round works on, even if all end in the wait
        free = self.concurrency - busy
        started = 0
        # Claim again once a share of the slots is free, not at each one: fewer, larger claims.
        if free > 0 and (not busy or free >= self.concurrency * REFILL_SHARE):
            services = self.services
            jobs = await asyncio.to_thread(
                queue.claim, services.db, services.vault, owner=self.owner,
                now=services.clock.now(), limit=free,
                lease_seconds=services.settings.lease_seconds,
                held=dict(self._held), capacity=self.concurrency)
            for job in jobs:
                self._start(job)
            started = len(jobs)
        if self._inflight:
            waits: set[asyncio.Future] = set(self._inflight)
            ringing = None
            if self.doorbell is not None and len(self._inflight) < self.concurrency:
                # room for mail the API queues now
                ringing = asyncio.ensure_future(self.doorbell.wait(self.idle_seconds))
                waits.add(ringing)
            try:
                await asyncio.wait(waits, timeout=self.idle_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                if ringing is not None:
                    ringing.cancel()
        return started + max(busy, len(self._inflight))

    def _start(self, job: queue.Job) -> None:
        task = asyncio.create_task(self.attempt(job))
        self._inflight.add(task)
        self._held[job.account_id] += 1

        def done(task: asyncio.Task) -> None:
            self._inflight.discard(task)
            self._held[job.account_id] -= 1
            if not self._held[job.account_id]:
                del self._held[job.account_id]
        task.add_done_callback(done)

    async def drain(self) -> None:
        """Deliver everything due now, then return (tests and benchmarks)."""
        while await self.run_once():
            pass

    async def close(self) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight)
        await self.transport.close()
        self._builders.shutdown(wait=False)

    # -- one attempt --------------------------------------------------------------------
    async def attempt(self, job: queue.Job) -> None:
        try:
            await self._attempt(job)
        except Exception as exc:  # recording the outcome failed (the database is down?): the
            # lease runs out and the copy is tried again, so it is late, never lost
            log.error("delivery %s: could not record the outcome: %s", job.delivery_id,
                      frames(exc))
            ATTEMPTS.labels("unrecorded").inc()

    async def _attempt(self, job: queue.Job) -> None:
        # The whole attempt ends well inside the lease, so no other worker can take the copy
        # while this one may still be sending it.
        deadline = self.services.settings.lease_seconds * LEASE_SHARE
        try:
            async with asyncio.timeout(deadline):
                delivered = await self._send(job)
        except Held as held:
            await asyncio.to_thread(queue.put_back, self.services.db, job,
                                    now=self.services.clock.now(), due=held.due)
            return
        except DeliveryFailure as failure:
            await self._settle_failed(job, failure)
            return
        except TimeoutError:
            await self._settle_failed(job, local_failure(
                451, "4.4.7", f"Delivery attempt took longer than {deadline:.0f}s",
                permanent=False))
            return
        except Exception as exc:  # a bug must not lose the copy: report it, retry like a 4xx
            log.error("delivery %s: unexpected error: %s", job.delivery_id, frames(exc))
            await self._settle_failed(job, local_failure(
                451, "4.3.0", "Local error in processing", permanent=False))
            return
        await self._settle_delivered(job, delivered)

    async def _send(self, job: queue.Job) -> Delivered:
        if job.suppressed:
            raise local_failure(605, "", SUPPRESSED[job.suppressed], permanent=True,
                                reason=job.suppressed)
        if job.facts.testmode:
            return Delivered(TEST_MODE, "", False, False, 0.0)
        recipient = envelope_address(job.email)
        hosts = await self._route(recipient)
        async with self._room.held(job.facts.size):
            # Built before it waits for a session: a heavy render must not hold one of the
            # destination's sessions, which other accounts' mail needs too. A copy then held
            # back (Held) was built for nothing; that costs less.
            data = await self._build(job)
            async with self.shaper.session(hosts[0].name):
                return await self.transport.deliver(
                    hosts, self._envelope_sender(job), recipient, data,
                    require_tls=job.require_tls, verify_tls=job.verify_tls)

    def _envelope_sender(self, job: queue.Job) -> str:
        """The VERP return path, unless the message names its own (a forwarded message's
        SRS address: its bounces go back towards the original sender)."""
        own = job.document.envelope_sender if job.document is not None else None
        if own is not None:
            return own
        return return_path(self.services.vault, job.delivery_id, job.domain_name)

    async def _build(self, job: queue.Job) -> bytes:
        """The signed copy. The common message is written in a thread of the worker's own;
        any other is rendered in the render pool, within the render budget."""
        services = self.services
        doc = job.document
        if doc is None:  # never for a queued copy: its body is kept until it is settled
            raise local_failure(554, "5.6.0", "Message body is gone", permanent=True)
        additions = tracking.for_delivery(
            services.vault, services.settings.public_url, delivery_id=job.delivery_id,
            domain=job.domain_name, document=doc, tags=job.facts.tags,
            settings=job.tracking, limits=job.limits)
        loop = asyncio.get_running_loop()
        try:
            data = None
            if content.may_be_plain(doc):
                data = await loop.run_in_executor(self._builders, self._plain, job, doc,
                                                  additions)
            if data is None:
                light = payloads.Light(doc, ())
                if doc.attachments or doc.mime is not None:
                    light = await self._lights.get(job.facts.storage_key, lambda: (
                        loop.run_in_executor(self._builders, payloads.lighten, doc)))
                rendered = await services.renderer.run(
                    job.account_id, services.settings.render_seconds, content.render,
                    light.doc, job.recipient, job.variables, additions)
                data = await loop.run_in_executor(
                    self._builders, self._signed, job, payloads.Rendered(rendered, light.payloads))
        except RenderTimeout as exc:  # the same message takes as long every time
            raise local_failure(554, "5.6.0", f"Message could not be rendered within "
                                f"{exc.budget:g} seconds", permanent=True) from exc
        except TemplateError as exc:  # past its budget: the same every time (no content in it)
            raise local_failure(554, "5.6.0", f"Template could not be rendered: {exc}",
                                permanent=True) from exc
        except RenderUnavailable as exc:  # ours, not the message's: try again later
            log.error("delivery %s: no rendering process: %s", job.delivery_id, frames(exc))
            raise local_failure(451, "4.3.0", "Local error in processing",
                                permanent=False) from exc
        except Exception as exc:  # the same message fails the same way every time
            log.error("delivery %s: could not build the message: %s", job.delivery_id,
                      frames(exc))
            raise local_failure(554, "5.6.0", "Message could not be rendered or signed",
                                permanent=True) from exc
        return data

    def _plain(self, job: queue.Job, doc: Document,
               additions: content.Additions) -> bytes | None:
        data = content.render_plain(doc, job.recipient, job.variables, additions)
        return None if data is None else self._signed(job, data)

    def _signed(self, job: queue.Job, data: bytes | payloads.Rendered) -> bytes:
        if not job.dkim:
            return bytes(data)
        return self._signer(job.domain_id).sign(data, timestamp=int(self.services.clock.now()))

    def _signer(self, domain_id: str) -> DkimSigner:
        """The domain's signer, with the keys active now; kept a minute, since a rotation
        may change them (the key it replaces stays published for a week)."""
        now = self.services.clock.now()
        cached = self._signers.get(domain_id)
        if cached is not None and now < cached[0]:
            return cached[1]
        with self._signers_lock:  # builds run in threads: one loads the keys, not each of them
            cached = self._signers.get(domain_id)
            if cached is not None and now < cached[0]:
                return cached[1]
            return self._load_signer(domain_id, now)

    def _load_signer(self, domain_id: str, now: float) -> DkimSigner:
        with self.services.db.sessions() as session:
            domain = session.get(Domain, domain_id)
            assert domain is not None
            signer = DkimSigner(domain=domain.name, keys=[
                (key.selector, keys.private_key(self.services.vault, key))
                for key in keys.signing(domain)])
        self._signers[domain_id] = (now + SIGNER_SECONDS, signer)
        return signer

    async def _route(self, email: str) -> list[MailHost]:
        relay = self.services.settings.relayhost
        if relay is not None:
            return [MailHost(relay[0], relay[0], relay[1])]
        return await self.resolver.hosts(email.rpartition("@")[2])

    # -- outcomes -----------------------------------------------------------------------
    async def _settle_delivered(self, job: queue.Job, result: Delivered) -> None:
        status = _delivery_status(job, result.reply, result.mx_host) | {
            "tls": result.tls, "certificate-verified": result.certificate_verified,
            "session-seconds": round(result.session_seconds, 3),
        }
        await self._settle(job, "delivered", status=queue.DELIVERED,
                           next_attempt_at=None, extra={"delivery-status": status})

    async def _settle_failed(self, job: queue.Job, failure: DeliveryFailure) -> None:
        now = self.services.clock.now()
        status = _delivery_status(job, failure.reply, failure.mx_host) | {
            "tls": failure.tls, "certificate-verified": failure.certificate_verified,
        }
        too_old = now - job.due_since >= self.services.settings.max_message_age_seconds
        if failure.permanent or too_old:
            reason = failure.reason if failure.permanent else FailureReason.OLD
            if too_old and not failure.permanent:
                status["description"] = "Too old: gave up retrying"
            await self._settle(job, "failed", status=queue.FAILED, next_attempt_at=None,
                               extra={"severity": "permanent", "reason": reason,
                                      "delivery-status": status},
                               then=self._list_bounce(job, failure.reply)
                               if _lists_a_bounce(failure) else None)
            return
        # Whole seconds, so the copy is due exactly when `retry-seconds` says.
        delay = math.ceil(retry_delay(job.attempts, failure.reply.wait_hint()))
        status["retry-seconds"] = delay
        await self._settle(job, "failed", status=queue.QUEUED,
                           next_attempt_at=now + delay,
                           extra={"severity": "temporary", "reason": failure.reason,
                                  "delivery-status": status})

    def _list_bounce(self, job: queue.Job, reply: SmtpReply) -> Callable[[Session], None]:
        """Put the address on the domain's bounce list (unless allowlisted), as Mailgun does
        after a permanent failure, in the transaction that records the failure."""
        services = self.services

        def add(session: Session) -> None:
            suppressions.list_bounce(session, services.vault, job.domain_id, job.email,
                                     code=reply.code, detail=str(reply), clock=services.clock)
        return add

    async def _settle(self, job: queue.Job, event: str, *, status: str,
                      next_attempt_at: float | None, extra: dict,
                      then: Callable[[Session], None] | None = None) -> None:
        outcome = event if event == "delivered" else f"{extra['severity']}_failure"
        recorded = await self._recorded(
            queue.Outcome(job, event, status, next_attempt_at, extra, then))
        ATTEMPTS.labels(outcome if recorded else "lease_lost").inc()
        log.info(json.dumps({
            "kind": "delivery", "delivery": job.delivery_id, "message": job.facts.storage_key,
            "attempt": job.attempts, "outcome": outcome if recorded else "lease_lost",
            "code": extra["delivery-status"]["code"],
        }))  # not the MX host: it names the recipient's domain (the event keeps it, sealed)


    async def _recorded(self, outcome: queue.Outcome) -> dict | None:
        """The outcome recorded (its event), or None if the claim's lease was lost; kept
        and offered again through an outage while the claim lasts (`storage.outcomes`): a
        copy the recipient's server took must not be sent a second time because its settle
        failed."""
        return await written_through_outage(
            lambda: self.settler.submit(outcome), where="delivery",
            seconds=outcome.job.lease.until - self.services.clock.now())



def _lists_a_bounce(failure: DeliveryFailure) -> bool:
    """The recipient's server refused the address for good (not a refusal of our own making:
    suppressed, unrenderable)."""
    return (failure.permanent and failure.reason == FailureReason.BOUNCE
            and suppressions.lists_as_bounce(failure.reply.code, failure.reply.enhanced))


def _delivery_status(job: queue.Job, reply: SmtpReply, mx_host: str) -> dict:
    return {
        "code": reply.code, "message": reply.text, "description": "",
        "enhanced-code": reply.enhanced, "attempt-no": job.attempts, "mx-host": mx_host,
        "utf8": True, "tls": False, "certificate-verified": False, "session-seconds": 0.0,
        **job.first_attempt,
    }
