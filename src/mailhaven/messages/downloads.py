"""Attachments handed to a browser from our own origin: the content types we let it see as
they are, and the headers that keep whatever it is from running as our pages."""

from __future__ import annotations

import re

# A well-formed type/subtype (RFC 2045 tokens, lower-cased by the email package).
SAFE_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
# Types a browser shows inertly (or only saves): anything else, HTML, SVG, XML and script
# first among them, is sent as application/octet-stream.
DOWNLOAD_TYPES = frozenset({
    "text/plain", "text/csv", "text/calendar",
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
    "audio/mpeg", "audio/ogg", "audio/wav", "video/mp4", "video/webm",
    "application/pdf", "application/zip", "application/gzip", "application/json",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
})
OPAQUE = "application/octet-stream"
# Even a type on the list, or one the browser sniffs, runs nothing and fetches nothing.
DOWNLOAD_HEADERS = {"Content-Security-Policy": "default-src 'none'; sandbox",
                    "X-Content-Type-Options": "nosniff"}


def download_type(content_type: str) -> str:
    """The type to send an attachment as: its own when DOWNLOAD_TYPES has it, else opaque
    bytes."""
    given = content_type.split(";", 1)[0].strip().lower()
    return given if given in DOWNLOAD_TYPES else OPAQUE
