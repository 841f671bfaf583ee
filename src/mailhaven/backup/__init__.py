"""Backups (SPEC N9): a portable archive, and restores that keep erased subjects erased."""
