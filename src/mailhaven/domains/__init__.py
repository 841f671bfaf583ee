"""Sending domains, their DKIM keys and the DNS records to publish (SPEC P2)."""
