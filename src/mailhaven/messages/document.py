"""The stored message document: what a send said, sealed once per message and rendered for
each recipient at delivery. Its JSON keys are the stored format (no migration re-seals the
documents already stored), so fields added later have defaults when read."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StoredAttachment:
    filename: str
    content_type: str
    inline: bool
    data: str  # base64: decoded when rendered, so a document's load stays cheap

    @property
    def content(self) -> bytes:
        return base64.b64decode(self.data)


@dataclass(frozen=True)
class StoredTemplate:
    """A send's template (`template`, `t:version`, `t:text`, `t:variables`): the version's
    content as it was when the message was accepted, rendered for each recipient."""

    name: str
    version: str  # the version's tag
    source: str  # the Handlebars source
    headers: dict[str, str]  # the version's From, Subject, Reply-To: the message's win
    text: bool = False  # t:text=yes: a text part made from the rendered HTML
    variables: dict[str, Any] = field(default_factory=dict)  # t:variables


@dataclass(frozen=True)
class Document:
    message_id: str  # without <>
    created_at: float
    sender: str  # the From, as `Address.formatted` wrote it
    to: list[str]
    cc: list[str]
    subject: str
    text: str | None
    html: str | None
    amp_html: str | None
    headers: list[tuple[str, str]]  # the client's h: fields
    variables: dict[str, str]  # v: variables
    batch: bool  # sent with recipient-variables: rendered per recipient
    attachments: list[StoredAttachment] = field(default_factory=list)
    mime: str | None = None  # a `.mime` send's message, base64
    deliverytime: float | None = None  # None unless scheduled
    tracking: dict[str, str] = field(default_factory=dict)  # o:tracking*, as asked (policy decides)
    marketing: bool = True  # o:category=transactional: a service message
    method: str = "http"  # the door it came in by, as events say: "http" or "smtp"
    template: StoredTemplate | None = None  # its body, rendered per recipient
    # The envelope sender (MAIL FROM) of every copy, when not the VERP return path: a
    # route's forward("addr@…") sends with an SRS address ("" for a forwarded bounce).
    envelope_sender: str | None = None

    @property
    def mime_bytes(self) -> bytes:
        """A `.mime` send's message (empty for a form send)."""
        return base64.b64decode(self.mime or "")

    def dump(self) -> bytes:
        doc = asdict(self)
        doc["from"] = doc.pop("sender")
        return json.dumps({"v": 1, **doc}, separators=(",", ":")).encode()

    @classmethod
    def load(cls, blob: bytes) -> Document:
        doc = json.loads(blob)
        return cls(
            message_id=doc["message_id"], created_at=doc["created_at"], sender=doc["from"],
            to=doc["to"], cc=doc["cc"], subject=doc["subject"], text=doc["text"],
            html=doc["html"], amp_html=doc["amp_html"],
            headers=[(name, value) for name, value in doc["headers"]],
            variables=doc["variables"], batch=doc["batch"],
            attachments=[StoredAttachment(**a) for a in doc["attachments"]],
            mime=doc["mime"], deliverytime=doc.get("deliverytime"),
            tracking=doc.get("tracking") or {}, marketing=doc.get("marketing", True),
            method=doc.get("method", "http"),
            template=StoredTemplate(**doc["template"]) if doc.get("template") else None,
            envelope_sender=doc.get("envelope_sender"))
