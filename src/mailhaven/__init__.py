"""Mailhaven: self-hosted, Mailgun-compatible email delivery with an executable privacy notice."""

__version__ = "0.1.0"
