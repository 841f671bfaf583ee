"""Header fields written in linear time: RFC 5322 folding and RFC 2047 encoded words."""

# The email package's header registry parses every value and refolds it, in time that grows
# ~4x per doubling of the value (1 MB of Subject took 24 s per copy; a 1000-name To, 1 s),
# and it writes encoded words as long as a line. Here each value is read once: words go as
# they are while they fit, and what can't go literally (non-ASCII in a 7-bit message, text
# that would read as an encoded word, a word longer than a line) becomes encoded words of at
# most 75 characters on lines of at most 76 (RFC 2047 section 2). No line passes 998 octets.

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mailhaven.addresses import header_text

MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF
EW_LINE = 76  # RFC 2047 2: a line that holds an encoded word
MAX_EW = 75  # RFC 2047 2: one encoded word
MAX_WORD = 900  # a longer literal word is encoded, so that it can be split
MAX_GAP = 8  # a longer run of blanks goes inside an encoded word, which can be split
_EW_HEAD, _EW_TAIL = "=?utf-8?", "?="
_EW_OVERHEAD = len(_EW_HEAD) + len("q?") + len(_EW_TAIL)
_MIN_EW = _EW_OVERHEAD + 12  # room for one character of any width, in either encoding

_ENCODED_WORD = re.compile(r"=\?([^?*\s]+)(?:\*[^?\s]*)?\?([qQbB])\?([^?\s]*)\?=")
_WORDS = re.compile(r"([ \t]*)([^ \t]+)")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_BYTE = [chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)]
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+")
# Fields whose value is a list of mailboxes.
ADDRESS_FIELDS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender",
    "resent-to", "resent-cc", "resent-bcc"})
# Structured fields (RFC 5322 3.6, RFC 2045, RFC 2369, RFC 8058, RFC 6376, RFC 8601): their
# words are ids, URLs, dates and parameters, which RFC 2047 may not encode (section 5), so
# they go as written, folded in the blanks between them. Every other field (Subject,
# Comments, Keywords, a client's X- field) is unstructured text.
STRUCTURED_FIELDS = frozenset({
    "date", "message-id", "in-reply-to", "references", "resent-date", "resent-message-id",
    "received", "return-path", "mime-version", "authentication-results"})
STRUCTURED_PREFIXES = ("list-", "content-", "dkim-", "arc-")






@dataclass
class _Token:
    gap: str  # the blanks before it: folding happens there
    text: str
    encode: bool


def decode_words(value: str) -> str:
    """`value` with its RFC 2047 encoded words decoded (the blanks between two of them go);
    one that can't be decoded stays as written. For values a client may have encoded."""
    if "=?" not in value:
        return value
    out: list[str] = []
    after_word = False
    for gap, word in _WORDS.findall(value):
        decoded = _decode_word(word)
        out += [decoded] if decoded is not None and after_word else [gap, decoded or word]
        after_word = decoded is not None
    return "".join(out) + value[len(value.rstrip(" \t")):]


def _decode_word(word: str) -> str | None:
    match = _ENCODED_WORD.fullmatch(word)
    if match is None:
        return None
    charset, kind, payload = match.groups()
    try:
        # Python's codec names include bytes-to-bytes and text-to-text transforms (rot13,
        # base64, zlib...) that are no charset, and codecs (idna, undefined) that refuse
        # "replace": a word in one of them stays as written.
        codec = codecs.lookup(charset)
        if not getattr(codec, "_is_text_encoding", True):
            return None
        if kind in "bB":
            data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
        else:
            data = binascii.a2b_qp(payload.replace("_", " "))
        return data.decode(codec.name, "replace")
    except (LookupError, UnicodeError, binascii.Error, ValueError):
        return None


def is_structured(name: str) -> bool:
    """Whether a field (not one of mailboxes) is structured: written as it is, never encoded."""
    name = name.lower()
    return name in STRUCTURED_FIELDS or name.startswith(STRUCTURED_PREFIXES)


def text_field(name: str, value: str, *, utf8: bool = False) -> bytes:
    """An unstructured field (Subject, X-...), as readers will unfold and decode it back."""
    return _fold(name, _text_tokens(header_text(decode_words(value)), utf8), utf8)


def structured_field(name: str, value: str, *, utf8: bool = False) -> bytes:
    """A structured field (List-Unsubscribe, References...) as written, folded in its blanks.
    A word goes encoded only where it can't go at all: not ASCII in a 7-bit message, or
    longer than a line (intake refuses that; a message stored before may have one)."""
    value = header_text(value)
    room = MAX_LINE - len(name) - 2
    tokens = [_Token(gap, word, not (word.isprintable() and (utf8 or word.isascii()))
                     or len((gap + word).encode()) > room)
              for gap, word in _WORDS.findall(value)]
    return _fold(name, tokens, utf8)


def unfoldable(name: str, value: str) -> bool:
    """Whether an ASCII structured field holds a word (with the blanks before it) that no
    line of 998 octets can hold: written as it is, it couldn't be sent."""
    room = MAX_LINE - len(name) - 2
    return value.isascii() and any(len(gap) + len(word) > room
                                   for gap, word in _WORDS.findall(value))


def mailbox_field(name: str, mailboxes: Iterable[tuple[str, str]], *,
                  utf8: bool = False) -> bytes:
    """A field of (display name, address) pairs; an address that isn't one (a group such as
    `undisclosed-recipients:;`) goes as it is."""
    tokens: list[_Token] = []
    for display, address in mailboxes:
        if tokens:
            tokens[-1].text += ","
        own = _name_tokens(header_text(decode_words(display)).strip(" \t"), utf8)
        own.append(_Token(" ", f"<{address}>" if own else address, False))
        tokens += own
    return _fold(name, tokens, utf8)


def _literal(word: str, utf8: bool) -> bool:
    """Whether a word of text may go as it is: printable (and ASCII, in a 7-bit message),
    short enough for a line, and not to be read as an encoded word (readers decode one
    within a word too: `x=?utf-8?q?a?=` reads `xa`)."""
    if (len(word.encode()) > MAX_WORD or not word.isprintable()
            or ("=?" in word and _ENCODED_WORD.search(word))):
        return False
    return utf8 or word.isascii()


def _text_tokens(value: str, utf8: bool) -> list[_Token]:
    tokens = []
    for gap, word in _WORDS.findall(value):
        if len(gap) > MAX_GAP:  # folded there, a line could be blanks alone (RFC 5322 3.2.2)
            tokens.append(_Token(" ", gap[1:] + word, True))
        else:
            tokens.append(_Token(gap, word, not _literal(word, utf8)))
    trailing = value[len(value.rstrip(" \t")):]
    if trailing and tokens:
        tokens[-1].text += trailing
        tokens[-1].encode |= len(trailing) > MAX_GAP
    elif trailing:  # blanks alone
        tokens.append(_Token("", trailing, len(trailing) > MAX_GAP))
    return tokens


def _name_tokens(name: str, utf8: bool) -> list[_Token]:
    """A display name: a phrase of atoms as it is, else a quoted string, else (non-ASCII in
    a 7-bit message, or too long for a line) encoded words."""
    if not name:
        return []
    words = name.split(" ")
    if all(_ATOM.fullmatch(w) and _literal(w, utf8) for w in words):
        return [_Token(" ", w, False) for w in words]
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if _literal(quoted.replace("\t", " "), utf8):
        return [_Token(" ", quoted, False)]
    # One encoded word where a line holds it, past RFC 2047's 75 characters as the email
    # package writes it: readers differ on the blank between two words in a name (Python's
    # keeps it, RFC 2047 6.2 drops it), and only one word reads back the same in both.
    whole = _Encoder(name)
    word = whole.take(MAX_WORD)
    if whole.done:
        return [_Token(" ", word, False)]
    return [_Token(" ", name, True)]


def _fold(name: str, tokens: list[_Token], utf8: bool) -> bytes:
    """`Name: value` on lines of at most 998 octets, 76 where they hold encoded words,
    broken only in the blanks between words and never before the first word. Adjacent
    tokens to encode become one run of encoded words with their blanks inside it (readers
    drop blanks between two encoded words)."""
    lines: list[str] = []
    line = f"{name}:"
    width = len(line)  # octets
    has_ew = False
    first = True
    for gap, text, encode in _runs(tokens):
        gap = gap or (" " if first else "")
        if not encode:
            size = len((gap + text).encode()) if utf8 else len(gap) + len(text)
            if first or width + size <= (EW_LINE if has_ew else MAX_LINE):
                line, width = line + gap + text, width + size
            else:
                lines.append(line)
                line, width, has_ew = gap + text, size, False
            first = False
            continue
        words = _Encoder(text)
        while not words.done:
            room = min(EW_LINE - width - len(gap), MAX_EW)
            if room >= _MIN_EW or first:
                word = words.take(max(room, _MIN_EW))
                line, width = line + gap + word, width + len(gap) + len(word)
            else:
                lines.append(line)
                word = words.take(min(EW_LINE - len(gap), MAX_EW))
                line, width = gap + word, len(gap) + len(word)
            has_ew, first, gap = True, False, " "
    lines.append(line)
    return "\r\n".join(lines).encode()


def _runs(tokens: list[_Token]) -> Iterator[tuple[str, str, bool]]:
    """The tokens, each run of adjacent ones to encode joined into one text."""
    gap = ""
    run: list[str] = []
    for token in tokens:
        if token.encode:
            if run:
                run += [token.gap, token.text]
            else:
                gap, run = token.gap, [token.text]
            continue
        if run:
            yield gap, "".join(run), True
            run = []
        yield token.gap, token.text, False
    if run:
        yield gap, "".join(run), True


class _Encoder:
    """A text handed out as UTF-8 encoded words of a given length, never splitting a
    character; Q unless B is much shorter for the whole text (as the email package chooses)."""

    def __init__(self, text: str) -> None:
        self.chars = [c.encode("utf-8", "surrogateescape") for c in text]
        data = b"".join(self.chars)
        self.q = sum(len(_Q_BYTE[b]) for b in data) - len(base64.b64encode(data)) < 5
        self.at = 0

    @property
    def done(self) -> bool:
        return self.at >= len(self.chars)

    def take(self, length: int) -> str:
        """The next encoded word, at most `length` characters (one character at least)."""
        room = length - _EW_OVERHEAD
        start, size = self.at, 0
        while self.at < len(self.chars):
            char = self.chars[self.at]
            grown = (size + sum(len(_Q_BYTE[b]) for b in char) if self.q
                     else size + len(char))
            if self.at > start and (grown if self.q else -(-grown // 3) * 4) > room:
                break
            size = grown
            self.at += 1
        data = b"".join(self.chars[start:self.at])
        if self.q:
            return f"{_EW_HEAD}q?{''.join(_Q_BYTE[b] for b in data)}{_EW_TAIL}"
        return f"{_EW_HEAD}b?{base64.b64encode(data).decode()}{_EW_TAIL}"
