"""The audit log (SPEC N14): every privacy step, append-only and hash-chained."""

from mailhaven.audit.anchor import HEAD_FILE, Head, HeadAnchor, keep_anchor
from mailhaven.audit.models import AuditEntry
from mailhaven.audit.service import Problem, append, current_head, open_sealed, recent, verify

__all__ = ["HEAD_FILE", "AuditEntry", "Head", "HeadAnchor", "Problem", "append",
           "current_head", "keep_anchor", "open_sealed", "recent", "verify"]
