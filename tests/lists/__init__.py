"""Mailing lists: the Lists API, sends to lists, inbound distribution, privacy."""
