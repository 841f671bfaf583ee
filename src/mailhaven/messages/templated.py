"""A message sent with a stored template, made into one recipient's message: the template
rendered with the send's variables (`v:` fields, overridden by `t:variables`, and in a batch
the recipient's own under `recipient`), its text part made from the HTML when `t:text=yes`,
and the version's stored headers wherever the message sets none of its own.

For a `.mime` send the template supplies the body: the message's own header fields are
kept (but its Content-* and MIME-Version, which the new body brings), its body is replaced,
and the attachments of a multipart/mixed message are kept after the new body."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from email import message_from_bytes
from email import policy as policies
from email.message import EmailMessage
from email.policy import Policy
from typing import Any

from mailhaven.forms import json_value
from mailhaven.messages import handlebars
from mailhaven.messages.document import Document, StoredTemplate
from mailhaven.messages.html_text import html_to_text
from mailhaven.messages.mime import mime_fields, mime_head

_BODY_FIELDS = ("content-", "mime-version")  # the new body brings its own


def variables(doc: Document, template: StoredTemplate, recipient: dict[str, Any] | None,
              sub: Callable[[str], str]) -> dict[str, Any]:
    """What the template is rendered with: the `v:` variables (a batch's `%recipient.x%`
    in them filled in; a value that is JSON as its object or list), overridden by
    `t:variables`; in a batch, the recipient's variables as `recipient`."""
    found: dict[str, Any] = {name: _json_or_text(sub(value))
                             for name, value in doc.variables.items()}
    found.update(template.variables)
    if recipient is not None:
        found.setdefault("recipient", recipient)
    return found


def _json_or_text(value: str) -> Any:
    if value[:1] not in ("{", "["):
        return value
    parsed = json_value(value)
    return value if parsed is None else parsed


def applied(doc: Document, recipient: dict[str, Any] | None, sub: Callable[[str], str],
            policy: Policy) -> Document:
    """`doc` with its template rendered in: a document without one, rendered as any other
    (`recipient`: the copy's batch variables; `policy`: the copy's MIME policy). A template
    that fails to render raises TemplateError."""
    template = doc.template
    assert template is not None
    html = handlebars.render(template.source, variables(doc, template, recipient, sub))
    text = html_to_text(html) if template.text else doc.text or None
    own = {name.lower() for name, _ in doc.headers}
    if doc.mime is not None:
        mime, present = _with_body(doc.mime_bytes, html, text, policy)
        # Added as h: fields are, where the message has none of its own.
        stored = [(name, value) for name, value in template.headers.items()
                  if name.lower() not in present | own]
        return replace(doc, template=None, mime=base64.b64encode(mime).decode(),
                       headers=[*doc.headers, *stored])
    stored = [(name, value) for name, value in template.headers.items()
              if name.lower() == "reply-to" and "reply-to" not in own]
    return replace(doc, template=None, html=html, text=text,
                   subject=doc.subject or template.headers.get("Subject", ""),
                   headers=[*doc.headers, *stored])


def _with_body(raw: bytes, html: str, text: str | None,
               policy: Policy) -> tuple[bytes, set[str]]:
    """The message with the rendered body in place of its own, and the names of the
    header fields it has."""
    fields: list[list[bytes]] = []
    for line in mime_head(raw):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    names = [field[0].partition(b":")[0].strip().decode("ascii", "replace").lower()
             for field in fields]
    kept = [b"\r\n".join(field) for field, name in zip(fields, names, strict=True)
            if not name.startswith(_BODY_FIELDS)]
    body = EmailMessage(policy=policy)
    if text is not None:
        body.set_content(text)
        body.add_alternative(html, subtype="html")
    else:
        body.set_content(html, subtype="html")
    content_type = dict(mime_fields(mime_head(raw))).get("content-type", "")
    if content_type.lower().startswith("multipart/mixed"):
        attachments = list(message_from_bytes(raw, policy=policies.default).iter_attachments())
        if attachments:
            body.make_mixed()
            for part in attachments:
                body.attach(part)
    return b"\r\n".join(kept) + b"\r\n" + body.as_bytes(policy=policy), set(names)
