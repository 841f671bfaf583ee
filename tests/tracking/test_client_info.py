"""Mailgun's `client-info` from the User-Agent of an open or a click."""

from __future__ import annotations

import pytest

from mailhaven.feedback.engagement import client_info


@pytest.mark.parametrize(("user_agent", "client_type", "device_type", "client_os"), [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0 Safari/537.36", "browser", "desktop", "Windows"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0 Mobile Safari/537.36", "mobile browser", "mobile", "Android"),
    ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Mobile/15E148", "mobile browser", "tablet", "iOS"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Microsoft Outlook 16.0.17328; Pro", "email client", "desktop", "Windows"),
    ("", "unknown", "unknown", "unknown"),
])
def test_client_info(user_agent: str, client_type: str, device_type: str,
                     client_os: str) -> None:
    info = client_info(user_agent)
    assert (info["client-type"], info["device-type"], info["client-os"]) == (
        client_type, device_type, client_os)
    assert info["user-agent"] == user_agent
