"""Stored templates (Mailgun's Templates API): kept sealed, rendered per recipient."""
