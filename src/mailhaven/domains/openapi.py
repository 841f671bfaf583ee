"""The domain endpoints' answers as JSON schemas (Mailgun's shapes) for /openapi.json."""

from __future__ import annotations

from mailhaven.openapi import BOOLEAN, DATE, INTEGER, MESSAGE, STRING, answers, array, obj

DOMAIN = obj({
    "id": STRING, "name": STRING,
    "state": {"type": "string", "description": "unverified or active"},
    "type": STRING, "created_at": DATE, "smtp_login": STRING, "spam_action": STRING,
    "require_tls": BOOLEAN, "skip_verification": BOOLEAN, "web_prefix": STRING,
    "web_scheme": STRING, "wildcard": BOOLEAN, "is_disabled": BOOLEAN,
    "use_automatic_sender_security": BOOLEAN, "encrypt_incoming_message": BOOLEAN,
    "message_ttl": INTEGER,
}, optional=("use_automatic_sender_security", "encrypt_incoming_message", "message_ttl"),
   title="Domain")
DNS_RECORD = obj({
    "record_type": STRING, "name": STRING, "value": STRING,
    "valid": {"type": "string", "description": "valid, invalid or unknown"},
    "cached": array(STRING), "is_active": BOOLEAN, "priority": STRING,
}, optional=("cached", "is_active", "priority"), title="DnsRecord")
EXAMPLE_DOMAIN = {
    "id": "8cb1df495a5eb211b06b424b", "name": "mg.example.com", "state": "unverified",
    "type": "custom", "created_at": "Sun, 06 Dec 2026 09:21:17 GMT",
    "smtp_login": "postmaster@mg.example.com", "spam_action": "disabled",
    "require_tls": False, "skip_verification": False, "web_prefix": "email",
    "web_scheme": "https", "wildcard": False, "is_disabled": False,
    "use_automatic_sender_security": False, "encrypt_incoming_message": False,
    "message_ttl": 259200}
EXAMPLE_ANSWER = {
    "domain": EXAMPLE_DOMAIN,
    "receiving_dns_records": [{"record_type": "MX", "name": "mg.example.com",
                               "value": "mx.mailhaven.example", "valid": "unknown",
                               "cached": [], "is_active": True, "priority": "10"}],
    "sending_dns_records": [{"record_type": "TXT", "name": "mg.example.com",
                             "value": "v=spf1 a:mx.mailhaven.example ~all",
                             "valid": "unknown", "cached": [], "is_active": True}]}
_ANSWER = {"domain": DOMAIN, "receiving_dns_records": array(DNS_RECORD),
           "sending_dns_records": array(DNS_RECORD)}

LISTED = answers(obj({"total_count": INTEGER, "items": array(DOMAIN)}, title="DomainList"),
                 {"total_count": 1, "items": [EXAMPLE_DOMAIN]})
ONE = answers(obj(_ANSWER, title="DomainWithRecords"), EXAMPLE_ANSWER)


def changed(message: str) -> dict:
    """A domain created, updated or checked: Mailgun's message, then the domain."""
    return answers(obj({"message": STRING, **_ANSWER}, title="DomainChanged"),
                   {"message": message, **EXAMPLE_ANSWER})


DELETED = answers(MESSAGE, {"message": "Domain will be deleted in the background"})
