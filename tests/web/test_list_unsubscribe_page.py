"""A mailing list member's unsubscribe link, followed in a real browser: the page asks
first (link scanners only GET), the button unsubscribes them from that list, and the page
makes no request beyond our own server."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlsplit

from tests.support import Sink, deliver_due

LIST = "news@mg.acme.test"


def test_a_member_unsubscribes_with_the_pages_button(api, live, services, domain,
                                                     page) -> None:
    assert api.post("/v3/lists", data={"address": LIST, "name": "News"}).status_code == 200
    assert api.post(f"/v3/lists/{quote(LIST)}/members.json", data={"members": json.dumps([
        "ann@example.org", "bob@example.org"])}).status_code == 200
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": LIST, "subject": "Hello",
        "text": "Leave: %mailing_list_unsubscribe_url%"}).status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    [ann] = [r.message for r in sink.received if r.rcpt_tos == ["ann@example.org"]]
    found = re.search(r"Leave: (\S+)", ann.get_body(preferencelist=("plain",)).get_content())
    assert found is not None
    url = live.base_url + urlsplit(found.group(1)).path

    page.goto(url)
    assert "Unsubscribe from this mailing list?" in page.content()
    member = f"/v3/lists/{quote(LIST)}/members/ann%40example.org"
    assert api.get(member).json()["member"]["subscribed"] is True  # the visit alone: nothing
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state()
    assert "You have been unsubscribed from this mailing list." in page.content()
    assert api.get(member).json()["member"]["subscribed"] is False
    assert api.get(f"/v3/lists/{quote(LIST)}/members/bob%40example.org").json()[
        "member"]["subscribed"] is True
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested
