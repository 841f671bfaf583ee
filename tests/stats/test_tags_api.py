"""Tags over HTTP, shaped as Mailgun clients send them: listed, described, counted, deleted."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy import insert

from mailhaven.domains.models import Domain
from mailhaven.stats.models import Tag
from mailhaven.stats.tags import MAX_TAGS

TIME = datetime(2024, 3, 31, 12, 30, tzinfo=UTC).timestamp()


def send(api, domain: str, *tags: str):  # type: ignore[no-untyped-def]
    """POST urlencoded with repeated `o:tag` fields, as the SDKs do."""
    body = [("from", f"n@{domain}"), ("to", "a@example.org"), ("text", "t"),
            *(("o:tag", t) for t in tags)]
    return api.post(f"/v3/{domain}/messages", content=urlencode(body),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})


def at(clock, when: float) -> None:  # type: ignore[no-untyped-def]
    clock.advance(when - clock.now())


def test_tags_of_sent_mail_are_listed_with_their_first_and_last_hour(api, clock,
                                                                     domain) -> None:
    at(clock, TIME)
    assert send(api, domain, "news", "my tag").status_code == 200
    at(clock, TIME + 2 * 3600)
    assert send(api, domain, "news").status_code == 200
    body = api.get(f"/v3/{domain}/tags").json()
    assert body["items"] == [
        {"tag": "my tag", "description": "", "first-seen": "2024-03-31T12:00:00Z",
         "last-seen": "2024-03-31T12:00:00Z"},
        {"tag": "news", "description": "", "first-seen": "2024-03-31T12:00:00Z",
         "last-seen": "2024-03-31T14:00:00Z"}]
    assert set(body["paging"]) == {"first", "last", "next", "previous"}
    one = api.get(f"/v3/{domain}/tags/my%20tag")
    assert one.status_code == 200 and one.json()["tag"] == "my tag"


def test_a_description_is_set_by_put_and_a_delete_takes_the_counters(api, domain) -> None:
    send(api, domain, "promo")
    send(api, domain, "promo")
    updated = api.put(f"/v3/{domain}/tags/promo", data={"description": "Spring sale"})
    assert updated.json() == {"message": "Tag updated"}
    assert api.get(f"/v3/{domain}/tags/promo").json()["description"] == "Spring sale"
    query = {"event": "accepted", "duration": "1d"}
    counted = api.get(f"/v3/{domain}/tags/promo/stats", params=query).json()
    assert counted["tag"] == "promo" and counted["description"] == "Spring sale"
    assert sum(p["accepted"]["total"] for p in counted["stats"]) == 2

    assert api.delete(f"/v3/{domain}/tags/promo").json() == {"message": "Tag deleted"}
    for reply in (api.get(f"/v3/{domain}/tags/promo"), api.delete(f"/v3/{domain}/tags/promo"),
                  api.get(f"/v3/{domain}/tags/promo/stats", params=query)):
        assert reply.status_code == 404 and reply.json() == {"message": "Tag not found"}
    assert api.get(f"/v3/{domain}/tags").json()["items"] == []
    domain_total = api.get(f"/v3/{domain}/stats/total", params=query).json()
    assert sum(p["accepted"]["total"] for p in domain_total["stats"]) == 2

    send(api, domain, "promo")  # used again: a new tag, counted from zero
    again = api.get(f"/v3/{domain}/tags/promo/stats", params=query).json()
    assert again["description"] == ""
    assert sum(p["accepted"]["total"] for p in again["stats"]) == 1


def test_tag_stats_have_the_shape_of_stats_total_for_one_tag(api, domain) -> None:
    send(api, domain, "a", "b")
    send(api, domain, "b")
    params = [("event", "accepted"), ("event", "failed"), ("duration", "24h")]
    for tag, expected in (("a", 1), ("b", 2)):
        body = api.get(f"/v3/{domain}/tags/{tag}/stats", params=params).json()
        assert body["resolution"] == "hour" and body["start"] and body["end"]
        assert len(body["stats"]) in (24, 25)
        assert sum(p["accepted"]["outgoing"] for p in body["stats"]) == expected
        assert body["stats"][0]["failed"]["temporary"] == {"espblock": 0, "total": 0}
        query_form = api.get(f"/v3/{domain}/tag/stats", params=[("tag", tag), *params]).json()
        assert query_form == body
    refused = api.get(f"/v3/{domain}/tags/a/stats", params={"duration": "1d"})
    assert refused.status_code == 400
    unsupported = api.get(f"/v3/{domain}/tags/a/stats",
                          params={"event": "accepted", "provider": "gmail.com"})
    assert unsupported.status_code == 400


def test_the_query_form_takes_any_tag(api, domain) -> None:
    send(api, domain, "a/b c")
    assert api.get(f"/v3/{domain}/tag", params={"tag": "a/b c"}).json()["tag"] == "a/b c"
    updated = api.put(f"/v3/{domain}/tag", params={"tag": "a/b c", "description": "slashed"})
    assert updated.json() == {"message": "Tag updated"}
    assert api.get(f"/v3/{domain}/tag?tag=a%2Fb%20c").json()["description"] == "slashed"
    assert api.delete(f"/v3/{domain}/tag", params={"tag": "a/b c"}).json() == {
        "message": "Tag deleted"}
    assert api.get(f"/v3/{domain}/tag", params={"tag": "a/b c"}).status_code == 404
    missing = api.get(f"/v3/{domain}/tag")
    assert missing.status_code == 400 and missing.json()["message"]


def test_paging_walks_the_tags_in_order_within_a_prefix(api, domain) -> None:
    names = [f"t{i:02d}" for i in range(23)]
    for name in [*names, "other"]:
        assert api.put(f"/v3/{domain}/tags/{name}").status_code == 200
    url, seen = f"/v3/{domain}/tags?limit=10&prefix=t", []
    while True:
        body = api.get(url).json()
        if not body["items"]:
            break
        seen += [i["tag"] for i in body["items"]]
        url = body["paging"]["next"]
        assert "prefix=t" in url and "page=next" in url
    assert seen == names
    last = api.get(body["paging"]["last"]).json()
    assert [i["tag"] for i in last["items"]] == names[-10:]
    back = api.get(last["paging"]["previous"]).json()
    assert [i["tag"] for i in back["items"]] == names[3:13]
    assert "first-seen" not in back["items"][0]  # described, never used
    assert api.get(f"/v3/{domain}/tags", params={"page": "sideways"}).status_code == 400


def test_aggregates_answer_in_mailgun_shapes_without_breakdowns(api, domain) -> None:
    send(api, domain, "news")
    for kind in ("countries", "providers", "devices"):
        body = api.get(f"/v3/{domain}/tags/news/stats/aggregates/{kind}").json()
        assert body == {"tag": "news", kind: {}}
    typed = api.get(f"/v3/{domain}/tag/stats/aggregates",
                    params={"tag": "news", "type": "provider"}).json()
    assert typed == {"tag": "news", "provider": {}}
    assert api.get(f"/v3/{domain}/tags/nope/stats/aggregates/devices").status_code == 404


def test_a_refused_send_names_no_new_tag(api, domain) -> None:
    refused = api.post(f"/v3/{domain}/messages",
                       data={"to": "a@example.org", "text": "t", "o:tag": "junk"})
    assert refused.status_code == 400
    assert api.get(f"/v3/{domain}/tags").json()["items"] == []


def test_past_the_limit_new_tags_are_sent_but_not_tracked(api, services, domain) -> None:
    with services.db.transaction() as session:
        domain_id = session.query(Domain.id).filter_by(name=domain).scalar()
        session.execute(insert(Tag), [{"domain_id": domain_id, "tag": f"bulk{i:04d}",
                                       "description": ""} for i in range(MAX_TAGS)])
    assert api.get(f"/v3/domains/{domain}/limits/tag").json() == {
        "limit": MAX_TAGS, "count": MAX_TAGS}
    assert send(api, domain, "bulk0001", "one-too-many").status_code == 200
    assert api.get(f"/v3/{domain}/tags/one-too-many").status_code == 404
    events = api.get(f"/v3/{domain}/events", params={"event": "accepted"}).json()["items"]
    assert events[0]["tags"] == ["bulk0001", "one-too-many"]
    known = api.get(f"/v3/{domain}/tags/bulk0001/stats",
                    params={"event": "accepted", "duration": "1d"}).json()
    assert sum(p["accepted"]["total"] for p in known["stats"]) == 1
    refused = api.put(f"/v3/{domain}/tags/one-too-many", data={"description": "x"})
    assert refused.status_code == 400 and "5000" in refused.json()["message"]
    api.delete(f"/v3/{domain}/tags/bulk0000")
    assert api.put(f"/v3/{domain}/tags/one-too-many").status_code == 200


def test_another_account_sees_no_tags(api, live, services, domain) -> None:
    from mailhaven.accounts.service import create_account
    send(api, domain, "news")
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        for reply in (intruder.get(f"/v3/{domain}/tags"),
                      intruder.get(f"/v3/{domain}/tags/news"),
                      intruder.delete(f"/v3/{domain}/tags/news")):
            assert reply.status_code == 404
    assert api.get(f"/v3/{domain}/tags/news").status_code == 200
