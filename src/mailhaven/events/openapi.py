"""The Events API's page as a JSON schema (Mailgun's shape) for /openapi.json."""

from __future__ import annotations

from mailhaven.openapi import ANY_OBJECT, NUMBER, STRING, answers, array, obj, paged

EVENT = obj({
    "id": STRING, "event": STRING,
    "timestamp": {**NUMBER, "description": "Epoch seconds"},
    "log-level": STRING, "recipient": STRING, "recipient-domain": STRING,
    "message": ANY_OBJECT, "tags": array(STRING), "user-variables": ANY_OBJECT,
    "flags": ANY_OBJECT, "envelope": ANY_OBJECT, "storage": ANY_OBJECT,
    "delivery-status": ANY_OBJECT, "reason": STRING, "severity": STRING,
}, optional=("log-level", "recipient", "recipient-domain", "message", "tags",
             "user-variables", "flags", "envelope", "storage", "delivery-status", "reason",
             "severity"), title="Event")
PAGE = answers(paged(EVENT, "EventsPage"), {
    "items": [{"id": "_5mgcTiKmT4Q6pejQ5mbXg", "event": "accepted",
               "timestamp": 1796548877.397, "log-level": "info",
               "recipient": "bob@example.com", "recipient-domain": "example.com",
               "message": {"headers": {"to": "bob@example.com", "from": "ann@mg.example.com",
                                       "subject": "Hello",
                                       "message-id": "20261206.e0c6@mg.example.com"},
                           "attachments": [], "size": 512},
               "tags": ["newsletter"], "user-variables": {}, "method": "http",
               "storage": {"key": "efeac86b31df79aee228cb0b",
                           "url": "https://api.example.com/v3/domains/mg.example.com/"
                                  "messages/efeac86b31df79aee228cb0b"}}],
    "paging": {name: f"https://api.example.com/v3/mg.example.com/events/{token}"
               for name, token in (("first", "eyJh…Zm9v.1a2b"), ("last", "eyJh…YmFy.3c4d"),
                                   ("next", "eyJh…YmF6.5e6f"),
                                   ("previous", "eyJh…cXV4.7a8b"))}})
