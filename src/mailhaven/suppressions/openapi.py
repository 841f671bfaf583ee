"""The suppression lists' answers as JSON schemas (Mailgun's shapes) for /openapi.json."""

from __future__ import annotations

from typing import Any

from mailhaven.openapi import DATE, MESSAGE, STRING, answers, array, obj, paged

ITEMS = {
    "bounces": obj({"address": STRING, "code": STRING, "error": STRING, "created_at": DATE},
                   title="Bounce"),
    "unsubscribes": obj({"address": STRING, "tags": array(STRING), "created_at": DATE},
                        title="Unsubscribe"),
    "complaints": obj({"address": STRING, "created_at": DATE}, title="Complaint"),
    "whitelists": obj({"type": {"type": "string", "enum": ["address", "domain"]},
                       "value": STRING, "reason": STRING, "createdAt": DATE},
                      title="Allowlisted"),
}
WHEN = "Sun, 06 Dec 2026 09:21:17 GMT"
EXAMPLES: dict[str, dict[str, Any]] = {
    "bounces": {"address": "bob@example.com", "code": "550",
                "error": "5.1.1 The email account does not exist", "created_at": WHEN},
    "unsubscribes": {"address": "bob@example.com", "tags": ["newsletter"], "created_at": WHEN},
    "complaints": {"address": "bob@example.com", "created_at": WHEN},
    "whitelists": {"type": "address", "value": "bob@example.com", "reason": "",
                   "createdAt": WHEN},
}


def listed(kind: str) -> dict[str, Any]:
    url = f"https://api.example.com/v3/mg.example.com/{kind}"
    return answers(paged(ITEMS[kind], f"{ITEMS[kind]['title']}Page"), {
        "items": [EXAMPLES[kind]], "paging": {
            "first": f"{url}?limit=100", "last": f"{url}?page=last&limit=100",
            "next": f"{url}?page=next&address=bob%40example.com&limit=100",
            "previous": f"{url}?page=previous&address=bob%40example.com&limit=100"}})


def one(kind: str) -> dict[str, Any]:
    return answers(ITEMS[kind], EXAMPLES[kind])


def added(kind: str, message: str) -> dict[str, Any]:
    """One record added from a form names it; a JSON batch answers the message alone."""
    if kind == "whitelists":
        schema = obj({"message": STRING, "type": STRING, "value": STRING},
                     optional=("type", "value"), title="Allowlisted")
        return answers(schema, {"message": message, "type": "address",
                                "value": "bob@example.com"})
    return answers(obj({"message": STRING, "address": STRING}, optional=("address",),
                       title="Added"), {"message": message, "address": "bob@example.com"})


def removed(kind: str, message: str) -> dict[str, Any]:
    key = "value" if kind == "whitelists" else "address"
    return answers(obj({"message": STRING, key: STRING}, title="Removed"),
                   {"message": message, key: "bob@example.com"})


def cleared(message: str) -> dict[str, Any]:
    return answers(MESSAGE, {"message": message})
