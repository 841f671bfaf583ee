"""The SMTP listener for return paths: takes DSNs and ARF reports addressed to VERP
addresses (`bounce+<id>-<mac>@…`) and refuses everything else."""

from __future__ import annotations

import asyncio
import json
import logging

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailhaven.delivery.signing import delivery_of
from mailhaven.errors import frames
from mailhaven.feedback.reports import Complaint, TooDeep, read_report
from mailhaven.feedback.service import apply
from mailhaven.services import Services

log = logging.getLogger("mailhaven.feedback")
IDENT = "Mailhaven ESMTP"  # the banner names us, not the SMTP library and its version
MAX_REPORT_BYTES = 10 * 1024 * 1024
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please try again later"
TOO_DEEP = "554 5.6.0 Report nests too many MIME parts to be read"


class FeedbackHandler:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle_RCPT(self, _server: SMTP, _session: Session, envelope: Envelope,
                          address: str, _rcpt_options: list[str]) -> str:
        if delivery_of(self.services.vault, address) is None:
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        try:  # parsing up to 10 MB: off the event loop the API shares
            report = await asyncio.to_thread(read_report, envelope.original_content or b"")
        except TooDeep:
            return TOO_DEEP
        if report is None:
            return "250 2.0.0 Accepted, but it is no delivery or feedback report"
        targets = list(envelope.rcpt_tos)
        if isinstance(report, Complaint) and report.original_return_path:
            targets.append(report.original_return_path)
        ids = {i for i in (delivery_of(self.services.vault, t) for t in targets) if i}
        services = self.services
        for delivery_id in ids:
            outcome = await asyncio.to_thread(apply, services.db, services.vault, delivery_id,
                                              report, services.clock)
            log.info(json.dumps({"kind": "feedback", "delivery": delivery_id,
                                 "outcome": outcome or "ignored"}))
        return "250 2.0.0 OK"

    async def handle_exception(self, error: Exception) -> str:
        """Whatever went wrong is ours to log, never the sender's to read (aiosmtpd would
        answer with the exception's text)."""
        log.error("feedback listener: %s", frames(error))
        return TEMPORARY_FAILURE


async def start_listener(services: Services, host: str, port: int) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    handler = FeedbackHandler(services)
    return await loop.create_server(
        lambda: SMTP(handler, hostname=services.settings.hostname, ident=IDENT, loop=loop,
                     data_size_limit=MAX_REPORT_BYTES), host, port)
