"""Why a message failed: the `reason` of a `failed` event (Mailgun's values, and ours for
the privacy controls), the one list every part that fails a message or counts it uses."""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    GENERIC = "generic"  # refused, nothing said about the mailbox; a full mailbox, a busy server
    BOUNCE = "bounce"  # the address was refused: it may be listed
    DELAYED_BOUNCE = "delayed-bounce"  # a bounce report after delivery (stats only)
    OLD = "old"  # retried until the message was too old
    GREYLISTED = "greylisted"
    ESPBLOCK = "espblock"  # the receiving server holds back the sender
    TLS = "tls"  # TLS was required and could not be had
    SUPPRESS_BOUNCE = "suppress-bounce"
    SUPPRESS_UNSUBSCRIBE = "suppress-unsubscribe"
    SUPPRESS_COMPLAINT = "suppress-complaint"
    SUPPRESS_RESTRICTION = "suppress-restriction"  # the recipient restricted processing
    SUPPRESS_OBJECTION = "suppress-objection"  # the recipient objected to marketing
