"""Mailgun's v1 analytics: `POST /v1/analytics/logs` (the sealed events, opened through the
vault) and `POST /v1/analytics/metrics` (the hourly counters, which hold nothing personal)."""
