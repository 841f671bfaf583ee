"""Accepting mail through Mailgun's send API (SPEC P3)."""
