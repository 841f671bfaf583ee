"""SMTP submission: the port-587/465 front door into `sending` (AUTH, TLS, X-Mailgun-* headers)."""
