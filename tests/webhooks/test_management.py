"""Webhook settings through Mailgun's v3, v4 and v1 APIs, as real clients send them."""

from __future__ import annotations

from mailhaven.accounts.service import create_account

A, B, C = "https://a.example/hook", "https://b.example/hook", "https://c.example/hook"


def test_v3_one_list_of_urls_per_type(api, domain) -> None:
    base = f"/v3/domains/{domain}/webhooks"
    created = api.post(base, data={"id": "delivered", "url": [A, B]})  # repeated url fields
    assert created.status_code == 200
    assert created.json() == {"message": "Webhook has been created",
                              "webhook": {"urls": [A, B]}}
    assert api.get(base).json() == {"webhooks": {"delivered": {"urls": [A, B]}}}
    assert api.get(f"{base}/delivered").json() == {"webhook": {"urls": [A, B]}}
    assert api.get(f"{base}/opened").json() == {"webhook": {"urls": []}}

    updated = api.put(f"{base}/delivered", data={"url": C})
    assert updated.json() == {"message": "Webhook has been updated", "webhook": {"urls": [C]}}
    deleted = api.delete(f"{base}/delivered")
    assert deleted.json() == {"message": "Webhook has been deleted", "webhook": {"urls": [C]}}
    assert api.get(base).json() == {"webhooks": {}}
    assert api.delete(f"{base}/delivered").status_code == 404


def test_v3_multipart_and_its_errors(api, domain) -> None:
    base = f"/v3/domains/{domain}/webhooks"
    multipart = api.post(base, data={"id": "permanent_fail", "url": A},
                         files={"unused": ("x.txt", b"")})
    assert multipart.status_code == 200
    too_many = api.post(base, data={"id": "temporary_fail",
                                    "url": [A, B, C, "https://d.example"]})
    assert too_many.status_code == 400 and "Maximum of 3" in too_many.json()["Reason"]
    bad_url = api.post(base, data={"id": "opened", "url": "ftp://files.example/x"})
    assert bad_url.status_code == 400 and "not a valid url" in bad_url.json()["Reason"]
    assert api.post(base, data={"id": "bogus", "url": A}).status_code == 400
    assert api.get(f"{base}/bogus").status_code == 400
    assert api.get("/v3/domains/nope.example/webhooks").status_code == 404


def test_v3_create_refuses_a_type_that_already_has_urls(api, domain) -> None:
    base = f"/v3/domains/{domain}/webhooks"
    assert api.post(base, data={"id": "delivered", "url": A}).status_code == 200
    for body in ({"id": "delivered", "url": B}, {"id": "delivered", "url": A}):
        again = api.post(base, data=body)
        assert again.status_code == 400
        assert again.json() == {"message": "Webhook 'delivered' already exists: change its "
                                           f"URLs with PUT /v3/domains/{domain}/webhooks/"
                                           "delivered"}
    refused_multipart = api.post(base, data={"id": "delivered", "url": [B, C]},
                                 files={"unused": ("x.txt", b"")})
    assert refused_multipart.status_code == 400
    assert api.get(f"{base}/delivered").json() == {"webhook": {"urls": [A]}}  # untouched
    # Another type, even with the same URL, is still free; PUT still replaces.
    assert api.post(base, data={"id": "opened", "url": A}).status_code == 200
    assert api.put(f"{base}/delivered", data={"url": [B, C]}).json()["webhook"] \
        == {"urls": [B, C]}
    # Once a type's URLs are deleted, it can be created again.
    api.delete(f"{base}/delivered")
    assert api.post(base, data={"id": "delivered", "url": C}).status_code == 200


def test_v3_create_without_id_or_url(api, domain) -> None:
    base = f"/v3/domains/{domain}/webhooks"
    for form in ({"url": A}, {"id": "", "url": A}):
        missing = api.post(base, data=form)
        assert missing.status_code == 400
        assert missing.json() == {"message": "Missing parameter 'id'"}
    multipart = api.post(base, data={"url": A}, files={"unused": ("x.txt", b"")})
    assert multipart.json() == {"message": "Missing parameter 'id'"}
    no_url = api.post(base, data={"id": "delivered"})
    assert no_url.status_code == 400 and no_url.json() == {"message": "Missing parameter 'url'"}
    assert api.get(base).json() == {"webhooks": {}}


def test_v4_manages_by_url_on_both_paths(api, domain) -> None:
    v4 = f"/v4/domains/{domain}/webhooks"
    first = api.post(v4, data={"url": A, "event_types": ["delivered", "opened"]})
    assert first.json() == {"webhooks": {"delivered": {"urls": [A]}, "opened": {"urls": [A]}}}
    again = api.post(v4, data={"url": A, "event_types": "opened"})
    assert again.status_code == 400
    assert again.json() == {"Reason": f"Webhook for event type 'opened' with URL '{A}' "
                                      f"already exists"}
    # Mailgun's Python SDK sends v4 requests to the v3 path.
    v3 = f"/v3/domains/{domain}/webhooks"
    assert api.post(v3, data={"url": B, "event_types": "opened"}).status_code == 200
    replaced = api.put(v4, data={"url": A, "event_types": "clicked"})
    assert replaced.json() == {"webhooks": {"opened": {"urls": [B]}, "clicked": {"urls": [A]}}}
    missing = api.put(v4, data={"url": C, "event_types": "clicked"})
    assert missing.status_code == 404 and missing.json() == {"Description": "Webhook not found"}
    assert api.delete(v3, params={"url": f"{A},{B}"}).json() == {"webhooks": {}}


def test_account_webhooks_v1(api, domain) -> None:
    created = api.post("/v1/webhooks", data={"url": A, "event_types": ["delivered", "clicked"],
                                             "description": "all domains"},
                       files={"unused": ("x.txt", b"")})
    assert created.status_code == 200
    webhook_id = created.json()["webhook_id"]
    listed = api.get("/v1/webhooks").json()["webhooks"]
    assert [(w["webhook_id"], w["url"], w["event_types"], w["description"]) for w in listed] \
        == [(webhook_id, A, ["delivered", "clicked"], "all domains")]
    assert listed[0]["created_at"].endswith("Z")
    assert api.get(f"/v1/webhooks/{webhook_id}").json()["url"] == A
    assert api.put(f"/v1/webhooks/{webhook_id}", data={"url": B,
                                                       "event_types": "opened"}).status_code \
        == 200
    assert api.get(f"/v1/webhooks/{webhook_id}").json()["event_types"] == ["opened"]
    assert api.get("/v1/webhooks", params={"webhook_ids": "nope"}).json() == {"webhooks": []}
    assert api.post("/v1/webhooks", data={"url": B, "event_types": "opened"}).status_code \
        == 400  # the same URL twice
    assert api.delete("/v1/webhooks").status_code == 400  # neither ids nor all=true
    assert api.delete(f"/v1/webhooks/{webhook_id}").status_code == 200
    assert api.get(f"/v1/webhooks/{webhook_id}").status_code == 404
    api.post("/v1/webhooks", data={"url": C, "event_types": "opened"})
    assert api.delete("/v1/webhooks", params={"all": "true"}).status_code == 200
    assert api.get("/v1/webhooks").json() == {"webhooks": []}


def test_the_signing_key_is_stable_until_regenerated(api) -> None:
    first = api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
    assert first == api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
    regenerated = api.post("/v5/accounts/http_signing_key").json()
    assert regenerated["message"] == "regenerated HTTP signing key for account"
    assert regenerated["http_signing_key"] not in ("", first)
    assert api.get("/v5/accounts/http_signing_key").json()["http_signing_key"] \
        == regenerated["http_signing_key"]


def test_another_account_sees_none_of_it(api, live, services, domain) -> None:
    api.post(f"/v3/domains/{domain}/webhooks", data={"id": "delivered", "url": A})
    hook = api.post("/v1/webhooks", data={"url": A, "event_types": "opened"}).json()
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        assert intruder.get(f"/v3/domains/{domain}/webhooks").status_code == 404
        assert intruder.delete(f"/v3/domains/{domain}/webhooks/delivered").status_code == 404
        assert intruder.get(f"/v1/webhooks/{hook['webhook_id']}").status_code == 404
        assert intruder.get("/v1/webhooks").json() == {"webhooks": []}
        assert intruder.get("/v5/accounts/http_signing_key").json() \
            != api.get("/v5/accounts/http_signing_key").json()
    with live.client("wrong-key") as anonymous:
        assert anonymous.get("/v1/webhooks").status_code == 401


BAD_URLS = [
    "http://hooks.example:99999/x",  # port out of range
    "http://hooks.example:abc/x",  # port not a number
    "http://hooks.example:0/x",
    "http://[::1",  # unclosed IPv6 literal (was a 500)
    "http://[not-an-address]/x",
    "https:///no-host",
    "ftp://hooks.example/x",
    "http://hooks example/x",  # space in the host
    "http://hooks..example/x",  # an empty label
    "http://" + "a" * 64 + ".example/x",  # a label over 63 characters
    "http://hooks.example/a\tb",
    "https://hooks.example/" + "a" * 4096,  # over the length limit
]


def _refused(reply, key: str) -> bool:  # type: ignore[no-untyped-def]
    return (reply.status_code == 400 and list(reply.json()) == [key]
            and "not a valid url" in reply.json()[key])


def test_invalid_urls_are_refused_by_every_api_and_never_stored(api, domain) -> None:
    v3, v4 = f"/v3/domains/{domain}/webhooks", f"/v4/domains/{domain}/webhooks"
    assert api.post(v4, data={"url": A, "event_types": "opened"}).status_code == 200
    account_hook = api.post("/v1/webhooks", data={"url": B, "event_types": "opened"}).json()
    for url in BAD_URLS:
        assert _refused(api.post(v3, data={"id": "delivered", "url": url}), "Reason"), url
        assert _refused(api.put(f"{v3}/opened", data={"url": url}), "Reason"), url
        assert _refused(api.post(v4, data={"url": url, "event_types": "clicked"}), "Reason")
        assert _refused(api.put(v4, data={"url": url, "event_types": "clicked"}), "Reason")
        assert _refused(api.post("/v1/webhooks", data={"url": url, "event_types": "clicked"}),
                        "message"), url
        assert _refused(api.put(f"/v1/webhooks/{account_hook['webhook_id']}",
                                data={"url": url}), "message"), url
    assert api.get(v3).json() == {"webhooks": {"opened": {"urls": [A]}}}
    assert [h["url"] for h in api.get("/v1/webhooks").json()["webhooks"]] == [B]
    long = api.post(v3, data={"id": "delivered", "url": BAD_URLS[-1]}).json()["Reason"]
    assert len(long) < 200  # the refusal does not echo a huge URL back


def test_valid_urls_of_every_shape_are_accepted(api, domain) -> None:
    v4 = f"/v4/domains/{domain}/webhooks"
    for url in ["http://hooks.example:8080/x?a=1", "https://user:secret@hooks.example/x",
                "http://[2001:db8::1]:65535/x", "https://bücher.example/hook",
                "http://192.0.2.10/x"]:
        assert api.post(v4, data={"url": url, "event_types": "opened"}).status_code == 200, url
        assert api.delete(v4, params={"url": url}).status_code == 200
