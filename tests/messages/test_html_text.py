"""The plain-text version of an HTML body: a link's address is added unless its text is
the address already, nested links included, in one pass however deep they nest."""

from __future__ import annotations

import pytest

from mailhaven.messages.html_text import html_to_text


@pytest.mark.parametrize(("html", "text"), [
    ('<a href="https://x.test">Docs</a>', "Docs (https://x.test)\n"),
    ('<a href="https://x.test"> https://x.test </a>', "https://x.test\n"),
    ('<pre><a href="x">\n  x  \n</a></pre>', "x\n"),
    ('<a href="x"><br><b>x</b><br></a>', "x\n"),
    ('<a href="x y">x<br>y</a>', "x\ny (x y)\n"),
    ('<a href="a b"><span>a</span> <span>b</span></a>', "a b\n"),
    ('<a href="h">x<a href="x">x</a></a>', "xx (h)\n"),
    ('<a href="h"><a href="in">in</a></a>', "in (h)\n"),
    ('<a href="h"> </a>', "(h)\n"),
    ('<a href="h"><img alt="h"></a>', "h\n"),
])
def test_a_links_address_follows_its_text_unless_it_is_the_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_deeply_nested_links_are_read_in_one_pass() -> None:
    """Before, each </a> joined all the text since its <a>: 200,000 nested links took hours."""
    n = 200_000
    text = html_to_text('<a href="h">x' * n + "</a>" * n)
    assert text.count("(h)") == n and text.count("x") == n
