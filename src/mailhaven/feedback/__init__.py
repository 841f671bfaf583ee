"""Asynchronous bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) (SPEC P8)."""
