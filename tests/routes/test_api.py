"""The Routes API over raw HTTP, as clients send it (urlencoded and multipart, `action`
repeated): every endpoint, Mailgun's shapes and messages, paging, 404s, validation errors
that say what is wrong and where, and one account never seeing another's routes."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
HEX24 = re.compile(r"[0-9a-f]{24}")
EXPRESSION = 'match_recipient(".*@mg.acme.test")'
FORWARD = 'forward("https://hooks.acme.test/messages/")'


def ok(reply: httpx.Response) -> dict:
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def refused(reply: httpx.Response, status: int, *words: str) -> str:
    assert reply.status_code == status, (reply.status_code, reply.text)
    body = reply.json()
    assert list(body) == ["message"]
    for word in words:
        assert word in body["message"], body["message"]
    return body["message"]


def create(api: httpx.Client, expression: str = EXPRESSION,
           actions: tuple[str, ...] = (FORWARD, "stop()"), **fields: str) -> dict:
    body = ok(api.post("/v3/routes", data={"expression": expression, "action": list(actions),
                                          **fields}))
    assert body["message"] == "Route has been created"
    return body["route"]


def test_a_route_is_created_from_an_urlencoded_body_and_read_back(api) -> None:
    raw = ("priority=1&description=Sample+route&expression="
           + quote(EXPRESSION) + "&action=" + quote(FORWARD) + "&action=stop%28%29")
    body = ok(api.post("/v3/routes", content=raw.encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert body["message"] == "Route has been created"
    route = body["route"]
    assert HEX24.fullmatch(route["id"]) and DATE.fullmatch(route["created_at"])
    assert {k: v for k, v in route.items() if k not in ("id", "created_at")} == {
        "priority": 1, "description": "Sample route", "expression": EXPRESSION,
        "actions": [FORWARD, "stop()"]}
    assert ok(api.get(f"/v3/routes/{route['id']}")) == {"route": route}


def test_a_multipart_body_with_repeated_actions_keeps_their_order(api) -> None:
    files = [("expression", (None, "catch_all()")), ("description", (None, "All")),
             ("action", (None, 'store(notify="https://hooks.acme.test/stored")')),
             ("action", (None, "forward('ops@acme.test')")), ("action", (None, "stop()"))]
    route = ok(api.post("/v3/routes", files=files))["route"]
    assert route["actions"] == ['store(notify="https://hooks.acme.test/stored")',
                                "forward('ops@acme.test')", "stop()"]
    assert route["priority"] == 0 and route["description"] == "All"


def test_the_list_is_in_evaluation_order_with_skip_and_limit(api) -> None:
    late = create(api, priority="5", description="late")
    first = create(api, priority="0", description="first")
    second = create(api, priority="0", description="second")  # a tie: the older first
    page = ok(api.get("/v3/routes"))
    assert page["total_count"] == 3
    assert [r["id"] for r in page["items"]] == [first["id"], second["id"], late["id"]]
    page = ok(api.get("/v3/routes", params={"skip": 1, "limit": 1}))
    assert page == {"total_count": 3, "items": [second]}
    assert ok(api.get("/v3/routes", params={"skip": 3}))["items"] == []


@pytest.mark.parametrize(("params", "words"), [
    ({"limit": "1001"}, ("can't be larger than 1000",)),
    ({"limit": "0"}, ("'limit'",)), ({"limit": "ten"}, ("'limit'",)),
    ({"skip": "-1"}, ("'skip'",))])
def test_bad_paging_is_a_400(api, params, words) -> None:
    refused(api.get("/v3/routes", params=params), 400, *words)


def test_an_update_changes_what_is_given_and_keeps_the_rest(api) -> None:
    route = create(api, priority="3", description="before")
    body = ok(api.put(f"/v3/routes/{route['id']}", data={
        "priority": "7", "action": ['forward("https://hooks.acme.test/b")']}))
    assert body["message"] == "Route has been updated"
    updated = {**route, "priority": 7, "actions": ['forward("https://hooks.acme.test/b")']}
    assert body["route"] == updated
    # Mailgun answers a PUT with the route's fields beside the message too (mailgun-go).
    assert {k: body[k] for k in updated} == updated
    assert ok(api.get(f"/v3/routes/{route['id']}"))["route"] == updated
    body = ok(api.put(f"/v3/routes/{route['id']}", files={
        "expression": (None, "catchall()"), "description": (None, "after")}))
    assert (body["route"]["expression"], body["route"]["description"],
            body["route"]["actions"]) == ("catchall()", "after", updated["actions"])


def test_delete_and_then_404s(api) -> None:
    route = create(api)
    assert ok(api.delete(f"/v3/routes/{route['id']}")) == {
        "message": "Route has been deleted", "id": route["id"]}
    for reply in (api.get(f"/v3/routes/{route['id']}"),
                  api.put(f"/v3/routes/{route['id']}", data={"priority": "1"}),
                  api.delete(f"/v3/routes/{route['id']}")):
        assert reply.status_code == 404 and reply.json() == {"message": "Route not found"}
    assert ok(api.get("/v3/routes")) == {"total_count": 0, "items": []}


@pytest.mark.parametrize("route_id", ["nope", "0" * 24, "%20", "a%2Bb", quote("é" * 30),
                                      "4F3BAD2335335426750048C6"])
def test_an_unknown_or_odd_id_is_a_404(api, route_id) -> None:
    reply = api.get(f"/v3/routes/{route_id}")
    assert reply.status_code == 404
    assert reply.json() == {"message": "Route not found"}


def test_a_percent_encoded_id_finds_the_route(api) -> None:
    route = create(api)
    encoded = "".join(f"%{ord(ch):02x}" for ch in route["id"])
    assert ok(api.get(f"/v3/routes/{encoded}"))["route"] == route


def test_match_finds_the_first_route_whose_recipient_filter_matches(api) -> None:
    create(api, 'match_header("subject", "urgent")', priority="0")
    catch = create(api, "catch_all()", priority="1")
    support = create(api, 'match_recipient("support@mg.acme.test")', priority="2")
    anyone = create(api, EXPRESSION, priority="3")
    assert catch["id"]  # a catch_all() is no match for an address
    assert ok(api.get("/v3/routes/match", params={"address": "Support@MG.acme.test"})) == {
        "route": support}
    assert ok(api.get("/v3/routes/match", params={"address": "ann@mg.acme.test"})) == {
        "route": anyone}
    reply = api.get("/v3/routes/match", params={"address": "ann@elsewhere.test"})
    assert reply.status_code == 404 and reply.json() == {"message": "Route not found"}
    refused(api.get("/v3/routes/match"), 400, "address")


@pytest.mark.parametrize(("expression", "words"), [
    ("", ("Missing mandatory parameter: expression",)),
    ('match_sender("x")', ("unknown filter match_sender()", "character 1")),
    ('match_recipient(".*") or catch_all()', ("expected 'and'", "character 23", "'or'")),
    ('match_recipient(".*"', ("expected ')'",)),
    ('match_recipient(".*@x) and stop()', ("not closed", "character 17")),
    ('match_recipient("[a-")', ("not a valid regular expression",)),
    ('match_header("sub ject", "x")', ("not a header name",)),
    ('catch_all() and match_recipient("x")', ("catch_all() stands alone",)),
    ('match_recipient("(a+)+$")', ("match_recipient() at character 1", "repeat within a repeat")),
    ('match_recipient("x") and match_header("subject", "(x|xy)*z")',
     ("match_header() at character 26", "alternatives repeated")),
    ('match_recipient("(a)\\1")', ("back-reference",)),
    ('match_recipient("' + "a" * 4100 + '")', ("longer than 4096",)),
])
def test_a_bad_expression_is_a_400_that_says_what_and_where(api, expression, words) -> None:
    refused(api.post("/v3/routes", data={"expression": expression, "action": "stop()"}),
            400, *words)


@pytest.mark.parametrize(("action", "words"), [
    ('forward("ftp://files.acme.test/")', ("action 2", "neither an http(s) URL nor")),
    ('forward("https://\\1.acme.test/")', ("captures can't be used in a URL's host",)),
    ('forward("https://hooks.acme.test/\\3")', ("\\3 names no capture",)),
    ('forward("https://hooks.acme.test/\\g<nobody>")', ("\\g<nobody> names no capture",)),
    ('forward("https://hooks.acme.test:99999/")', ("port must be a number",)),
    ('forward("http://")', ("host is missing",)),
    ("forward()", ("forward() takes one string",)),
    ('store(url="https://hooks.acme.test/")', ('store() takes only notify="https://…"',)),
    ('store(notify="ops@acme.test")', ("notify must be an http or https URL",)),
    ('stop("now")', ("stop() takes no arguments",)),
    ('forward("https://hooks.acme.test/") stop()', ("one action per `action` field",)),
    ("drop()", ("unknown action drop()",)),
])
def test_a_bad_action_is_a_400_naming_the_action(api, action, words) -> None:
    refused(api.post("/v3/routes", data={
        "expression": 'match_recipient("(?P<user>.*)@mg.acme.test")',
        "action": ["stop()", action]}), 400, *words)


def test_captures_are_accepted_in_a_url_path_and_an_address(api) -> None:
    route = create(api, 'match_recipient("(?P<user>.*?)@(.*)")', actions=(
        'forward("http://hooks.acme.test/domains/\\2/users/\\g<user>")',
        'forward("\\g<user>@team.acme.test")'))
    assert route["actions"][0] == 'forward("http://hooks.acme.test/domains/\\2/users/\\g<user>")'


@pytest.mark.parametrize("destination", [
    "\\1@\\2.com", "ops@\\2", "ops@acme.\\2", "\\g<user>@\\g<2>.test"])
def test_a_capture_in_an_addresss_domain_is_a_400(api, destination) -> None:
    # A Subject of victim@gmail.com would otherwise pick where the mail goes.
    expression = 'match_header("subject", "(?P<user>\\S+)@(\\S+)\\.com")'
    action = f'forward("{destination}")'
    refused(api.post("/v3/routes", data={"expression": expression, "action": action}),
            400, "captures can't be used in the domain of an address")
    route = create(api, expression, actions=('forward("\\g<user>@team.acme.test")',))
    refused(api.put(f"/v3/routes/{route['id']}", data={"action": action}),
            400, "captures can't be used in the domain of an address")
    assert ok(api.get(f"/v3/routes/{route['id']}"))["route"] == route  # unchanged


def test_bad_priority_description_and_update_are_400s(api) -> None:
    refused(api.post("/v3/routes", data={"expression": EXPRESSION, "priority": "high"}),
            400, "priority must be an integer")
    refused(api.post("/v3/routes", data={"expression": EXPRESSION, "priority": "9" * 20}),
            400, "priority must be an integer")
    route = create(api)
    refused(api.put(f"/v3/routes/{route['id']}", data={"expression": "nothing()"}),
            400, "unknown filter nothing()")
    assert ok(api.get(f"/v3/routes/{route['id']}"))["route"] == route  # unchanged


def test_routes_belong_to_their_account(api, second_api) -> None:
    mine = create(api, description="mine")
    theirs = create(second_api, 'match_recipient(".*@mg.bee.test")', description="theirs")
    assert [r["id"] for r in ok(api.get("/v3/routes"))["items"]] == [mine["id"]]
    assert [r["id"] for r in ok(second_api.get("/v3/routes"))["items"]] == [theirs["id"]]
    for reply in (second_api.get(f"/v3/routes/{mine['id']}"),
                  second_api.put(f"/v3/routes/{mine['id']}", data={"description": "x"}),
                  second_api.delete(f"/v3/routes/{mine['id']}")):
        assert reply.status_code == 404
    reply = second_api.get("/v3/routes/match", params={"address": "ann@mg.acme.test"})
    assert reply.status_code == 404
    assert ok(api.get(f"/v3/routes/{mine['id']}"))["route"] == mine


def test_without_a_key_nothing_is_answered(live) -> None:
    with httpx.Client(base_url=live.base_url) as anonymous:
        assert anonymous.get("/v3/routes").status_code == 401
        assert anonymous.post("/v3/routes", data={"expression": EXPRESSION}).status_code == 401
