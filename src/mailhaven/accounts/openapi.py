"""The Keys API's answers as JSON schemas (Mailgun's `/v1/keys` shapes) for /openapi.json;
the examples are the router's."""

from __future__ import annotations

from typing import Any

from mailhaven.openapi import BOOLEAN, INTEGER, STRING, answers, array, nullable, obj

# "2006-01-02T15:04:05": ISO 8601 in UTC, whole seconds, no offset (Mailgun's)
TIME: dict[str, Any] = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$",
                        "description": "UTC, ISO 8601 without an offset, as Mailgun's"}
KEY_PROPERTIES: dict[str, dict[str, Any]] = {
    "id": STRING, "description": STRING, "kind": STRING, "role": STRING,
    "created_at": TIME, "updated_at": TIME, "requestor": nullable(STRING),
    "user_name": nullable(STRING), "domain_name": nullable(STRING), "is_disabled": BOOLEAN}
# The nullable three are always in the answer (null but for a panel-made key's maker);
# optional here only because FastAPI drops nulls from the documented examples.
NULLABLE = ("requestor", "user_name", "domain_name")
KEY = obj(KEY_PROPERTIES, optional=NULLABLE, title="Key")
LISTED = answers(obj({"total_count": INTEGER, "items": array(KEY)}, title="KeyList"))
CREATED = answers(obj({"message": STRING, "key": obj({**KEY_PROPERTIES, "secret": STRING},
                                                     optional=NULLABLE, title="KeyWithSecret")},
                      title="KeyCreated"))
DELETED = answers(obj({"message": STRING}, title="KeyDeleted"))
