"""Inbound mail: what arrives at the MX for customers' domains, and what routes do with it."""
