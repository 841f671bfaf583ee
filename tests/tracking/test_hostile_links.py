"""Tracking URLs under attack: malformed tokens get a forged token's answer, never a 500."""

from __future__ import annotations

import pytest

from mailhaven.tracking import links
from mailhaven.tracking.links import Link

# What the probe sent, and its neighbours: a MAC that is not ASCII, not hex, too long or
# too short, and a body that is not ASCII either.
MACS = ["%C3%A9", "%C3%A9" * 32, "%E2%80%A8" * 11, "g" * 32, "0" * 33, "A" * 32, "",
        "%ED%A0%80", "%FF" * 32]


def _body(services, kind: str, data: str) -> str:  # type: ignore[no-untyped-def]
    return links.make(services.vault, Link(kind, 1, data)).partition(".")[0]


@pytest.mark.parametrize("mac", MACS)
def test_a_malformed_mac_is_refused_like_a_forged_one(api, services, mac: str) -> None:
    click = _body(services, "c", "https://shop.example/")
    opened = api.get(f"/o/{_body(services, 'o', '')}.{mac}")
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    clicked = api.get(f"/c/{click}.{mac}", follow_redirects=False)
    assert clicked.status_code == 404 and "location" not in clicked.headers
    unsubscribe = f"/u/{_body(services, 'u', '*')}.{mac}"
    assert api.get(unsubscribe).status_code == 404
    one_click = api.post(unsubscribe, content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 404


@pytest.mark.parametrize("path", ["/c/%C3%A9.%C3%A9", "/o/%C3%A9%C3%A9", "/u/%F0%9F%92%A9.",
                                  "/c/.", "/u/..", "/o/%C3%A9.0123456789abcdef0123456789abcdef"])
def test_a_malformed_body_is_refused_like_a_forged_one(api, path: str) -> None:
    answer = api.get(path, follow_redirects=False)
    assert answer.status_code == (200 if path.startswith("/o/") else 404)
    assert "location" not in answer.headers
    if path.startswith("/u/"):
        assert api.post(path).status_code == 404
