"""`/app/templates` and `/app/routes`: what the Templates and Routes APIs hold, listed and
changed in the panel with the APIs' own checks; content shown as text, never rendered."""

from __future__ import annotations

from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from tests.web.helpers import add_user, csrf_of, http_log_in

HOSTILE = '<script src="https://evil.example/x.js"></script><b>Hi {{name}}</b>'


def test_templates_are_listed_viewed_created_and_deleted(page, live, services, api, domain,
                                                         signed_in) -> None:
    signed_in()
    api.post(f"/v3/{domain}/templates", data={"name": "welcome", "description": "Hello mail",
                                               "template": HOSTILE, "tag": "v1"})
    api.post(f"/v3/{domain}/templates/welcome/versions", data={"template": "<p>2</p>",
                                                                "tag": "v2"})
    page.goto(f"{live.base_url}/app/templates")
    row = page.locator("tbody tr").first
    assert "welcome" in row.inner_text() and "Hello mail" in row.inner_text()
    assert row.locator("td").nth(2).inner_text() == "2"
    assert row.locator("td").nth(3).inner_text() == "v1"
    page.get_by_role("link", name="welcome").click()
    page.wait_for_load_state()
    assert page.locator("pre.template-source").inner_text() == HOSTILE  # as text
    assert page.locator("b").count() == 0

    page.get_by_label("Tag").fill("v3")
    page.get_by_label("Content (Handlebars)").fill("<p>Three {{name}}</p>")
    page.get_by_label("Make it the active version").check()
    page.get_by_role("button", name="Add version").click()
    page.wait_for_load_state()
    assert "Version added." in page.content()
    assert page.locator("pre.template-source").inner_text() == "<p>Three {{name}}</p>"
    page.get_by_role("button", name="Make v2 active").click()
    page.wait_for_load_state()
    assert page.locator("pre.template-source").inner_text() == "<p>2</p>"
    page.get_by_role("button", name="Delete version v1").click()
    page.wait_for_load_state()
    tags = api.get(f"/v3/{domain}/templates/welcome/versions").json()["template"]["versions"]
    assert sorted((v["tag"], v["active"]) for v in tags) == [("v2", True), ("v3", False)]

    page.goto(f"{live.base_url}/app/templates")
    page.get_by_label("Name").fill("Bad name!")
    page.get_by_role("button", name="Create template").click()
    page.wait_for_load_state()
    assert "name is invalid" in page.locator(".error").inner_text()
    page.get_by_label("Name").fill("receipt")
    page.get_by_label("Description").fill("Receipts")
    page.get_by_role("button", name="Create template").click()
    page.wait_for_load_state()
    assert "Template created." in page.content()
    assert api.get(f"/v3/{domain}/templates/receipt").json()["template"]["description"] \
        == "Receipts"
    page.get_by_role("button", name="Delete template receipt").click()
    page.wait_for_load_state()
    assert "Template deleted." in page.content()
    assert api.get(f"/v3/{domain}/templates/receipt").status_code == 404
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_routes_are_listed_created_edited_and_deleted(page, live, services, api,
                                                      signed_in) -> None:
    signed_in()
    api.post("/v3/routes", data={"priority": "5", "description": "Support",
                                 "expression": 'match_recipient("support@.*")',
                                 "action": ['forward("https://acme.test/in")', "stop()"]})
    page.goto(f"{live.base_url}/app/routes")
    assert "Support" in page.locator("tbody").inner_text()
    page.get_by_label("Priority").fill("1")
    page.get_by_label("Description").fill("Everything else")
    page.get_by_label("Expression").fill("match_sender(\"x\")")
    page.get_by_label("Actions, one a line").fill('forward("https://acme.test/all")')
    page.get_by_role("button", name="Create route").click()
    page.wait_for_load_state()
    assert "unknown filter match_sender()" in page.locator(".error").inner_text()
    assert page.get_by_label("Description").input_value() == "Everything else"  # kept
    page.get_by_label("Expression").fill("catch_all()")
    page.get_by_role("button", name="Create route").click()
    page.wait_for_load_state()
    assert "Route created." in page.content()
    items = api.get("/v3/routes").json()["items"]
    assert [i["description"] for i in items] == ["Everything else", "Support"]
    assert items[0]["actions"] == ['forward("https://acme.test/all")']

    page.get_by_role("link", name="Open route Everything else").click()
    page.wait_for_load_state()
    page.get_by_label("Actions, one a line").fill('forward("https://acme.test/all")\nstop()')
    page.get_by_role("button", name="Save route").click()
    page.wait_for_load_state()
    assert "Route saved." in page.content()
    assert api.get(f"/v3/routes/{items[0]['id']}").json()["route"]["actions"] == [
        'forward("https://acme.test/all")', "stop()"]
    page.get_by_role("button", name="Delete this route").click()
    page.wait_for_load_state()
    assert "Route deleted." in page.content()
    assert api.get("/v3/routes").json()["total_count"] == 1
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested
    with services.db.sessions() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"web.route_created", "web.route_changed", "web.route_deleted"} <= actions


def test_an_analyst_may_read_but_not_change(live, services, api, account, domain) -> None:
    api.post(f"/v3/{domain}/templates", data={"name": "welcome", "template": "Hi"})
    route = api.post("/v3/routes", data={"expression": "catch_all()",
                                         "action": "stop()"}).json()["route"]["id"]
    add_user(services, account[0], email="ana@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ana@acme.test")
        listed = client.get("/app/routes")
        assert listed.status_code == 200 and "Create route" not in listed.text
        assert client.get(f"/app/routes/{route}").status_code == 200
        assert client.get(f"/app/templates/{domain}/welcome").status_code == 200
        token = csrf_of(listed.text)
        for path in ("/app/routes", f"/app/routes/{route}", f"/app/routes/{route}/delete",
                     f"/app/templates/{domain}", f"/app/templates/{domain}/welcome/delete",
                     f"/app/templates/{domain}/welcome/versions"):
            answer = client.post(path, data={"csrf_token": token, "name": "x",
                                             "expression": "catch_all()"})
            assert answer.status_code == 403, path
        assert client.post(f"/app/routes/{route}/delete").status_code == 403  # no CSRF token
    assert api.get("/v3/routes").json()["total_count"] == 1


def test_another_account_gets_404_for_our_templates_and_routes(live, services, api, domain,
                                                               second_account) -> None:
    api.post(f"/v3/{domain}/templates", data={"name": "welcome", "template": "Hi"})
    route = api.post("/v3/routes", data={"expression": "catch_all()", "description": "Ours",
                                         "action": "stop()"}).json()["route"]["id"]
    add_user(services, second_account.account_id, email="bea@bee.test")
    with live.client() as client:
        http_log_in(client, "bea@bee.test")
        listed = client.get("/app/routes")
        assert listed.status_code == 200 and "Ours" not in listed.text
        assert "welcome" not in client.get("/app/templates").text
        assert client.get(f"/app/templates?domain={domain}").status_code == 404
        assert client.get(f"/app/templates/{domain}/welcome").status_code == 404
        assert client.get(f"/app/routes/{route}").status_code == 404
        token = csrf_of(listed.text)
        for path in (f"/app/routes/{route}", f"/app/routes/{route}/delete",
                     f"/app/templates/{domain}/welcome/delete",
                     f"/app/templates/{domain}/welcome/versions"):
            answer = client.post(path, data={"csrf_token": token, "tag": "x",
                                             "template": "y", "expression": "catch_all()"})
            assert answer.status_code == 404, path
    assert api.get(f"/v3/routes/{route}").status_code == 200
    assert api.get(f"/v3/{domain}/templates/welcome").status_code == 200
