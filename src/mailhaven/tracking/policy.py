"""Whether one copy of a message may be tracked: decided here and nowhere else.

Tracking is off unless the domain turns it on; a message can turn it off (or limit clicks
to HTML) but never on where the domain has it off. The privacy engine adds consent and
restriction of processing to this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhaven.controls.service import NO_LIMITS, Limits
from mailhaven.domains.models import Domain

DEFAULT_HTML_FOOTER = '\n<br>\n<p><a href="%unsubscribe_url%">unsubscribe</a></p>\n'
DEFAULT_TEXT_FOOTER = "\n\nTo unsubscribe click: <%unsubscribe_url%>\n\n"


@dataclass(frozen=True)
class DomainTracking:
    """A domain's tracking settings, detached from the session (the worker carries them)."""

    opens: bool = False
    opens_at_top: bool = False
    clicks: str = "no"  # "yes" | "htmlonly" | "no"
    unsubscribes: bool = False
    html_footer: str = DEFAULT_HTML_FOOTER
    text_footer: str = DEFAULT_TEXT_FOOTER
    web_scheme: str = "http"
    web_prefix: str = "email"

    @classmethod
    def of(cls, domain: Domain) -> DomainTracking:
        return cls(opens=bool(domain.track_opens), opens_at_top=bool(domain.track_opens_top),
                   clicks=domain.track_clicks or "no",
                   unsubscribes=bool(domain.track_unsubscribes),
                   html_footer=domain.unsubscribe_html_footer or DEFAULT_HTML_FOOTER,
                   text_footer=domain.unsubscribe_text_footer or DEFAULT_TEXT_FOOTER,
                   web_scheme=domain.web_scheme or "http", web_prefix=domain.web_prefix or "email")


@dataclass(frozen=True)
class Decision:
    opens: bool = False
    clicks: str = "no"  # "yes" | "htmlonly" | "no"

    @property
    def any(self) -> bool:
        return self.opens or self.clicks != "no"


NOT_TRACKED = Decision()


def may_track(domain: DomainTracking, requested: dict | None,
              limits: Limits = NO_LIMITS) -> Decision:
    """What may be tracked in a recipient's copy. `requested` holds the message's
    `o:tracking`, `o:tracking-opens` and `o:tracking-clicks` (None where not given);
    `limits` the recipient's restriction, objection and withdrawn tracking consent."""
    requested = requested or {}
    if requested.get("all") is False or not limits.may_track:
        return NOT_TRACKED
    opens = domain.opens and requested.get("opens") is not False
    clicks = domain.clicks
    asked = requested.get("clicks")
    if asked == "no":
        clicks = "no"
    elif asked == "htmlonly" and clicks != "no":
        clicks = "htmlonly"
    return Decision(opens=opens, clicks=clicks)
