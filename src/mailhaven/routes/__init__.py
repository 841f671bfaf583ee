"""Mailgun's Routes: an account's rules for the mail it receives, and their evaluation."""
