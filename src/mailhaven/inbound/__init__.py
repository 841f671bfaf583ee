"""Receiving mail: the MX, authentication at intake, the sealed inbound queue and its
processor (lists, routes and their actions run from it)."""
