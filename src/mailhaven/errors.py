"""Domain errors that the HTTP layer turns into Mailgun's status codes and bodies, in one place."""

from __future__ import annotations

import math
import traceback


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


class Conflict(MailhavenError):
    status = 409


class Gone(MailhavenError):
    status = 410


class TooLarge(MailhavenError):
    status = 413


class TooManyRequests(MailhavenError):
    """429, with how many seconds to wait (Retry-After, whole seconds, at least one)."""

    status = 429

    def __init__(self, message: str, *, key: str = "message", retry_after: float = 60) -> None:
        super().__init__(message, key=key)
        self.retry_after = max(1, math.ceil(retry_after))


class Unavailable(MailhavenError):
    status = 503


def frames(exc: BaseException) -> str:
    """Where `exc` was raised, for a log line, without its message: messages built from
    input (a header, a report, a form) can hold addresses."""
    return f"{type(exc).__name__} at\n" + "".join(traceback.format_tb(exc.__traceback__)).rstrip()
