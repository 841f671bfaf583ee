"""Suppressions: bounces, unsubscribes, complaints and the allowlist (SPEC P7)."""
