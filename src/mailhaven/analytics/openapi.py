"""Analytics logs' answer as a JSON schema (Mailgun's shape) for /openapi.json; the example
is the router's."""

from __future__ import annotations

from mailhaven.openapi import ANY_OBJECT, INTEGER, STRING, answers, array, obj

LOG_ITEM = obj({"id": STRING, "event": STRING, "@timestamp": STRING, "account": ANY_OBJECT,
                "domain": ANY_OBJECT, "recipient": STRING, "user-variables": STRING,
                "flags": ANY_OBJECT, "message": ANY_OBJECT, "tags": array(STRING)},
               optional=("account", "domain", "recipient", "user-variables", "flags",
                         "message", "tags"), title="LogItem")
LOGS = answers(obj({"start": STRING, "end": STRING, "items": array(LOG_ITEM),
                    "pagination": obj({"next": STRING, "previous": STRING, "first": STRING,
                                       "total": INTEGER},
                                      optional=("next", "previous", "first", "total")),
                    "aggregates": ANY_OBJECT}, optional=("aggregates",), title="Logs"))
