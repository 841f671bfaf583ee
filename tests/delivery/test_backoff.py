"""When to try again: the backoff schedule and what a server's reply asks for."""

from __future__ import annotations

import pytest

from mailhaven.delivery.backoff import FIRST_RETRY, MAX_HINT, MAX_RETRY, retry_delay
from mailhaven.delivery.replies import SmtpReply, failure_for, local_failure


def spread(attempts: int, hint: float | None = None) -> list[float]:
    return [retry_delay(attempts, hint) for _ in range(200)]


@pytest.mark.parametrize("attempts, base", [
    (0, FIRST_RETRY), (1, FIRST_RETRY), (2, 2 * FIRST_RETRY), (3, 4 * FIRST_RETRY),
    (4, 8 * FIRST_RETRY), (5, MAX_RETRY), (12, MAX_RETRY), (10_000, MAX_RETRY),
])
def test_the_delay_doubles_from_five_minutes_up_to_an_hour(attempts: int, base: int) -> None:
    delays = spread(attempts)
    assert all(base * 0.9 <= d <= base * 1.1 for d in delays)


def test_the_first_retry_comes_within_minutes() -> None:
    assert all(4 * 60 <= d <= 6 * 60 for d in spread(1))


def test_delays_are_jittered_so_retries_spread_out() -> None:
    assert len(set(spread(3))) > 100


def test_a_longer_wait_asked_for_by_the_server_is_honoured() -> None:
    assert set(spread(1, hint=20 * 60)) == {20 * 60}


def test_a_shorter_wait_asked_for_by_the_server_does_not_hurry_us() -> None:
    assert all(FIRST_RETRY * 0.9 <= d <= FIRST_RETRY * 1.1 for d in spread(1, hint=10))


def test_an_absurd_wait_is_capped() -> None:
    assert set(spread(1, hint=30 * 24 * 3600)) == {MAX_HINT}


@pytest.mark.parametrize("code, message, enhanced, text", [
    (450, "4.2.0 Mailbox busy", "4.2.0", "Mailbox busy"),
    (550, "5.1.1 No such user", "5.1.1", "No such user"),
    (554, "5.7.1   Message   rejected  ", "5.7.1", "Message rejected"),
    (550, "No such user", "", "No such user"),
    (250, "2.0.0 OK: queued as 4F2B1", "2.0.0", "OK: queued as 4F2B1"),
    (550, "5.1.10 Recipient address has null MX", "5.1.10", "Recipient address has null MX"),
    (451, "4.7.650 The mail server has been temporarily rate limited", "4.7.650",
     "The mail server has been temporarily rate limited"),
    (550, "5.1.1000 looks like a code but is not", "", "5.1.1000 looks like a code but is not"),
    (421, "", "", ""),
])
def test_replies_are_split_into_enhanced_code_and_text(
        code: int, message: str, enhanced: str, text: str) -> None:
    reply = SmtpReply.parse(code, message)
    assert (reply.code, reply.enhanced, reply.text) == (code, enhanced, text)


def test_a_multiline_reply_reads_as_one_sentence() -> None:
    # aiosmtplib hands over the lines of "550-5.1.1 …" continuations joined by newlines.
    reply = SmtpReply.parse(550, "5.1.1 The email account that you tried to reach does not "
                                 "exist. Please try\n5.1.1 double-checking the recipient's "
                                 "email address for typos or\n5.1.1 unnecessary spaces.")
    assert reply.enhanced == "5.1.1"
    assert reply.text == ("The email account that you tried to reach does not exist. Please "
                          "try double-checking the recipient's email address for typos or "
                          "unnecessary spaces.")


@pytest.mark.parametrize("text, seconds", [
    ("Greylisted, please try again in 20 minutes", 1200),
    ("Greylisted, try again in 300 seconds", 300),
    ("Try again after 45s", 45),
    ("Too many connections, retry in 2 hours", 7200),
    ("Rate limited. Retry after 1 hour", 3600),
    ("Please try again in 5 mins", 300),
    ("try again in 10min", 600),
    ("Try again later", None),
    ("Mailbox busy", None),
    ("Too many messages, try again in 3 messages", None),
])
def test_wait_hints_are_read_from_the_reply_text(text: str, seconds: float | None) -> None:
    assert SmtpReply.parse(451, f"4.7.1 {text}").wait_hint() == seconds


def test_5xx_is_permanent_and_everything_else_temporary() -> None:
    assert failure_for(SmtpReply.parse(550, "5.1.1 No such user"), "mx").permanent
    assert failure_for(SmtpReply.parse(550, "5.1.1 No such user"), "mx").reason == "bounce"
    assert not failure_for(SmtpReply.parse(450, "4.2.0 Mailbox busy"), "mx").permanent
    assert not failure_for(SmtpReply.parse(421, "4.4.2 Bye"), "mx").permanent
    local = local_failure(421, "4.4.1", "Could not connect", permanent=False, mx_host="mx")
    assert (local.permanent, local.mx_host, local.reply.code) == (False, "mx", 421)


def test_only_the_repeated_code_is_dropped_from_continuation_lines() -> None:
    reply = SmtpReply.parse(550, "5.1.1 Unknown user\n5.1.10 and no MX either")
    assert (reply.enhanced, reply.text) == ("5.1.1", "Unknown user 5.1.10 and no MX either")


@pytest.mark.parametrize("code, text, slows", [
    (421, "4.7.0 Too many connections from your IP", True),
    (421, "Service not available, closing transmission channel", True),
    (451, "4.7.500 Server busy. Please try again later", True),
    (450, "4.7.1 Rate limit exceeded for this sender", True),
    (452, "4.3.2 Too many concurrent SMTP connections", True),
    (451, "4.7.1 Throttling failure: daily message quota exceeded", True),
    (450, "4.2.0 Mailbox busy", False),
    (451, "4.7.1 Greylisted, please try again later", False),
    (452, "4.5.3 Too many recipients", False),
    (450, "4.2.1 The user is receiving mail at a rate that prevents additional messages",
     False),
    (550, "5.7.1 Rate limit exceeded", False),  # permanent: a bounce, not a deferral
])
def test_which_replies_ask_to_slow_down(code: int, text: str, slows: bool) -> None:
    assert failure_for(SmtpReply.parse(code, text), "mx").slow_down is slows


def test_a_421_of_our_own_making_does_not_ask_to_slow_down() -> None:
    assert not local_failure(421, "4.4.2", "Connection lost", permanent=False).slow_down
