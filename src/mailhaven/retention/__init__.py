"""Retention (SPEC N7): per-category periods, per-account overrides, and their purge."""
