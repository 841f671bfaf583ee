"""The platform's mail for the auth tests: delivered to a sink, its links read back."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhaven.services import Services
from tests.support import Sink, deliver_due


@dataclass(frozen=True)
class Mailed:
    to: str
    subject: str
    text: str

    def link(self, services: Services, kind: str) -> str:
        """The path of the `/kind/<token>` link in the text (checked to start at api_url)."""
        found = re.search(rf"(\S+)(/{kind}/[A-Za-z0-9_-]+)", self.text)
        assert found is not None, f"no /{kind}/ link in: {self.text}"
        assert found.group(1) == services.settings.api_url
        return found.group(2)


def mailed(services: Services) -> list[Mailed]:
    """Every mail due now, delivered through the queue to a sink."""
    with Sink() as sink:
        deliver_due(services, sink)
    return [Mailed(r.rcpt_tos[0], str(r.message["Subject"]),
                   r.message.get_payload(decode=True).decode()) for r in sink.received]
