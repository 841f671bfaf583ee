"""The Templates API's answers as JSON schemas (Mailgun's shapes) for /openapi.json; the
examples are the router's."""

from __future__ import annotations

from mailhaven.openapi import BOOLEAN, MESSAGE, PAGING, STRING, answers, array, obj

VERSION = obj({"tag": STRING, "template": STRING, "engine": STRING, "mjml": STRING,
               "createdAt": STRING, "comment": STRING, "active": BOOLEAN, "id": STRING,
               "headers": {"type": "object", "additionalProperties": STRING}},
              optional=("template", "engine", "mjml", "createdAt", "comment", "active", "id",
                        "headers"), title="TemplateVersion")
TEMPLATE = obj({"name": STRING, "description": STRING, "createdAt": STRING,
                "createdBy": STRING, "id": STRING, "version": VERSION,
                "versions": array(VERSION)},
               optional=("description", "createdAt", "createdBy", "id", "version", "versions"),
               title="Template")
LISTED = answers(obj({"items": array(TEMPLATE), "paging": PAGING}, title="TemplatePage"))
VERSIONS = answers(obj({"template": TEMPLATE, "paging": PAGING}, title="TemplateVersions"))
ONE = answers(obj({"template": TEMPLATE}, title="TemplateAnswer"))
CHANGED = answers(obj({"message": STRING, "template": TEMPLATE}, title="TemplateChanged"))
COPIED = answers(obj({"message": STRING, "version": VERSION, "template": VERSION},
                     title="TemplateVersionCopied"))
DELETED_ALL = answers(MESSAGE)
