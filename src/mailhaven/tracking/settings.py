"""A domain's tracking settings (`/v3/domains/{domain}/tracking`), as Mailgun shows them."""

from __future__ import annotations

from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest
from mailhaven.forms import flag
from mailhaven.tracking.policy import DomainTracking

_TRUTHS = ("yes", "no", "true", "false")


def settings_json(domain: Domain) -> dict:
    t = DomainTracking.of(domain)
    return {"open": {"active": t.opens, "place_at_the_top": t.opens_at_top},
            "click": {"active": "htmlonly" if t.clicks == "htmlonly" else t.clicks == "yes"},
            "unsubscribe": {"active": t.unsubscribes, "html_footer": t.html_footer,
                            "text_footer": t.text_footer},
            "web_scheme": domain.web_scheme}


def _active(value: str | None, *, allow_htmlonly: bool = False) -> bool | str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if allow_htmlonly and value == "htmlonly":
        return "htmlonly"
    if value not in _TRUTHS:
        raise BadRequest(f"'active' should be one of yes, no, true, false"
                         f"{', htmlonly' if allow_htmlonly else ''}")
    return flag(value)


def update_settings(domain: Domain, kind: str, fields: dict[str, str]) -> dict:
    """PUT …/tracking/{open|click|unsubscribe}: change what was given, answer the new state."""
    if kind == "open":
        active = _active(fields.get("active"))
        if active is not None:
            domain.track_opens = bool(active)
        if fields.get("place_at_the_top") is not None:
            domain.track_opens_top = flag(fields["place_at_the_top"])
    elif kind == "click":
        active = _active(fields.get("active"), allow_htmlonly=True)
        if active is not None:
            domain.track_clicks = active if active == "htmlonly" else "yes" if active else "no"
    elif kind == "unsubscribe":
        active = _active(fields.get("active"))
        if active is not None:
            domain.track_unsubscribes = bool(active)
        if "html_footer" in fields:
            domain.unsubscribe_html_footer = fields["html_footer"][:10_000] or None
        if "text_footer" in fields:
            domain.unsubscribe_text_footer = fields["text_footer"][:10_000] or None
    else:
        raise BadRequest("tracking type must be open, click or unsubscribe")
    return settings_json(domain)[kind]
