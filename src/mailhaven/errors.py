"""Domain errors that the HTTP layer turns into Mailgun's status codes and bodies, in one place."""

from __future__ import annotations


class MailhavenError(Exception):
    status = 400

    def __init__(self, message: str, *, key: str = "message") -> None:
        super().__init__(message)
        self.message = message
        self.key = key  # Mailgun's webhook errors say {"Reason": …} or {"Description": …}


class BadRequest(MailhavenError):
    status = 400


class Unauthorized(MailhavenError):
    status = 401


class Forbidden(MailhavenError):
    status = 403


class NotFound(MailhavenError):
    status = 404


class Gone(MailhavenError):
    status = 410


class TooLarge(MailhavenError):
    status = 413


class TooManyRequests(MailhavenError):
    status = 429


class Unavailable(MailhavenError):
    status = 503
