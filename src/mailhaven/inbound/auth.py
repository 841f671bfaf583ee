"""Authentication at intake: SPF (pyspf), DKIM (dkimpy) and DMARC of a received message,
every DNS lookup through the resolver MAILHAVEN_DNS_NAMESERVER names, each bounded in time;
and the trace headers that say what was found (RFC 8601 Authentication-Results, Mailgun's
X-Mailgun-*). Blocking work: run it in a thread (the listener does). Spam scoring is not
done yet (X-Mailgun-Sflag is always No, X-Mailgun-Sscore 0.0): rspamd may come later."""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses
from typing import Any

import dkim
import dns.exception
import dns.resolver
import spf
from publicsuffixlist import PublicSuffixList

from mailhaven.clock import monotonic
from mailhaven.resolver import ABSENT, FAILED

LOOKUP_SECONDS = 4.0  # one DNS query
SPF_SECONDS = 10.0  # every lookup of one SPF evaluation together (RFC 7208 4.6.4 says 20)
MAX_SIGNATURES = 5  # DKIM signatures verified per message; more are ignored
MIN_KEY_BITS = 1024

# pyspf looks its DNS up through a module function: ours reads the resolver of the check
# under way (a context variable: each check runs in its own thread with its own).
_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar(
    "inbound_resolver", default=None)
Answer = tuple[tuple[str, str], Any]  # pyspf's ((name, type), value)
_PYSPF_LOOKUP: Callable[..., list[Answer]] = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, tcpfallback: bool = True,
                timeout: float = LOOKUP_SECONDS) -> list[Answer]:
    resolver = _RESOLVER.get()
    if resolver is None:
        return list(_PYSPF_LOOKUP(name, qtype, tcpfallback, timeout))
    found: list[Answer] = []
    try:
        answers = resolver.resolve(name, qtype, lifetime=min(timeout, LOOKUP_SECONDS),
                                   search=False)
    except ABSENT:
        return found
    except (*FAILED, dns.exception.DNSException) as exc:
        raise spf.TempError(f"DNS {type(exc).__name__}") from None
    for rdata in answers:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


spf.DNSLookup = _spf_lookup


class BoundedResolver(dns.resolver.Resolver):
    """A resolver whose every query ends by `deadline` (monotonic seconds): the check's
    whole budget, so that its thread stops when the caller stops waiting for it, however
    many lookups pyspf and dkimpy ask for."""

    deadline: float | None = None

    def resolve(self, *args: Any, **kwargs: Any) -> dns.resolver.Answer:
        if self.deadline is not None:
            left = self.deadline - monotonic()
            if left <= 0:
                raise dns.exception.Timeout(timeout=0.0)  # type: ignore[no-untyped-call]
            kwargs["lifetime"] = min(kwargs.get("lifetime") or self.lifetime, left)
        return super().resolve(*args, **kwargs)


def sync_resolver(nameserver: tuple[str, int] | None,
                  deadline: float | None = None) -> dns.resolver.Resolver:
    """The blocking twin of `mailhaven.resolver.make_resolver`: the system's resolver, or
    the one at `nameserver`; every query bounded, and all of them by `deadline`."""
    resolver = BoundedResolver(configure=nameserver is None)
    resolver.deadline = deadline
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.lifetime = LOOKUP_SECONDS
    return resolver


class TempFail(Exception):
    """DNS did not answer."""


def _txt(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    try:
        answers = resolver.resolve(name, "TXT", search=False)
    except ABSENT:
        return []
    except (*FAILED, dns.exception.DNSException) as exc:
        raise TempFail(type(exc).__name__) from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answers]


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no network


def organizational(domain: str) -> str:
    """The organizational domain (RFC 7489 3.2): one label under the public suffix."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else organizational(a) == organizational(b)


@dataclass(frozen=True)
class Verdicts:
    """What authentication found: no address in it, only results and domains."""

    spf: str = "none"  # pass fail softfail neutral none temperror permerror
    spf_domain: str = ""  # the MAIL FROM's domain (or the HELO's, for a null sender)
    dkim: str = "none"  # pass fail none temperror
    dkim_domains: tuple[str, ...] = ()  # d= of the signatures that passed
    dmarc: str = "none"  # pass fail none temperror permerror
    dmarc_policy: str | None = None  # the policy that applies: none quarantine reject
    from_domain: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def mailgun_spf(self) -> str:
        return {"pass": "Pass", "fail": "Fail", "softfail": "SoftFail",
                "neutral": "Neutral"}.get(self.spf, "None")

    def mailgun_dkim(self) -> str:
        return {"pass": "Pass", "fail": "Fail"}.get(self.dkim, "None")


def check_spf(resolver: dns.resolver.Resolver, ip: str, mail_from: str,
              helo: str) -> tuple[str, str]:
    """RFC 7208 check_host for the envelope sender (the HELO name for a null sender)."""
    domain = (mail_from.rpartition("@")[2] if mail_from else helo).lower()
    token = _RESOLVER.set(resolver)
    try:
        result, _ = spf.check2(i=ip, s=mail_from, h=helo or "unknown", timeout=LOOKUP_SECONDS,
                               querytime=SPF_SECONDS)
    except Exception:  # pyspf on input it can't read (an odd HELO, an odd address)
        result = "permerror"
    finally:
        _RESOLVER.reset(token)
    return str(result), domain


def check_dkim(resolver: dns.resolver.Resolver, raw: bytes) -> tuple[str, tuple[str, ...]]:
    """Each DKIM-Signature (the first few) verified; pass if one passed."""

    def dnsfunc(name: bytes, timeout: float = LOOKUP_SECONDS) -> bytes:  # noqa: ARG001
        records = _txt(resolver, name.decode("ascii", "replace").rstrip("."))
        return records[0].encode() if records else b""

    try:
        verifier = _dkim_verifier(raw)
        count = len([h for h in verifier.headers if h[0].lower() == b"dkim-signature"])
    except Exception:
        return "fail", ()
    if not count:
        return "none", ()
    passed: list[str] = []
    temporary = False
    for index in range(min(count, MAX_SIGNATURES)):
        try:
            if verifier.verify(idx=index, dnsfunc=dnsfunc):
                passed.append((verifier.domain or b"").decode("ascii", "replace").lower())
        except TempFail:
            temporary = True
        except Exception:  # noqa: S112 (a malformed signature or key: that one fails)
            continue
    if passed:
        return "pass", tuple(passed)
    return ("temperror" if temporary else "fail"), ()


def _dkim_verifier(raw: bytes) -> dkim.DKIM:
    """dkimpy's verifier of `raw`, its body given whole: dkimpy splits a whole message into
    a list of lines (25 MB of empty lines: half a gigabyte), so it is given the header only
    and the body as it would have made it (lines ended by CRLF)."""
    end = raw.find(b"\r\n\r\n")
    header = raw[:end + 4] if end >= 0 else b""
    if not header or b"\n" in header.replace(b"\r\n", b""):  # bare LFs: dkimpy's way
        return dkim.DKIM(raw, minkey=MIN_KEY_BITS)
    verifier = dkim.DKIM(header, minkey=MIN_KEY_BITS)
    body = raw[end + 4:]
    if body.count(b"\n") != body.count(b"\r\n"):  # bare LFs (bytes.replace: no line list)
        body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    verifier.body = body
    return verifier


def _policy(resolver: dns.resolver.Resolver, domain: str) -> tuple[dict[str, str] | None, bool]:
    """The DMARC record of `domain` as tags, or of its organizational domain; and whether
    it was the organizational domain's."""
    for name, inherited in ((domain, False), (organizational(domain), True)):
        if inherited and name == domain:
            break
        records = [r for r in _txt(resolver, f"_dmarc.{name}")
                   if r.strip().lower().startswith("v=dmarc1")]
        if len(records) == 1:
            tags = {}
            for part in records[0].split(";"):
                key, _, value = part.partition("=")
                if key.strip():
                    tags[key.strip().lower()] = value.strip()
            return tags, inherited
    return None, False


def check_dmarc(resolver: dns.resolver.Resolver, from_domain: str, spf_result: str,
                spf_domain: str, dkim_domains: tuple[str, ...]) -> tuple[str, str | None]:
    """RFC 7489: pass if SPF or DKIM passed for a domain aligned with the From's."""
    if not from_domain:
        return "permerror", None
    try:
        tags, inherited = _policy(resolver, from_domain)
    except TempFail:
        return "temperror", None
    if tags is None:
        return "none", None
    policy = tags.get("p", "none").lower()
    if inherited and "sp" in tags:
        policy = tags["sp"].lower()
    if policy not in ("none", "quarantine", "reject"):
        policy = "none"
    aspf, adkim = tags.get("aspf", "r").lower()[:1], tags.get("adkim", "r").lower()[:1]
    if (spf_result == "pass" and aligned(spf_domain, from_domain, aspf)) or any(
            aligned(d, from_domain, adkim) for d in dkim_domains):
        return "pass", policy
    return "fail", policy


def from_domain(from_header: str) -> str:
    """The domain of the From's single address ("" when there is none or several)."""
    addresses = [a for _, a in getaddresses([from_header]) if a]
    if len(addresses) != 1:
        return ""
    return addresses[0].rpartition("@")[2].lower().rstrip(".")


def authenticate(raw: bytes, *, ip: str, helo: str, mail_from: str, from_header: str,
                 nameserver: tuple[str, int] | None, deadline: float | None = None) -> Verdicts:
    """SPF, DKIM and DMARC of one message (blocking: a few DNS lookups, RSA); no lookup
    past `deadline` (monotonic seconds): what is left unanswered is a temperror."""
    resolver = sync_resolver(nameserver, deadline)
    spf_result, spf_domain = check_spf(resolver, ip, mail_from, helo)
    dkim_result, dkim_domains = check_dkim(resolver, raw)
    domain = from_domain(from_header)
    dmarc, policy = check_dmarc(resolver, domain, spf_result, spf_domain, dkim_domains)
    return Verdicts(spf_result, spf_domain, dkim_result, dkim_domains, dmarc, policy, domain)


def trace_headers(verdicts: Verdicts, *, hostname: str, helo: str, ip: str, tls: bool,
                  mail_from: str, recipients: list[str], queue_id: str,
                  now: float) -> bytes:
    """The header fields we prepend, newest first as RFC 5321 4.4 has them: Received,
    Authentication-Results (RFC 8601), Mailgun's X-Mailgun-* and X-Envelope-From."""
    date = format_datetime(datetime.fromtimestamp(now, UTC))
    single = f"\r\n\tfor <{_clean(recipients[0])}>" if len(recipients) == 1 else ""
    received = (f"Received: from {_clean(helo) or 'unknown'} ([{ip}])\r\n\tby {hostname} "
                f"with {'ESMTPS' if tls else 'ESMTP'} id {queue_id}{single};\r\n\t{date}")
    parts = [f"spf={verdicts.spf} smtp.mailfrom={_clean(verdicts.spf_domain) or 'none'}"]
    if verdicts.dkim_domains:
        parts += [f"dkim=pass header.d={_clean(d)}" for d in verdicts.dkim_domains]
    else:
        parts.append(f"dkim={verdicts.dkim}")
    dmarc = f"dmarc={verdicts.dmarc}"
    if verdicts.dmarc_policy:
        dmarc += f" (p={verdicts.dmarc_policy})"
    if verdicts.from_domain:
        dmarc += f" header.from={_clean(verdicts.from_domain)}"
    parts.append(dmarc)
    fields = [
        received,
        f"Authentication-Results: {hostname};\r\n\t" + ";\r\n\t".join(parts),
        "X-Mailgun-Sflag: No",
        "X-Mailgun-Sscore: 0.0",
        f"X-Mailgun-Spf: {verdicts.mailgun_spf()}",
        f"X-Mailgun-Dkim-Check-Result: {verdicts.mailgun_dkim()}",
        "X-Mailgun-Incoming: Yes",
        f"X-Envelope-From: <{_clean(mail_from)}>",
    ]
    return ("\r\n".join(fields) + "\r\n").encode("utf-8", "surrogateescape")


def _clean(text: str) -> str:
    """A value fit for one header line: no line breaks, no control characters."""
    return "".join(c for c in text if c >= " " and c != "\x7f")[:255]



# The fields we prepend that routes and apps trust: the sender's own are renamed
OURS = frozenset({b"x-mailgun-sflag", b"x-mailgun-sscore", b"x-mailgun-spf",
                  b"x-mailgun-dkim-check-result", b"x-mailgun-incoming", b"x-envelope-from"})
RENAMED = b"X-Original-"
_FIELD = re.compile(rb"^([^ \t\r\n:][^:\r\n]*):((?:.*)(?:\r\n[ \t].*)*)", re.MULTILINE)
_COMMENT = re.compile(rb"\([^()]*\)")


def disarm(header: bytes, hostname: str) -> bytes:
    """The received header section with the fields that would pass for ours renamed
    (`X-Original-…`), as RFC 8601 5 asks of an MTA: Authentication-Results naming our
    authserv-id (the hostname), X-Mailgun-Sflag/Sscore/Spf/Dkim-Check-Result/Incoming and
    X-Envelope-From. Else a sender's `X-Mailgun-Spf: Pass` below ours would satisfy a route
    that matches on it. Renamed, not removed: what came stays readable."""
    ours = hostname.lower().rstrip(".").encode("ascii", "replace")

    def rename(match: re.Match[bytes]) -> bytes:
        name = match.group(1).strip().lower()
        if name in OURS:
            return RENAMED + match.group(0)
        if name == b"authentication-results":
            value = _COMMENT.sub(b" ", match.group(2).split(b";", 1)[0]).split()
            if value and value[0].lower().rstrip(b".") == ours:
                return RENAMED + match.group(0)
        return match.group(0)

    return _FIELD.sub(rename, header)
