"""The webhook endpoints' answers as JSON schemas (Mailgun's shapes) for /openapi.json."""

from __future__ import annotations

from mailhaven.openapi import MESSAGE, STRING, answers, array, obj

HOOK = "https://hooks.example.com/mailgun"
URLS = obj({"urls": array(STRING)}, title="WebhookUrls")
BY_TYPE = obj({"webhooks": {"type": "object", "additionalProperties": URLS,
                            "description": "Each event type's URLs"}}, title="Webhooks")
BY_TYPE_EXAMPLE = {"webhooks": {"delivered": {"urls": [HOOK]}, "opened": {"urls": [HOOK]}}}
LISTED = answers(BY_TYPE, BY_TYPE_EXAMPLE)
ONE = answers(obj({"webhook": URLS}, title="Webhook"), {"webhook": {"urls": [HOOK]}})
CHANGED = obj({"message": STRING, "webhook": URLS}, title="WebhookChanged")
# v3's create answers in v4's shape when given v4's `event_types`
CREATED_V3 = answers({"anyOf": [CHANGED, BY_TYPE]})
UPDATED = answers(CHANGED, {"message": "Webhook has been updated", "webhook": {"urls": [HOOK]}})
DELETED = answers(CHANGED, {"message": "Webhook has been deleted", "webhook": {"urls": [HOOK]}})

ACCOUNT_HOOK = obj({"webhook_id": STRING, "description": STRING, "url": STRING,
                    "event_types": array(STRING), "created_at": STRING},
                   title="AccountWebhook")
ACCOUNT_EXAMPLE = {"webhook_id": "6f0483b02a29fa9e59bd0cf3", "description": "Our CRM",
                   "url": HOOK, "event_types": ["opened", "clicked"],
                   "created_at": "2026-12-06T09:21:17Z"}
ACCOUNT_LISTED = answers(obj({"webhooks": array(ACCOUNT_HOOK)}, title="AccountWebhooks"),
                         {"webhooks": [ACCOUNT_EXAMPLE]})
ACCOUNT_ONE = answers(ACCOUNT_HOOK, ACCOUNT_EXAMPLE)
ACCOUNT_CREATED = answers(obj({"webhook_id": STRING}, title="AccountWebhookCreated"),
                          {"webhook_id": "6f0483b02a29fa9e59bd0cf3"})
ACCOUNT_UPDATED = answers(MESSAGE, {"message": "Webhook updated"})
ACCOUNT_DELETED = answers(MESSAGE, {"message": "Webhook deleted"})
