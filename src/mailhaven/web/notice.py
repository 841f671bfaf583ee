"""The privacy notice as the site shows it: its versions (one template each,
`templates/notice_v<N>.html`), the one in force, and the live record of processing its
tables are drawn from, so the notice never says other than what the code does."""

from __future__ import annotations

import re
from typing import Any

from mailhaven.config import Settings
from mailhaven.models import metadata
from mailhaven.retention.service import schedule
from mailhaven.storage import processing_record
from mailhaven.web.core import templates

_DOCUMENT = re.compile(r"notice_v(\d+)\.html")


def versions() -> list[str]:
    """Every published version, oldest first."""
    found = (_DOCUMENT.fullmatch(name) for name in templates.list_templates())
    return sorted((m.group(1) for m in found if m), key=int)


def template(version: str) -> str:
    return f"notice_v{version}.html"


def in_force(settings: Settings) -> str:
    """`MAILHAVEN_NOTICE_VERSION` when there is a document of that version, else the
    newest there is."""
    known = versions()
    return settings.notice_version if settings.notice_version in known else known[-1]


def record(settings: Settings) -> dict[str, Any]:
    """The Article 30 record of processing (`mailhaven privacy inventory`), with the
    retention schedule as configured."""
    return processing_record.build(metadata, schedule(settings))
