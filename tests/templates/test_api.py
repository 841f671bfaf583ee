"""The Templates API over raw HTTP, as clients send it (urlencoded and multipart): every
endpoint, Mailgun's shapes, messages, paging and limits, 404s, and one account never
seeing another's templates."""

from __future__ import annotations

import re

import httpx
import pytest

from mailhaven.templates import service

DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} UTC")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
HTML = "<h1>Hello {{name}}</h1>"


def ok(reply: httpx.Response) -> dict:
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def refused(reply: httpx.Response, status: int, message: str) -> None:
    assert reply.status_code == status, (reply.status_code, reply.text)
    assert reply.json() == {"message": message}


def multipart(fields: dict[str, str]) -> dict:
    """Fields as a multipart body, as curl -F sends them."""
    return {"files": {name: (None, value) for name, value in fields.items()}}


def create(api: httpx.Client, domain: str, name: str, template: str | None = HTML,
           **fields: str) -> dict:
    data = {"name": name, **fields}
    if template is not None:
        data["template"] = template
    return ok(api.post(f"/v3/{domain}/templates", data=data))


def names(page: dict) -> list[str]:
    return [item["name"] for item in page["items"]]


# -- templates -----------------------------------------------------------------------------

def test_a_template_is_stored_without_content_and_read_back(api, domain) -> None:
    body = ok(api.post(f"/v3/{domain}/templates", data={
        "name": "Template.Test", "description": "Sample template"}))
    assert body["message"] == "template has been stored"
    stored = body["template"]
    assert stored["name"] == "template.test"  # names are lower-cased
    assert stored["description"] == "Sample template"
    assert DATE.fullmatch(stored["createdAt"]) and UUID.fullmatch(stored["id"])
    assert "version" not in stored
    assert ok(api.get(f"/v3/{domain}/templates/template.test")) == {"template": stored}
    assert ok(api.get(f"/v3/{domain}/templates/TEMPLATE.test",
                      params={"active": "yes"}))["template"] == stored  # no version yet


def test_a_template_stored_with_content_has_an_active_initial_version(api, domain) -> None:
    body = ok(api.post(f"/v3/{domain}/templates", **multipart({
        "name": "welcome", "description": "Welcome", "template": HTML,
        "comment": "first cut", "createdBy": "ann",
        "headers": '{"subject": "Welcome!", "From": "Acme <news@mg.acme.test>"}'})))
    version = body["template"]["version"]
    assert body["template"]["createdBy"] == "ann"
    assert version["tag"] == "initial" and version["active"] is True
    assert version["engine"] == "handlebars" and version["template"] == HTML
    assert version["comment"] == "first cut" and UUID.fullmatch(version["id"])
    assert version["headers"] == {"Subject": "Welcome!", "From": "Acme <news@mg.acme.test>"}
    assert DATE.fullmatch(version["createdAt"])
    got = ok(api.get(f"/v3/{domain}/templates/welcome", params={"active": "yes"}))
    assert got["template"]["version"] == version
    assert "version" not in ok(api.get(f"/v3/{domain}/templates/welcome"))["template"]

    tagged = create(api, domain, "tagged", tag="V1.0")
    assert tagged["template"]["version"]["tag"] == "v1.0"
    # Letters of any script (Mailgun: "supports utf-8 characters"), in a percent-encoded path.
    assert create(api, domain, "Café_Menü~2")["template"]["name"] == "café_menü~2"
    assert ok(api.get(f"/v3/{domain}/templates/caf%C3%A9_men%C3%BC~2"))["template"][
        "name"] == "café_menü~2"


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({}, 400, service.NAME_MISSING),
    ({"name": "  "}, 400, service.NAME_MISSING),
    ({"name": "two words"}, 400, service.NAME_INVALID),
    ({"name": "ann@example.org"}, 400, service.NAME_INVALID),
    ({"name": "x" * 256}, 400, service.NAME_INVALID),
    ({"name": "ok", "template": HTML, "tag": "bad tag"}, 400, service.TAG_INVALID),
    ({"name": "ok", "template": HTML, "engine": "mustache"}, 400,
     "Invalid parameter: engine mustache is not supported"),
    ({"name": "ok", "template": "{{#if a}}never closed"}, 400,
     "Invalid parameter: template is not a valid handlebars template: "
     "{{#if}} is not closed (line 1)"),
    ({"name": "ok", "template": "{{> partial}}"}, 400,
     "Invalid parameter: template is not a valid handlebars template: "
     "partials ({{> name}}) are not supported (line 1)"),
    ({"name": "ok", "template": "{{#if}}x{{/if}}"}, 400,
     "Invalid parameter: template is not a valid handlebars template: "
     "if takes 1 argument, not 0"),
    ({"name": "ok", "template": "x" * (100 * 1024 + 1)}, 400, service.TOO_LARGE),
    ({"name": "ok", "template": HTML, "headers": "not json"}, 400, service.HEADERS_INVALID),
    ({"name": "ok", "template": HTML, "headers": '{"X-Other": "1"}'}, 400,
     service.HEADERS_INVALID),
    ({"name": "ok", "template": HTML, "headers": '{"From": "not an address"}'}, 400,
     "Invalid parameter: headers: From is not a valid address"),
    ({"name": "ok", "template": HTML, "headers": '{"Reply-To": ""}'}, 400,
     "Invalid parameter: headers: Reply-To is not a valid address"),
    ({"name": "ok", "template": HTML, "headers": '{"Subject": "%s"}' % ("s" * 999)}, 400,
     "Invalid parameter: headers: Subject is longer than 998 characters"),
    ({"name": "ok", "description": "d" * (16 * 1024 + 1)}, 400,
     "Invalid parameter: description is longer than 16384 characters"),
    # JSON can spell a lone surrogate, which no text can hold: stored, no read would work.
    ({"name": "ok", "template": HTML, "headers": '{"Subject": "a\\ud800b"}'}, 400,
     service.HEADERS_INVALID),
])
def test_a_template_mailgun_would_refuse_is_refused(api, domain, fields, status,
                                                     message) -> None:
    refused(api.post(f"/v3/{domain}/templates", data=fields), status, message)
    assert ok(api.get(f"/v3/{domain}/templates"))["items"] == []


def test_a_template_of_exactly_100_kb_is_taken(api, domain) -> None:
    big = "é" * (50 * 1024)  # 100 KB in UTF-8, three times that percent-encoded
    assert create(api, domain, "big", big)["template"]["version"]["template"] == big


def test_a_form_past_a_mebibyte_is_refused_before_it_is_read(api, domain) -> None:
    reply = api.post(f"/v3/{domain}/templates", data={"name": "x", "template": "y" * 2**20})
    assert reply.status_code == 413
    assert reply.json() == {"message": "request size exceeds 1024KiB limit"}


def test_a_name_is_taken_once_per_domain(api, domain) -> None:
    create(api, domain, "welcome")
    refused(api.post(f"/v3/{domain}/templates", data={"name": "Welcome"}), 409,
            "template welcome already exists")


def test_a_domain_holds_100_templates(api, domain) -> None:
    for n in range(service.MAX_TEMPLATES):
        create(api, domain, f"t{n}", template=None)
    refused(api.post(f"/v3/{domain}/templates", data={"name": "one-more"}), 400,
            service.TOO_MANY_TEMPLATES)
    ok(api.delete(f"/v3/{domain}/templates/t0"))
    create(api, domain, "one-more", template=None)


def test_a_description_is_updated_and_nothing_else(api, domain) -> None:
    create(api, domain, "welcome", description="old")
    assert ok(api.put(f"/v3/{domain}/templates/welcome", **multipart(
        {"description": "new"}))) == {"message": "template has been updated",
                                      "template": {"name": "welcome"}}
    got = ok(api.get(f"/v3/{domain}/templates/welcome", params={"active": "yes"}))["template"]
    assert got["description"] == "new" and got["version"]["template"] == HTML
    for empty in ({}, {"description": ""}):
        refused(api.put(f"/v3/{domain}/templates/welcome", data=empty), 400,
                "No fields are provided to update")
    refused(api.put(f"/v3/{domain}/templates/nope", data={"description": "x"}), 404,
            "template not found")


def test_a_template_is_deleted_with_its_versions(api, domain) -> None:
    create(api, domain, "welcome")
    assert ok(api.delete(f"/v3/{domain}/templates/welcome")) == {
        "message": "template has been deleted", "template": {"name": "welcome"}}
    refused(api.get(f"/v3/{domain}/templates/welcome"), 404, "template not found")
    refused(api.get(f"/v3/{domain}/templates/welcome/versions/initial"), 404,
            "template not found")
    refused(api.delete(f"/v3/{domain}/templates/welcome"), 404, "template not found")
    create(api, domain, "welcome")  # the name is free again


def test_every_template_of_a_domain_is_deleted_at_once(api, domain) -> None:
    for name in ("a", "b", "c"):
        create(api, domain, name)
    assert ok(api.delete(f"/v3/{domain}/templates")) == {
        "message": "templates have been deleted"}
    assert ok(api.get(f"/v3/{domain}/templates"))["items"] == []


def test_templates_are_listed_a_page_at_a_time_in_the_order_they_were_made(
        api, domain, live) -> None:
    for name in ("t0", "t1", "t2", "t3", "t4"):
        create(api, domain, name, template=None, description=f"about {name}")
    first = ok(api.get(f"/v3/{domain}/templates", params={"limit": 2}))
    assert names(first) == ["t0", "t1"]
    assert first["items"][0] == ok(api.get(f"/v3/{domain}/templates/t0"))["template"]
    base = f"{live.base_url}/v3/{domain}/templates"
    assert first["paging"] == {
        "first": f"{base}?limit=2", "last": f"{base}?page=last&limit=2",
        "next": f"{base}?page=next&p=t1&limit=2", "previous": f"{base}?page=prev&p=t0&limit=2"}
    second = ok(api.get(first["paging"]["next"]))
    assert names(second) == ["t2", "t3"]
    third = ok(api.get(second["paging"]["next"]))
    assert names(third) == ["t4"]
    assert ok(api.get(third["paging"]["next"]))["items"] == []
    assert names(ok(api.get(third["paging"]["previous"]))) == ["t2", "t3"]
    assert names(ok(api.get(first["paging"]["last"]))) == ["t3", "t4"]
    assert names(ok(api.get(f"/v3/{domain}/templates", params={
        "page": "previous", "p": "t2", "limit": 10}))) == ["t0", "t1"]
    assert names(ok(api.get(f"/v3/{domain}/templates"))) == ["t0", "t1", "t2", "t3", "t4"]


@pytest.mark.parametrize(("params", "message"), [
    ({"page": "sideways"}, service.PAGE_INVALID),
    ({"page": "next"}, service.PIVOT_MISSING),
    ({"limit": "0"}, None), ({"limit": "101"}, None), ({"limit": "many"}, None),
])
def test_bad_paging_is_a_400(api, domain, params, message) -> None:
    reply = api.get(f"/v3/{domain}/templates", params=params)
    assert reply.status_code == 400, reply.text
    if message:
        assert reply.json() == {"message": message}
    else:
        assert reply.json()["message"].startswith("Invalid parameter limit")


# -- versions ------------------------------------------------------------------------------

def test_a_version_is_added_and_made_active_only_when_asked(api, domain) -> None:
    create(api, domain, "welcome")
    body = ok(api.post(f"/v3/{domain}/templates/welcome/versions", data={
        "tag": "v2", "template": "<p>v2 {{name}}</p>", "comment": "second"}))
    assert body["message"] == "new version of the template has been stored"
    assert body["template"]["name"] == "welcome"
    assert body["template"]["version"]["tag"] == "v2"
    assert body["template"]["version"]["active"] is False
    active = ok(api.get(f"/v3/{domain}/templates/welcome", params={"active": "yes"}))
    assert active["template"]["version"]["tag"] == "initial"

    body = ok(api.post(f"/v3/{domain}/templates/welcome/versions", **multipart({
        "tag": "v3", "template": "<p>v3</p>", "active": "yes"})))
    assert body["template"]["version"]["active"] is True
    active = ok(api.get(f"/v3/{domain}/templates/welcome", params={"active": "yes"}))
    assert active["template"]["version"]["tag"] == "v3"
    listed = ok(api.get(f"/v3/{domain}/templates/welcome/versions"))
    assert [(v["tag"], v["active"]) for v in listed["template"]["versions"]] == [
        ("initial", False), ("v2", False), ("v3", True)]


def test_the_first_version_of_an_empty_template_is_active(api, domain) -> None:
    create(api, domain, "empty", template=None)
    body = ok(api.post(f"/v3/{domain}/templates/empty/versions",
                       data={"tag": "v1", "template": HTML}))
    assert body["template"]["version"]["active"] is True


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"tag": "v2"}, 400, "Missing mandatory parameter: template"),
    ({"template": HTML}, 400, "Missing mandatory parameter: tag"),
    ({"template": HTML, "tag": "a/b"}, 400, service.TAG_INVALID),
    ({"template": "{{/if}}", "tag": "v2"}, 400, "Invalid parameter: template is not a valid "
     "handlebars template: {{/if}} closes no block (line 1)"),
    ({"template": HTML, "tag": "Initial"}, 409, "version initial already exists"),
    ({"template": HTML, "tag": "v2", "headers": '{"Subject": "\\udc00"}'}, 400,
     service.HEADERS_INVALID),
])
def test_a_version_mailgun_would_refuse_is_refused(api, domain, fields, status,
                                                    message) -> None:
    create(api, domain, "welcome")
    refused(api.post(f"/v3/{domain}/templates/welcome/versions", data=fields), status,
            message)


def test_a_template_holds_10_versions(api, domain) -> None:
    create(api, domain, "welcome")
    for n in range(2, service.MAX_VERSIONS + 1):
        ok(api.post(f"/v3/{domain}/templates/welcome/versions",
                    data={"tag": f"v{n}", "template": HTML}))
    refused(api.post(f"/v3/{domain}/templates/welcome/versions",
                     data={"tag": "v11", "template": HTML}), 400, service.TOO_MANY_VERSIONS)
    refused(api.put(f"/v3/{domain}/templates/welcome/versions/v2/copy/v11"), 400,
            service.TOO_MANY_VERSIONS)


def test_a_version_is_read_updated_and_deleted(api, domain) -> None:
    created = create(api, domain, "welcome")
    got = ok(api.get(f"/v3/{domain}/templates/welcome/versions/INITIAL"))
    assert got["template"]["version"] == created["template"]["version"]
    ok(api.post(f"/v3/{domain}/templates/welcome/versions",
                data={"tag": "v2", "template": "<p>two</p>"}))

    assert ok(api.put(f"/v3/{domain}/templates/welcome/versions/v2", **multipart({
        "template": "<p>two, edited</p>", "comment": "edited",
        "headers": '{"Subject": "Edited"}'}))) == {
        "message": "version has been updated",
        "template": {"name": "welcome", "version": {"tag": "v2"}}}
    version = ok(api.get(f"/v3/{domain}/templates/welcome/versions/v2"))["template"]["version"]
    assert (version["template"], version["comment"], version["headers"], version["active"]) \
        == ("<p>two, edited</p>", "edited", {"Subject": "Edited"}, False)

    ok(api.put(f"/v3/{domain}/templates/welcome/versions/v2", data={"active": "yes"}))
    version = ok(api.get(f"/v3/{domain}/templates/welcome/versions/v2"))["template"]["version"]
    assert version["active"] is True and version["template"] == "<p>two, edited</p>"
    first = ok(api.get(f"/v3/{domain}/templates/welcome/versions/initial"))
    assert first["template"]["version"]["active"] is False

    refused(api.put(f"/v3/{domain}/templates/welcome/versions/v2", data={}), 400,
            "No fields are provided to update")
    refused(api.put(f"/v3/{domain}/templates/welcome/versions/v9", data={"comment": "x"}),
            404, "template version not found")
    assert ok(api.delete(f"/v3/{domain}/templates/welcome/versions/v2")) == {
        "message": "version has been deleted",
        "template": {"name": "welcome", "version": {"tag": "v2"}}}
    refused(api.get(f"/v3/{domain}/templates/welcome/versions/v2"), 404,
            "template version not found")
    refused(api.delete(f"/v3/{domain}/templates/welcome/versions/v2"), 404,
            "template version not found")


def test_a_version_is_copied_to_a_new_tag_or_over_an_old_one(api, domain) -> None:
    create(api, domain, "welcome", comment="original", headers='{"Subject": "Hi"}')
    body = ok(api.put(f"/v3/{domain}/templates/welcome/versions/initial/copy/Copy1",
                      params={"comment": "a copy"}))
    assert body["message"] == "version has been copied"
    assert body["version"] == body["template"]
    copied = body["version"]
    assert (copied["tag"], copied["template"], copied["comment"], copied["active"],
            copied["headers"]) == ("copy1", HTML, "a copy", False, {"Subject": "Hi"})
    assert ok(api.get(f"/v3/{domain}/templates/welcome/versions/copy1"))["template"][
        "version"] == copied

    ok(api.post(f"/v3/{domain}/templates/welcome/versions",
                data={"tag": "v2", "template": "<p>other</p>"}))
    again = ok(api.put(f"/v3/{domain}/templates/welcome/versions/v2/copy/copy1"))
    assert again["version"]["template"] == "<p>other</p>"
    assert again["version"]["id"] == copied["id"]  # overwritten, not added
    listed = ok(api.get(f"/v3/{domain}/templates/welcome/versions"))["template"]["versions"]
    assert [v["tag"] for v in listed] == ["initial", "copy1", "v2"]
    refused(api.put(f"/v3/{domain}/templates/welcome/versions/nope/copy/x"), 404,
            "template version not found")
    refused(api.put(f"/v3/{domain}/templates/welcome/versions/v2/copy/bad tag"), 400,
            service.TAG_INVALID)


def test_versions_are_listed_a_page_at_a_time(api, domain, live) -> None:
    create(api, domain, "welcome", description="Welcome")
    for n in (2, 3, 4):
        ok(api.post(f"/v3/{domain}/templates/welcome/versions",
                    data={"tag": f"v{n}", "template": HTML}))
    first = ok(api.get(f"/v3/{domain}/templates/welcome/versions", params={"limit": 3}))
    assert first["template"]["name"] == "welcome"
    assert first["template"]["description"] == "Welcome"
    assert [v["tag"] for v in first["template"]["versions"]] == ["initial", "v2", "v3"]
    base = f"{live.base_url}/v3/{domain}/templates/welcome/versions"
    assert first["paging"]["next"] == f"{base}?page=next&p=v3&limit=3"
    second = ok(api.get(first["paging"]["next"]))
    assert [v["tag"] for v in second["template"]["versions"]] == ["v4"]
    last = ok(api.get(first["paging"]["last"]))
    assert [v["tag"] for v in last["template"]["versions"]] == ["v2", "v3", "v4"]
    refused(api.get(f"/v3/{domain}/templates/nope/versions"), 404, "template not found")


# -- who may see what ------------------------------------------------------------------------

def test_another_account_sees_none_of_the_templates(api, second_api, second_account,
                                                    domain) -> None:
    create(api, domain, "welcome")
    paths = [f"/v3/{domain}/templates", f"/v3/{domain}/templates/welcome",
             f"/v3/{domain}/templates/welcome/versions",
             f"/v3/{domain}/templates/welcome/versions/initial"]
    for path in paths:
        refused(second_api.get(path), 404, "Domain not found")
    refused(second_api.delete(f"/v3/{domain}/templates"), 404, "Domain not found")
    refused(second_api.put(f"/v3/{domain}/templates/welcome", data={"description": "x"}),
            404, "Domain not found")
    refused(second_api.post(f"/v3/{domain}/templates/welcome/versions",
                            data={"tag": "v2", "template": "x"}), 404, "Domain not found")
    # Its own domain has its own namespace: the same name is free there.
    create(second_api, second_account.domain, "welcome")
    assert names(ok(second_api.get(f"/v3/{second_account.domain}/templates"))) == ["welcome"]
    assert ok(api.get(f"/v3/{domain}/templates/welcome", params={"active": "yes"}))[
        "template"]["version"]["template"] == HTML


def test_without_a_key_nothing_is_answered(live, domain) -> None:
    with live.client() as anonymous:
        reply = anonymous.get(f"/v3/{domain}/templates")
    assert reply.status_code == 401


def test_every_endpoint_is_in_the_openapi_document(api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    base = "/v3/{domain_name}/templates"
    expected = {
        base: {"get", "post", "delete"},
        f"{base}/{{template_name}}": {"get", "put", "delete"},
        f"{base}/{{template_name}}/versions": {"get", "post"},
        f"{base}/{{template_name}}/versions/{{version_name}}": {"get", "put", "delete"},
        f"{base}/{{template_name}}/versions/{{version_name}}/copy/{{new_version_name}}":
            {"put"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) >= methods, path
        for method in methods:
            operation = paths[path][method]
            assert "200" in operation["responses"], (path, method)
            if method == "post" or (method == "put" and "copy" not in path):
                forms = operation["requestBody"]["content"]
                assert set(forms) == {"application/x-www-form-urlencoded",
                                      "multipart/form-data"}
    create_form = paths[base]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"name", "description", "template", "tag", "comment", "headers"} \
        <= set(create_form["schema"]["properties"])


def test_a_version_is_not_updated_to_headers_no_text_can_hold(api, domain) -> None:
    create(api, domain, "welcome")
    refused(api.put(f"/v3/{domain}/templates/welcome/versions/initial",
                    data={"headers": '{"Subject": "\\ud800"}'}), 400, service.HEADERS_INVALID)
    version = ok(api.get(f"/v3/{domain}/templates/welcome/versions/initial"))["template"]
    assert version["version"]["tag"] == "initial"
