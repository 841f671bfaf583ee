"""A plain-text version of an HTML body (`t:text=yes`): what a reader would see, in one
linear pass. Paragraphs, headings, list items and table rows become lines, links keep their
address, images their alt text; scripts, styles and the head are dropped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset({"script", "style", "head", "title", "template"})
_BREAKS = frozenset({"br"})
_LINES = frozenset({"div", "tr", "li", "dt", "dd", "table", "ul", "ol", "section",
                    "article", "header", "footer", "address", "pre", "hr", "center"})
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"})
_SPACE = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        # each <a> open, innermost last: its href, and where its text starts in `out`
        self.links: list[tuple[str | None, int]] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag in _BREAKS:
            self.out.append("\n")
        elif tag in _PARAGRAPHS:
            self.out.append("\n\n")
        elif tag in _LINES:
            self.out.append("\n")
            if tag == "li":
                self.out.append("- ")
        if tag == "pre":
            self.pre += 1
        if tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))
        elif tag == "img" and not self.skipping:
            alt = dict(attrs).get("alt")
            if alt:
                self._word(_SPACE.sub(" ", alt))
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _BREAKS and tag != "img":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _PARAGRAPHS:
            self.out.append("\n\n")
        elif tag in _LINES and tag != "li":  # an item's line break is the next one's
            self.out.append("\n")
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag == "a" and self.links:
            href, start = self.links.pop()
            shown = "".join(self.out[start:]).strip()
            if href and shown != href and not self.skipping \
                    and not href.startswith(("#", "mailto:", "javascript:")):
                self._word(f"({href})")

    def _word(self, text: str) -> None:
        """`text` as a word of its own: a space before it unless one is there."""
        last = self.out[-1] if self.out else "\n"
        self.out.append(text if last.endswith((" ", "\n")) else " " + text)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data if self.pre else _SPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    lines = (line.strip(" ") for line in "".join(reader.out).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"
