"""Delivery over SMTP: the queue, MX routing, DKIM, retries (SPEC P4, P5)."""
