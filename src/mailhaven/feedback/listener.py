"""The SMTP listener for return paths: takes DSNs and ARF reports addressed to VERP
addresses (`bounce+<id>-<mac>@…`) and refuses everything else."""

from __future__ import annotations

import asyncio
import json
import logging

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailhaven.delivery.signing import delivery_of
from mailhaven.feedback.reports import Complaint, read_report
from mailhaven.feedback.service import apply
from mailhaven.services import Services

log = logging.getLogger("mailhaven.feedback")


class FeedbackHandler:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if delivery_of(self.services.vault, address) is None:
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        report = read_report(envelope.original_content or b"")
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


async def start_listener(services: Services, host: str, port: int) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    handler = FeedbackHandler(services)
    return await loop.create_server(
        lambda: SMTP(handler, hostname=services.settings.hostname, loop=loop,
                     data_size_limit=10 * 1024 * 1024), host, port)
