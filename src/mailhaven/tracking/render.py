"""What tracking adds to one recipient's copy: the pixel, rewritten links, unsubscribe URLs,
the footer and the `List-Unsubscribe` headers (RFC 2369, RFC 8058 one-click)."""

from __future__ import annotations

import html as html_lib
import json
import re
from dataclasses import dataclass, replace

from mailhaven.controls.service import NO_LIMITS, Limits
from mailhaven.messages.content import Additions
from mailhaven.messages.document import Document
from mailhaven.tracking import links
from mailhaven.tracking.links import Link
from mailhaven.tracking.policy import Decision, DomainTracking, may_track
from mailhaven.vault import Vault
from mailhaven.vault.service import TokenMac

UNSUBSCRIBE_VARS = ("%unsubscribe_url%", "%tag_unsubscribe_url%")
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_TEXT_URL = re.compile(r"""https?://[^\s<>"')\]]+""", re.I)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE = re.compile(r"</body\s*>", re.I)


@dataclass(frozen=True)
class Copy:
    """One delivery as tracking sees it."""

    delivery_id: int
    tags: list[str]
    has_list_unsubscribe: bool  # the customer set its own `h:List-Unsubscribe`


def base_url(public_url: str, settings: DomainTracking, domain: str) -> str:
    """Links point at the domain's tracking host (the CNAME `email.<domain>` → Mailhaven),
    unless the operator set one public URL for all."""
    return public_url or f"{settings.web_scheme}://{settings.web_prefix}.{domain}"


def for_delivery(vault: Vault, public_url: str, *, delivery_id: int, domain: str,
                 document: Document, tags: list[str], settings: DomainTracking,
                 limits: Limits = NO_LIMITS) -> Additions:
    """The additions for one queued copy, as the delivery worker renders it. A service
    message (`o:category=transactional`) gets no unsubscribe link or header."""
    marketing = document.marketing
    copy = Copy(delivery_id, tags, has_list_unsubscribe=not marketing or any(
        name.lower() == "list-unsubscribe" for name, _ in document.headers))
    if not marketing:
        settings = replace(settings, unsubscribes=False)
    decision = may_track(settings, document.tracking, limits)
    # The token key alone, not the vault: the additions go to the process that renders.
    return additions(vault.tokens, base_url(public_url, settings, domain), copy, settings,
                     decision)


def additions(tokens: Vault | TokenMac, base: str, copy: Copy, settings: DomainTracking,
              decision: Decision) -> Additions:
    """The changes for this copy."""
    if not (decision.any or settings.unsubscribes):
        return _unsubscribe_only(tokens, base, copy)
    return _Tracker(tokens, base, copy, settings, decision).additions()


def _unsubscribe_only(tokens: Vault | TokenMac, base: str, copy: Copy) -> Additions:
    """Untracked copies still get working unsubscribe variables: opting out is a right,
    not a tracking feature."""
    tracker = _Tracker(tokens, base, copy, DomainTracking(), Decision())
    return Additions(html=tracker.variables, text=tracker.variables)


class _Tracker:
    def __init__(self, tokens: Vault | TokenMac, base: str, copy: Copy,
                 settings: DomainTracking, decision: Decision) -> None:
        self.tokens, self.base, self.copy = tokens, base, copy
        self.settings, self.decision = settings, decision

    def _url(self, kind: str, data: str = "") -> str:
        return links.url(self.base, self.tokens, Link(kind, self.copy.delivery_id, data))

    @property
    def unsubscribe_all(self) -> str:
        return self._url("u", "*")

    def variables(self, text: str) -> str:
        if "%" not in text:
            return text
        text = text.replace("%unsubscribe_url%", self.unsubscribe_all)
        if "%tag_unsubscribe_url%" in text:
            text = text.replace("%tag_unsubscribe_url%",
                                self._url("u", json.dumps(self.copy.tags) if self.copy.tags
                                          else "*"))
        return text

    def additions(self) -> Additions:
        headers: tuple[tuple[str, str], ...] = ()
        if self.settings.unsubscribes and not self.copy.has_list_unsubscribe:
            headers = (("List-Unsubscribe", f"<{self.unsubscribe_all}>"),
                       ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        return Additions(html=self.html, text=self.text, headers=headers)

    def _wants_footer(self, body: str) -> bool:
        """The domain's footer, unless the message has its own unsubscribe link."""
        return self.settings.unsubscribes and not any(v in body for v in UNSUBSCRIBE_VARS)

    # Links are rewritten before the unsubscribe variables become URLs: those stay direct.
    def text(self, text: str) -> str:
        if self._wants_footer(text):
            text += self.settings.text_footer
        if self.decision.clicks == "yes":
            text = _TEXT_URL.sub(lambda m: self._url("c", m.group(0)), text)
        return self.variables(text)

    def html(self, html: str) -> str:
        if self._wants_footer(html):
            html = _insert_before_close(html, self.settings.html_footer)
        if self.decision.clicks != "no":
            html = _ANCHOR_HREF.sub(self._rewrite_anchor, html)
        html = self.variables(html)
        if self.decision.opens:
            pixel = (f'<img width="1" height="1" alt="" style="display:none" '
                     f'src="{html_lib.escape(self._url("o"))}">')
            html = (_insert_after_open(html, pixel) if self.settings.opens_at_top
                    else _insert_before_close(html, pixel))
        return html

    def _rewrite_anchor(self, match: re.Match) -> str:
        target = html_lib.unescape(match.group(3)).strip()
        if not target.lower().startswith(("http://", "https://")):
            return match.group(0)  # mailto:, tel:, #anchors, %unsubscribe_url%
        tracked = html_lib.escape(self._url("c", target))
        return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"


def _insert_before_close(html: str, fragment: str) -> str:
    closes = list(_BODY_CLOSE.finditer(html))
    if not closes:
        return html + fragment
    at = closes[-1].start()
    return html[:at] + fragment + html[at:]


def _insert_after_open(html: str, fragment: str) -> str:
    match = _BODY_OPEN.search(html)
    if match is None:
        return fragment + html
    return html[:match.end()] + fragment + html[match.end():]
