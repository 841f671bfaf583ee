"""The Routes API's answers as JSON schemas (Mailgun's shapes) for /openapi.json; the
examples are the router's."""

from __future__ import annotations

from mailhaven.openapi import DATE, INTEGER, STRING, answers, array, obj

ROUTE = obj({"id": STRING, "priority": INTEGER, "description": STRING, "expression": STRING,
             "actions": array(STRING), "created_at": DATE}, title="Route")
LISTED = answers(obj({"total_count": INTEGER, "items": array(ROUTE)}, title="RouteList"))
ONE = answers(obj({"route": ROUTE}, title="RouteAnswer"))
CREATED = answers(obj({"message": STRING, "route": ROUTE}, title="RouteCreated"))
# as Mailgun's: the route's fields, and the route again
UPDATED = answers({**ROUTE, "title": "RouteUpdated",
                   "properties": {**ROUTE["properties"], "message": STRING, "route": ROUTE},
                   "required": [*ROUTE["required"], "message", "route"]})
DELETED = answers(obj({"message": STRING, "id": STRING}, title="RouteDeleted"))
