"""Development mode's name server: on loopback, it publishes exactly the records Mailhaven
asks its domains' owners to publish, and knows no other name.

Every lookup of a dev-mode process (domain verification, MX) is sent here instead of to
the system's resolver, so the demo domain verifies (and DKIM rotations complete) without a
query leaving the machine.
"""

from __future__ import annotations

import asyncio
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT
from sqlalchemy import select

from mailhaven.domains.models import Domain
from mailhaven.domains.service import expected_records
from mailhaven.storage.db import Database

TTL = 60
TXT_CHUNK = 255  # a TXT record's strings are at most 255 bytes each


class LocalNameServer(asyncio.DatagramProtocol):
    """Answers over UDP from the domain table; until `db` is set, refuses."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.db: Database | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not a query: nothing to answer
        response = await asyncio.to_thread(self.answer, query)
        if self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.db is None or len(query.question) != 1:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        found, known = self.records(name, dns.rdatatype.to_text(question.rdtype))
        if found:
            response.answer.append(dns.rrset.from_rdata_list(question.name, TTL, found))
        elif not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def records(self, name: str, record_type: str) -> tuple[list[dns.rdata.Rdata], bool]:
        """The records of this name and type, and whether the name exists at all."""
        assert self.db is not None
        labels = name.split(".")
        suffixes = [".".join(labels[i:]) for i in range(len(labels))]
        with self.db.sessions() as session:
            expected = [e for domain in session.scalars(
                            select(Domain).where(Domain.name.in_(suffixes)))
                        for e in expected_records(domain, self.hostname) if e.name == name]
        return [_rdata(e.record_type, e.value, e.priority) for e in expected
                if e.record_type == record_type], bool(expected)


def _rdata(record_type: str, value: str, priority: str | None) -> dns.rdata.Rdata:
    if record_type == "TXT":
        raw = value.encode()
        return TXT(dns.rdataclass.IN, dns.rdatatype.TXT,
                   [raw[i:i + TXT_CHUNK] for i in range(0, len(raw), TXT_CHUNK)])
    text = f"{priority or 10} {value}." if record_type == "MX" else f"{value}."
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(record_type), text)


async def start(hostname: str) -> tuple[asyncio.DatagramTransport, LocalNameServer]:
    """On 127.0.0.1, on a port the system picks (it is handed to the resolvers directly)."""
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: LocalNameServer(hostname), local_addr=("127.0.0.1", 0))
    return transport, server
