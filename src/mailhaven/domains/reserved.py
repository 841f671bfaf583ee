"""Names no account may add: the big mailbox providers', and the operator's own."""

from __future__ import annotations

from collections.abc import Iterable

from mailhaven.addresses import mailboxes
from mailhaven.config import Settings

# Nobody sending through Mailhaven owns these, and a copy of one (even unverified, even
# refused for sending) would let an account pose as Gmail or Outlook in the API, in
# `From` lines of the privacy form's mail and in its own reports. A subdomain of one is
# reserved too (mg.gmail.com is no more anyone's).
PROVIDERS = frozenset({
    # Google, Microsoft, Yahoo, Apple, AOL
    "gmail.com", "googlemail.com", "google.com",
    "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it",
    "live.com", "live.co.uk", "msn.com", "microsoft.com", "office365.com",
    "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.it", "yahoo.es",
    "yahoo.co.jp", "ymail.com", "rocketmail.com",
    "icloud.com", "me.com", "mac.com", "apple.com", "aol.com", "aim.com",
    # Europe
    "gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch", "gmx.fr", "gmx.co.uk", "gmx.us",
    "web.de", "t-online.de", "freenet.de", "mail.de", "posteo.de", "mailbox.org",
    "proton.me", "protonmail.com", "protonmail.ch", "pm.me", "tutanota.com", "tuta.io",
    "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr",
    "libero.it", "virgilio.it", "seznam.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl",
    "fastmail.com", "zoho.com", "hey.com",
    # Russia, China, Korea, Japan
    "yandex.ru", "yandex.com", "ya.ru", "mail.ru", "bk.ru", "inbox.ru", "list.ru",
    "rambler.ru", "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com",
    "sohu.com", "aliyun.com", "naver.com", "daum.net", "hanmail.net",
    # North American ISPs
    "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "charter.net",
})


def operator_names(settings: Settings) -> tuple[str, ...]:
    """What this server adds to PROVIDERS: its own host name and the domain of its own mail
    (`MAILHAVEN_SYSTEM_FROM`) — mail from them is Mailhaven's, not an account's — and
    `MAILHAVEN_RESERVED_DOMAINS`."""
    own = system_domain(settings)
    return (settings.hostname.lower().rstrip("."), *((own,) if own else ()),
            *settings.reserved_domains)


def system_domain(settings: Settings) -> str:
    """The domain of the platform's own From (`Settings.system_from`), or "" if none."""
    first = next(mailboxes([settings.system_from]), None)
    return first[0].email.rpartition("@")[2].lower().rstrip(".") if first else ""


def is_reserved(name: str, extra: Iterable[str] = ()) -> bool:
    """Whether `name` (lower case, no trailing dot) is a reserved name or under one."""
    labels = name.split(".")
    suffixes = {".".join(labels[i:]) for i in range(len(labels) - 1)}
    return not suffixes.isdisjoint(PROVIDERS) or not suffixes.isdisjoint(extra)
