"""The privacy notice as the site shows it: the built-in version (one template each,
`templates/notice_v<N>.html`, its tables drawn from the live record of processing) and the
versions stored by `mailhaven notice publish` (plain text, rendered here without any HTML
of the file's own), which supersede it; the one in force; the differences between two
versions; the live record of processing, so the notice never says other than what the
code does."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from mailhaven.models import metadata
from mailhaven.notices import service as notices
from mailhaven.notices.subprocessors import (
    record_sections,
    register_changes,
    register_on,
    summary_contradicted,
)
from mailhaven.retention.service import schedule
from mailhaven.services import Services
from mailhaven.storage import processing_record
from mailhaven.web.core import templates

_DOCUMENT = re.compile(r"notice_v(\d+)\.html")


@dataclass(frozen=True)
class Version:
    """A version as the list of versions shows it."""

    version: str
    published: str | None  # None: built in
    effective: str | None
    significant: bool
    upcoming: bool
    summary: str
    stored: notices.Notice | None


def builtin_versions() -> list[str]:
    """The versions shipped as templates, oldest first."""
    found = (_DOCUMENT.fullmatch(name) for name in templates.list_templates())
    return sorted((m.group(1) for m in found if m), key=int)


def versions() -> list[str]:
    """The built-in versions (kept for callers that know no database)."""
    return builtin_versions()


def template(version: str) -> str:
    return f"notice_v{version}.html"


def builtin_in_force(services: Services) -> str:
    """`MAILHAVEN_NOTICE_VERSION` when there is a document of that version, else the
    newest there is."""
    known = builtin_versions()
    wanted = services.settings.notice_version
    return wanted if wanted in known else known[-1]


def listing(services: Services) -> tuple[list[Version], str]:
    """Every version, oldest first (built-in ones that no stored version of the same name
    supersedes, then the stored ones), and the one in force."""
    now = services.clock.now()
    with services.main_db.sessions() as session:
        stored = notices.notice_versions(session)
        current = notices.in_force(session, now)
    names = {n.version for n in stored}
    shown = [Version(v, None, None, False, False, "the notice this installation shipped with",
                     None) for v in builtin_versions() if v not in names]
    shown += [Version(n.version, notices.day(n.published_at), notices.day(n.effective_at),
                      n.significant, n.effective_at > now, n.summary, n) for n in stored]
    return shown, current.version if current is not None else builtin_in_force(services)


def in_force(services: Services) -> str:
    return listing(services)[1]


def render_text(text: str) -> Markup:
    """A stored notice's plain text as HTML: `#`/`##`/`###` headings, `- ` lists,
    paragraphs; everything escaped (a tag in the file shows as text)."""
    out: list[Markup] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append(Markup("<p>{}</p>").format(" ".join(paragraph)))
            paragraph.clear()
        if items:
            out.append(Markup("<ul>{}</ul>").format(
                Markup("").join(Markup("<li>{}</li>").format(i) for i in items)))
            items.clear()

    for line in text.splitlines():
        stripped = line.strip()
        heading = re.match(r"(#{1,3}) +(.*)", stripped)
        if heading:
            flush()
            level = len(heading.group(1)) + 1  # the page's own title is the h1
            out.append(Markup("<h{0}>{1}</h{0}>").format(level, heading.group(2)))
        elif stripped.startswith("- "):
            if paragraph:
                flush()
            items.append(stripped[2:])
        elif not stripped:
            flush()
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return Markup("\n").join(out)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "ins", "del", "same", "gap"
    text: str


def diff(previous: str, current: str) -> list[DiffLine]:
    """What changed from `previous` to `current`, line by line with some context."""
    lines: list[DiffLine] = []
    for line in difflib.unified_diff(previous.splitlines(), current.splitlines(),
                                     lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(DiffLine("gap", "…"))
        elif line.startswith("+"):
            lines.append(DiffLine("ins", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("del", line[1:]))
        else:
            lines.append(DiffLine("same", line[1:]))
    return lines


def registers(services: Services, *dates: float) -> list[list[dict[str, Any]]]:
    """The register of sub-processors as it stood on each date (a version's effective
    date: the parties that version names)."""
    now = services.clock.now()
    with services.main_db.sessions() as session:
        return [register_on(session, at, now) for at in dates]


def changes_between(services: Services, previous: notices.Notice, current: notices.Notice
                    ) -> tuple[list[DiffLine], list[str], bool]:
    """What a version changes from the one before it: its text, its register, and whether
    its stored summary contradicts that register change (then the register is shown first
    and the summary labelled as the publisher's)."""
    before, after = registers(services, previous.effective_at, current.effective_at)
    return (diff(previous.text, current.text), register_changes(before, after),
            summary_contradicted(current.summary, before, after))


def record(services: Services) -> dict[str, Any]:
    """The Article 30 record of processing (`mailhaven privacy inventory`), with the
    retention schedule as configured, the regions and the sub-processors."""
    return processing_record.build(metadata, schedule(services.settings),
                                   **record_sections(services))
