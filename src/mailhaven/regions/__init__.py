"""Regions (SPEC N11): the directory of which region holds an account, a domain, a key."""
