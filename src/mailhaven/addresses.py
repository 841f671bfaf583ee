"""Addresses as every front door reads them: parsing `Name <addr>` lists, the well-formed
mailbox, header-safe text. (The one normalisation blind indexes are computed under is the
vault's: `vault.service.normalize_address`.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.utils import formataddr

from mailhaven.errors import BadRequest

MAX_RECIPIENTS = 1000
# 1000 recipients of at most 320 characters each (RFC 5321's 64 + 1 + 255) fit with room
# for display names; past this, a request can only be refused.
MAX_ADDRESS_CHARS = 512 * 1024
MAX_DISPLAY_NAME_CHARS = 256
TOO_MANY_RECIPIENTS = f"Too many recipients, max is {MAX_RECIPIENTS}"
NOT_AN_ADDRESS = "{} parameter is not a valid address. please check documentation"
NAME_TOO_LONG = ("{} parameter has a display name longer than "
                 f"{MAX_DISPLAY_NAME_CHARS} characters")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = r"(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
# U+0085, U+2028 and U+2029 end a line as CR and LF do (str.splitlines, the email package)
_LINE_BREAKS = re.compile(r"\s*[\r\n\x85\u2028\u2029]+\s*")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def header_text(value: str) -> str:
    """A value that stays one header: line breaks fold to a space, control characters go
    (a CRLF in a subject or `h:` value must not start a header of its own)."""
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", value))


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    def formatted(self) -> str:
        if not self.name:
            return self.email
        if self.email.isascii():
            return formataddr((self.name, self.email))
        # formataddr refuses a UTF-8 mailbox; its message goes out in UTF-8 (RFC 6532) anyway
        local, _, domain = self.email.rpartition("@")
        return str(HeaderAddress(self.name, local, domain))


def _is_valid(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and len(local) <= 64 and len(domain) <= 253
                and _LOCAL_PART.fullmatch(local) and _DOMAIN.fullmatch(domain))


def _split_list(value: str) -> Iterator[str]:
    """The items of an address list, split on the commas outside quotes and angle brackets;
    lazily, so a caller that has seen enough stops the character loop."""
    current: list[str] = []
    quoted = angle = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<>":
            angle = char == "<"
        elif char == "," and not quoted and not angle:
            if item := "".join(current).strip():
                yield item
            current = []
            continue
        current.append(char)
    if item := "".join(current).strip():
        yield item


def _parse_one(text: str) -> tuple[str, str]:
    """`Name <addr>`, `"Last, First" <addr>`, `<addr>` or a bare `addr`."""
    if not text.endswith(">") or "<" not in text:
        return "", text
    name, _, email = text[:-1].rpartition("<")
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return header_text(name).strip(), email.strip()


def mailboxes(values: list[str]) -> Iterator[tuple[Address, bool]]:
    """Each address named in `values`, and whether it is well formed."""
    for value in values:
        for item in _split_list(value):
            name, email = _parse_one(item)
            yield Address(name, email), _is_valid(email)


def mailbox_pairs(value: str) -> list[tuple[str, str]] | None:
    """The (display name, address) pairs of a header value, or None unless each is a
    well-formed mailbox (an `h:Reply-To` may hold anything)."""
    pairs = []
    for address, valid in mailboxes([value]):
        if not valid:
            return None
        pairs.append((address.name, address.email))
    return pairs or None


def without_comments(value: str) -> str | None:
    """A header value without its RFC 5322 comments (`(Hans)`, nested ones too) outside
    quoted strings, in one pass; None when a parenthesis or quote is left open."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
            continue
        elif char == '"':
            quoted = not quoted
        elif char == "(" and not quoted:
            depth = 1
            continue
        if not depth:
            out.append(char)
    return None if depth or quoted else "".join(out)


def mailbox_parts(text: str) -> tuple[str, str]:
    """The display name and address of one mailbox as `Address.formatted` wrote it."""
    return _parse_one(text)


def check_list_size(values: list[str]) -> None:
    """Refuse address lists longer than any 1000 recipients can be, before reading them:
    the parse loop is Python, one character at a time."""
    if sum(len(v) for v in values) > MAX_ADDRESS_CHARS:
        raise BadRequest(TOO_MANY_RECIPIENTS)


def parse_addresses(values: list[str], field_name: str,
                    limit: int = MAX_RECIPIENTS) -> list[Address]:
    """The addresses of one field; a malformed one is a 400, and so is more than `limit`
    (found without reading past the first one too many)."""
    check_list_size(values)
    parsed: list[Address] = []
    for address, valid in mailboxes(values):
        if not valid:
            raise BadRequest(NOT_AN_ADDRESS.format(field_name))
        if len(address.name) > MAX_DISPLAY_NAME_CHARS:
            raise BadRequest(NAME_TOO_LONG.format(field_name))
        if len(parsed) >= limit:
            raise BadRequest(TOO_MANY_RECIPIENTS)
        parsed.append(address)
    return parsed


def _within_size(values: list[str]) -> Iterator[str]:
    """The values while their total stays within what `parse_addresses` would read."""
    total = 0
    for value in values:
        total += len(value)
        if total > MAX_ADDRESS_CHARS:
            return
        yield value


def valid_addresses(values: list[str]) -> list[Address]:
    """The well-formed addresses among `values`, skipping the rest (for reporting a
    refused request, where the addresses it did name are still worth a record); no more
    than a request may have, read from no more text than a request may send."""
    found = []
    for address, valid in mailboxes(list(_within_size(values))):
        if valid:
            found.append(address)
            if len(found) == MAX_RECIPIENTS:
                break
    return found
