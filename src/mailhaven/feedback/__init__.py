"""Feedback on delivered copies: asynchronous bounces (RFC 3464 DSNs), complaints (RFC 5965
ARF) (SPEC P8), and what recipients did with them: opens, clicks, unsubscribes."""
