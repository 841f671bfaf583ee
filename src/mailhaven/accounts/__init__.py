"""Accounts and API keys (SPEC P1)."""
