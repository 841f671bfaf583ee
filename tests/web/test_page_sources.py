"""What the CSP forbids, checked in the page sources themselves: no inline script, no
inline style, no event-handler attributes, nothing loaded from another site. (The browser
tests check the same pages at run time: the CSP would block any of these, so a page that
needed one would be broken.)"""

from __future__ import annotations

import re
from pathlib import Path

import mailhaven

TEMPLATES = Path(mailhaven.__file__).parent / "web" / "templates"
STATIC = Path(mailhaven.__file__).parent / "web" / "static"


def _sources() -> list[Path]:
    return sorted(TEMPLATES.glob("*.html"))


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    problems = []
    for path in _sources():
        text = path.read_text()
        for match in re.finditer(r"<script\b[^>]*>", text, re.I):
            if "src=" not in match.group(0):
                problems.append(f"{path.name}: inline <script>")
        if re.search(r"<style\b", text, re.I):
            problems.append(f"{path.name}: <style> element")
        if re.search(r"\sstyle\s*=", text, re.I):
            problems.append(f"{path.name}: style= attribute")
        if re.search(r"\son[a-z]+\s*=", text, re.I):
            problems.append(f"{path.name}: event-handler attribute")
        if re.search(r"javascript:", text, re.I):
            problems.append(f"{path.name}: javascript: URL")
    assert problems == []


def test_pages_load_nothing_from_another_site() -> None:
    """No CDN, no web font, no analytics host: every src/href of a resource is our own."""
    problems = []
    for path in [*_sources(), *STATIC.glob("*.css"), *STATIC.glob("*.js")]:
        text = path.read_text()
        for match in re.finditer(r"""(?:src|href)\s*=\s*["'](https?:)?//""", text, re.I):
            line = text[max(0, match.start() - 80):match.end() + 60]
            if "<a " not in line:  # a link the user may follow is not a resource
                problems.append(f"{path.name}: {match.group(0)}")
        if re.search(r"@import|url\(\s*['\"]?(https?:)?//", text) and path.suffix == ".css":
            problems.append(f"{path.name}: a stylesheet loading from elsewhere")
    assert problems == []
