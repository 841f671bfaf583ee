"""A plain-text version of an HTML body (`t:text=yes`): what a reader would see, in one
linear pass. Paragraphs, headings, list items and table rows become lines, links keep their
address, images their alt text; scripts, styles and the head are dropped."""

from __future__ import annotations

import re
from bisect import bisect_left
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
        # Beside `out`, so a link's text is measured without joining it (nested links would
        # join the same text again at each </a>): the length written up to each piece's end,
        # its blank lead and trail, and which pieces hold more than blanks.
        self.ends: list[int] = []
        self.blank: list[tuple[int, int]] = []
        self.solid: list[int] = []
        self.skipping = 0
        # each <a> open, innermost last: its href, and where its text starts in `out`
        self.links: list[tuple[str | None, int]] = []
        self.pre = 0

    def _put(self, text: str) -> None:
        stripped = text.strip()
        if stripped:
            self.solid.append(len(self.out))
        lead = len(text) - len(text.lstrip())
        self.blank.append((lead, len(text) - lead - len(stripped)))
        self.ends.append((self.ends[-1] if self.ends else 0) + len(text))
        self.out.append(text)

    def _shown(self, start: int, longest: int) -> str | None:
        """The text written since piece `start`, stripped; None when longer than `longest`
        (found without reading it)."""
        first = bisect_left(self.solid, start)
        if first == len(self.solid):
            return ""
        first, last = self.solid[first], self.solid[-1]
        lead, trail = self.blank[first][0], self.blank[last][1]
        before = self.ends[first - 1] if first else 0
        if self.ends[last] - before - lead - trail > longest:
            return None
        if first == last:
            return self.out[first][lead:len(self.out[first]) - trail]
        return (self.out[first][lead:] + "".join(self.out[first + 1:last])
                + self.out[last][:len(self.out[last]) - trail])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag in _BREAKS:
            self._put("\n")
        elif tag in _PARAGRAPHS:
            self._put("\n\n")
        elif tag in _LINES:
            self._put("\n")
            if tag == "li":
                self._put("- ")
        if tag == "pre":
            self.pre += 1
        if tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))
        elif tag == "img" and not self.skipping:
            alt = dict(attrs).get("alt")
            if alt:
                self._word(_SPACE.sub(" ", alt))
        elif tag in ("td", "th"):
            self._put(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _BREAKS and tag != "img":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _PARAGRAPHS:
            self._put("\n\n")
        elif tag in _LINES and tag != "li":  # an item's line break is the next one's
            self._put("\n")
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag == "a" and self.links:
            href, start = self.links.pop()
            shown = self._shown(start, len(href or ""))
            if href and shown != href and not self.skipping \
                    and not href.startswith(("#", "mailto:", "javascript:")):
                self._word(f"({href})")

    def _word(self, text: str) -> None:
        """`text` as a word of its own: a space before it unless one is there."""
        last = self.out[-1] if self.out else "\n"
        self._put(text if last.endswith((" ", "\n")) else " " + text)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self._put(data if self.pre else _SPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    lines = (line.strip(" ") for line in "".join(reader.out).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"
