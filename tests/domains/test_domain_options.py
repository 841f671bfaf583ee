"""message_ttl, encrypt_incoming_message and use_automatic_sender_security on Mailgun's
domain create (`POST /v4/domains`) and update (`PUT /v4/domains/{name}`): each stored and
reported, or refused with a 400, never dropped."""

from __future__ import annotations

import httpx
import pytest

from mailhaven.domains import options

THREE_DAYS = 3 * 86_400  # the default message_bodies retention


def _create(api: httpx.Client, name: str, *, multipart: bool = False,
            **fields: str) -> httpx.Response:
    data = {"name": name, "dkim_key_size": "1024", **fields}
    if multipart:  # as SDKs send a form with files: every field a part
        return api.post("/v4/domains", files=[(k, (None, v)) for k, v in data.items()])
    return api.post("/v4/domains", data=data)


def _shown(api: httpx.Client, name: str) -> dict:
    reply = api.get(f"/v4/domains/{name}")
    assert reply.status_code == 200, reply.text
    return {k: reply.json()["domain"][k] for k in (
        "message_ttl", "encrypt_incoming_message", "use_automatic_sender_security")}


@pytest.mark.parametrize("multipart", [False, True])
def test_create_stores_and_reports_them(api, multipart: bool) -> None:
    reply = _create(api, "kept.example.com", multipart=multipart, message_ttl="7200",
                    encrypt_incoming_message="true", use_automatic_sender_security="false")
    assert reply.status_code == 200, reply.text
    expected = {"message_ttl": 7200, "encrypt_incoming_message": True,
                "use_automatic_sender_security": False}
    assert {k: reply.json()["domain"][k] for k in expected} == expected
    assert _shown(api, "kept.example.com") == expected
    listed = {d["name"]: d for d in api.get("/v4/domains").json()["items"]}
    assert listed["kept.example.com"]["message_ttl"] == 7200


def test_without_them_a_domain_reports_the_accounts_period(api, domain) -> None:
    assert _shown(api, domain) == {"message_ttl": THREE_DAYS, "encrypt_incoming_message": False,
                                   "use_automatic_sender_security": False}
    assert api.put("/v1/privacy/retention", json={"message_bodies": 10}).status_code == 200
    assert _shown(api, domain)["message_ttl"] == 10 * 86_400


def test_update_sets_message_ttl_and_other_updates_keep_it(api, domain) -> None:
    updated = api.put(f"/v4/domains/{domain}", data={"message_ttl": "3600"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["domain"]["message_ttl"] == 3600
    assert api.put(f"/v3/domains/{domain}", data={"spam_action": "tag"}).status_code == 200
    assert _shown(api, domain)["message_ttl"] == 3600
    assert api.put(f"/v4/domains/{domain}", data={"message_ttl": ""}).status_code == 200
    assert _shown(api, domain)["message_ttl"] == 3600  # empty: not given


@pytest.mark.parametrize("value", ["soon", "1.5", "0", "-3600", "3599", str(3651 * 86_400)])
def test_a_message_ttl_out_of_range_is_refused(api, domain, value: str) -> None:
    for reply in (_create(api, "ttl.example.com", message_ttl=value),
                  api.put(f"/v4/domains/{domain}", data={"message_ttl": value})):
        assert reply.status_code == 400
        assert reply.json() == {"message": options.TTL_RANGE}
    assert api.get("/v4/domains/ttl.example.com").status_code == 404
    assert _shown(api, domain)["message_ttl"] == THREE_DAYS


def test_a_message_ttl_longer_than_the_account_keeps_messages_is_refused(api, domain) -> None:
    four_days = str(4 * 86_400)
    refused = _create(api, "long.example.com", message_ttl=four_days)
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(
        f"message_ttl {four_days} is longer than this account keeps stored messages (3 days")
    assert api.get("/v4/domains/long.example.com").status_code == 404
    assert api.put(f"/v4/domains/{domain}", data={"message_ttl": four_days}).status_code == 400
    assert _shown(api, domain)["message_ttl"] == THREE_DAYS

    assert api.put("/v1/privacy/retention", json={"message_bodies": 7}).status_code == 200
    assert api.put(f"/v4/domains/{domain}", data={"message_ttl": four_days}).status_code == 200
    assert _shown(api, domain)["message_ttl"] == 4 * 86_400
    # The account shortens its period below the domain's: the shorter one is what happens,
    # and what the domain says; a later unrelated update is not refused for it.
    assert api.put("/v1/privacy/retention", json={"message_bodies": 2}).status_code == 200
    assert _shown(api, domain)["message_ttl"] == 2 * 86_400
    assert api.put(f"/v4/domains/{domain}", data={"wildcard": "true"}).status_code == 200


def test_automatic_sender_security_is_refused_when_asked_for(api, domain) -> None:
    refused = _create(api, "auto.example.com", use_automatic_sender_security="true")
    assert refused.status_code == 400
    assert refused.json() == {"message": options.SENDER_SECURITY.format(
        name="auto.example.com")}
    assert "CNAME" in refused.json()["message"]
    assert api.get("/v4/domains/auto.example.com").status_code == 404
    put = api.put(f"/v4/domains/{domain}", data={"use_automatic_sender_security": "yes"})
    assert put.status_code == 400 and "not supported" in put.json()["message"]
    assert api.put(f"/v4/domains/{domain}",
                   data={"use_automatic_sender_security": "false"}).status_code == 200
    bad = api.put(f"/v4/domains/{domain}", data={"use_automatic_sender_security": "maybe"})
    assert bad.status_code == 400
    assert bad.json() == {"message": "use_automatic_sender_security must be true or false"}


def test_encrypt_incoming_message_is_set_once_at_creation(api, domain) -> None:
    assert _create(api, "sealed.example.com", encrypt_incoming_message="yes").status_code == 200
    same = api.put("/v4/domains/sealed.example.com", data={"encrypt_incoming_message": "true"})
    assert same.status_code == 200
    changed = api.put("/v4/domains/sealed.example.com",
                      data={"encrypt_incoming_message": "false"})
    assert changed.status_code == 400
    assert changed.json() == {"message": options.ENCRYPT_FIXED.format(
        value="true", name="sealed.example.com")}
    assert _shown(api, "sealed.example.com")["encrypt_incoming_message"] is True
    assert api.put(f"/v4/domains/{domain}",
                   data={"encrypt_incoming_message": "true"}).status_code == 400
    assert _shown(api, domain)["encrypt_incoming_message"] is False
    assert _create(api, "odd.example.com", encrypt_incoming_message="2").status_code == 400


def test_another_account_can_neither_read_nor_change_them(api, second_api, domain) -> None:
    assert api.put(f"/v4/domains/{domain}", data={"message_ttl": "7200"}).status_code == 200
    assert second_api.put(f"/v4/domains/{domain}",
                          data={"message_ttl": "3600"}).status_code == 404
    assert second_api.get(f"/v4/domains/{domain}").status_code == 404
    assert _shown(api, domain)["message_ttl"] == 7200
