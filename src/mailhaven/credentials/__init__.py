"""SMTP credentials: the logins SMTP submission authenticates (SPEC P12)."""
