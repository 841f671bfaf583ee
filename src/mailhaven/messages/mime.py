"""A MIME message's header block, read in linear time without the email package (whose
structured parsing is quadratic): for validating a `.mime` send, and for its facts."""

from __future__ import annotations

import re
from collections.abc import Iterator

BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


def head_size(raw: bytes) -> int:
    end = BLANK_LINE.search(raw)
    return end.start() if end else len(raw)


def mime_head(raw: bytes) -> list[bytes]:
    """The header lines of a MIME message, line ends taken off."""
    return _LINE_END.split(raw[:head_size(raw)])


def mime_fields(lines: list[bytes]) -> Iterator[tuple[str, str]]:
    """The (lower-case name, unfolded value) of each field of a message's header lines,
    read without the email package (whose structured parsing is quadratic)."""
    name, value = "", []
    for line in lines:
        if line[:1] in (b" ", b"\t") and name:
            value.append(line)
            continue
        if name:
            yield name, b"".join(value).decode("utf-8", "replace").strip()
        head, _, rest = line.partition(b":")
        name, value = head.strip().decode("ascii", "replace").lower(), [rest]
    if name:
        yield name, b"".join(value).decode("utf-8", "replace").strip()
