"""Stats' and tags' answers as JSON schemas (Mailgun's shapes) for /openapi.json."""

from __future__ import annotations

from mailhaven.openapi import DATE, INTEGER, MESSAGE, STRING, answers, array, obj, paged

COUNTERS = {"type": "object", "additionalProperties": INTEGER,
            "description": "The event's counters (`total` and its parts)"}
ROW = {**obj({"time": DATE}), "additionalProperties": COUNTERS, "title": "StatsRow"}
_STATS = {"start": DATE, "end": DATE, "resolution": STRING, "stats": array(ROW)}
EXAMPLE = {"start": "Sun, 29 Nov 2026 00:00:00 GMT", "end": "Sun, 06 Dec 2026 00:00:00 GMT",
           "resolution": "day", "stats": [{
               "time": "Sun, 29 Nov 2026 00:00:00 GMT",
               "accepted": {"incoming": 0, "outgoing": 10, "total": 10},
               "delivered": {"smtp": 9, "http": 0, "optimized": 0, "total": 9}}]}
TOTALS = answers(obj(_STATS, title="Stats"), EXAMPLE)
TAG_STATS = answers(obj({"tag": STRING, "description": STRING, **_STATS}, title="TagStats"),
                    {"tag": "newsletter", "description": "", **EXAMPLE})

TAG = obj({"tag": STRING, "description": STRING, "first-seen": STRING, "last-seen": STRING},
          title="Tag")
EXAMPLE_TAG = {"tag": "newsletter", "description": "The weekly letter",
               "first-seen": "2026-12-01T09:00:00Z", "last-seen": "2026-12-06T09:00:00Z"}
_URL = "https://api.example.com/v3/mg.example.com/tags?limit=100"
TAGS = answers(paged(TAG, "TagPage"), {"items": [EXAMPLE_TAG], "paging": {
    "first": f"{_URL}&page=first", "last": f"{_URL}&page=last",
    "next": f"{_URL}&page=next&tag=newsletter", "previous": f"{_URL}&page=prev&tag=newsletter"}})
ONE_TAG = answers(TAG, EXAMPLE_TAG)
TAG_UPDATED = answers(MESSAGE, {"message": "Tag updated"})
TAG_DELETED = answers(MESSAGE, {"message": "Tag deleted"})
LIMITS = answers(obj({"limit": INTEGER, "count": INTEGER}, title="TagLimits"),
                 {"limit": 5000, "count": 12})
