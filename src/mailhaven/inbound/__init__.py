"""Inbound mail: what arrives at the MX for a customer's domains, and what is done with it."""
