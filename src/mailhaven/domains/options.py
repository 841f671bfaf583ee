"""Three domain settings of Mailgun's v4 API, each honoured or refused with a 400, never
dropped: `message_ttl` (how long the domain's stored messages are kept), `encrypt_incoming_
message` (kept as given; every stored message is sealed anyway) and
`use_automatic_sender_security` (refused when true: we can't delegate DKIM by CNAME)."""

from __future__ import annotations

from mailhaven.domains.models import Domain
from mailhaven.errors import BadRequest

DAY = 86_400
MIN_MESSAGE_TTL = 3600  # the retention job runs hourly: a shorter time couldn't be kept
MAX_MESSAGE_TTL = 3650 * DAY  # the longest retention period an account may choose
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")

SENDER_SECURITY = (
    "use_automatic_sender_security=true is not supported: Mailgun's automatic sender "
    "security has you publish CNAMEs that point DKIM at keys the provider hosts and rotates "
    "on its own name servers, and Mailhaven runs no name server for your domain. It keeps "
    "the DKIM keys itself and publishes them as TXT records; rotate them with POST "
    "/v1/admin/domains/{name}/dkim/rotate")
ENCRYPT_FIXED = ("encrypt_incoming_message can't be changed once the domain exists (as on "
                 "Mailgun); it is {value} for {name}")
TTL_RANGE = (f"message_ttl must be a whole number of seconds from {MIN_MESSAGE_TTL} "
             f"(an hour) to {MAX_MESSAGE_TTL} (ten years)")
TTL_CEILING = ("message_ttl {ttl} is longer than this account keeps stored messages "
               "({days} days: its message_bodies retention policy). Choose at most {most}, "
               "or lengthen the policy first with PUT /v1/privacy/retention")


def boolean(fields: dict[str, str], name: str) -> bool | None:
    """A yes/no field as given (None when absent or empty); anything else is a 400."""
    value = (fields.get(name) or "").strip().lower()
    if not value:
        return None
    if value not in _TRUE + _FALSE:
        raise BadRequest(f"{name} must be true or false")
    return value in _TRUE


def message_ttl(value: str) -> int:
    try:
        seconds = int(value.strip())
    except ValueError:
        raise BadRequest(TTL_RANGE) from None
    if not MIN_MESSAGE_TTL <= seconds <= MAX_MESSAGE_TTL:
        raise BadRequest(TTL_RANGE)
    return seconds


def apply(domain: Domain, fields: dict[str, str]) -> None:
    """Set what `fields` gives of the three (create and update); a new domain is one whose
    encrypt_incoming_message is still unset."""
    if boolean(fields, "use_automatic_sender_security"):
        raise BadRequest(SENDER_SECURITY.format(name=domain.name))
    if (fields.get("message_ttl") or "").strip():
        domain.message_ttl = message_ttl(fields["message_ttl"])
    encrypt = boolean(fields, "encrypt_incoming_message")
    if domain.encrypt_incoming_message is None:
        domain.encrypt_incoming_message = bool(encrypt)
    elif encrypt is not None and encrypt != domain.encrypt_incoming_message:
        raise BadRequest(ENCRYPT_FIXED.format(
            value=str(domain.encrypt_incoming_message).lower(), name=domain.name))


def check_ttl(domain: Domain, kept_for: int) -> None:
    """A message_ttl longer than the account keeps message bodies would be a promise the
    purge breaks: refused (`kept_for`: the account's period, in seconds)."""
    if domain.message_ttl is not None and domain.message_ttl > kept_for:
        raise BadRequest(TTL_CEILING.format(ttl=domain.message_ttl, days=kept_for // DAY,
                                            most=kept_for))


def effective_ttl(domain: Domain, kept_for: int) -> int:
    """How long the domain's stored messages are kept: its own message_ttl, but never longer
    than the account's period (which it may have shortened since)."""
    return min(domain.message_ttl or kept_for, kept_for)


def domain_json(domain: Domain, kept_for: int) -> dict[str, bool | int]:
    """The three fields as Mailgun's domain object reports them."""
    return {"use_automatic_sender_security": False,
            "encrypt_incoming_message": bool(domain.encrypt_incoming_message),
            "message_ttl": effective_ttl(domain, kept_for)}
