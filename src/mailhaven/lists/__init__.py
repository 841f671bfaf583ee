"""Mailing lists: Mailgun's Lists API, its members sealed per subject, and their fan-out."""
