"""Hostile bodies are read in one pass: runs of unclosed tags and long lines that took the
regular expressions and parsers minutes (27 s, 8.6 s, 170 s as measured) give the same
fields as a mail client's reply would."""

from __future__ import annotations

from email.message import EmailMessage

from mailhaven.inbound import payload

QUOTE = ('<div class="gmail_quote">On Sat, Ann wrote:<blockquote>Where is it?</blockquote>'
         '</div></body></html>')


def test_a_run_of_unclosed_divs_before_the_quote_is_kept_and_the_quote_cut() -> None:
    html = "<html><body><p>Shipped today.</p>" + "<div " * 16000 + ">" + QUOTE
    assert payload.stripped_html(html) == html[:html.index('<div class="gmail_quote">')] + (
        "</body></html>")


def test_a_blockquote_inside_a_quote_divs_tag_starts_at_the_div() -> None:
    html = '<p>Yes.</p><div x <blockquote class="gmail_quote">old</blockquote>'
    assert payload.stripped_html(html) == "<p>Yes.</p>"
    assert payload.stripped_html("<p>a</p><div><blockquote>b") == "<p>a</p><div>"
    assert payload.stripped_html("<p>nothing quoted</p>") == "<p>nothing quoted</p>"


def test_an_html_only_message_ending_in_unclosed_tags_still_gets_its_text() -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "ann@shop.example.org", "Tags"
    msg.set_content("<p>Shipped today.</p>" + "<div " * 40000, subtype="html")
    parsed = payload.parse(msg.as_bytes())
    assert parsed.plain.startswith("Shipped today.\n")
    assert "<div" in parsed.plain  # the unclosed tags shown as the text they are


def test_a_reply_on_one_very_long_line_is_cut_at_its_quote() -> None:
    reply = "On " * 4000
    text, signature = payload.stripped(reply + "\n\nOn Sat, 5 Dec 2026, Ann wrote:\n> Where?\n")
    assert (text, signature) == (reply.rstrip(), "")


def test_a_long_reply_is_cut_at_its_first_quoted_line() -> None:
    reply = "Thanks, it shipped today.\n" * 2000  # 52 KB: past the reply parser's limit
    quoted = "On Sat, 5 Dec 2026 at 10:00, Ann <ann@shop.example.org> wrote:\n\n> Where?\n"
    assert payload.stripped(reply + "\n" + quoted) == (reply.rstrip(), "")
    outlook = reply + "-----Original Message-----\nFrom: Ann\n"
    assert payload.stripped(outlook) == (reply.rstrip(), "")
    assert payload.stripped(reply) == (reply, "")  # nothing quoted: all of it
