"""One address normalisation, the vault's: an address spelled differently (case, spaces)
finds the same subject, suppression, events and privacy records wherever it is looked up;
a Message-ID too. A lookup that misses never puts the address in its error (issue 11)."""

from __future__ import annotations

import pytest

from tests.support import Sink, deliver_due

SPELLINGS = ("zelda@example.com", "Zelda@Example.COM", " ZELDA@example.com ")


def test_a_subject_key_is_found_under_any_spelling(services, account) -> None:
    vault = services.vault
    with services.db.transaction() as session:
        ids = {vault.subject(session, account[0], spelling).id for spelling in SPELLINGS}
        keys = vault.subjects(session, account[0], ["Zelda@Example.COM"])
        assert len(ids) == 1 and {keys[s].id for s in SPELLINGS} == ids
        assert vault.find_subject(session, account[0], " zelda@EXAMPLE.com").id in ids
    assert len({vault.blind_index(account[0], s) for s in SPELLINGS}) == 1


def test_a_missing_subject_key_does_not_name_the_address(services, account) -> None:
    with services.db.transaction() as session:
        keys = services.vault.subjects(session, account[0], ["ann@example.org"])
    with pytest.raises(KeyError) as missing:
        keys["zelda@example.com"]
    assert "zelda" not in str(missing.value) and "zelda" not in repr(missing.value)
    assert keys.get("zelda@example.com") is None and "zelda@example.com" not in keys


def test_suppressions_events_and_consents_answer_to_any_spelling(api, services,
                                                                 domain) -> None:
    assert api.post(f"/v3/{domain}/bounces", data={"address": SPELLINGS[1]}).status_code == 200
    for spelling in SPELLINGS:
        found = api.get(f"/v3/{domain}/bounces/{spelling.replace('@', '%40')}")
        assert found.status_code == 200, spelling
    api.post("/v1/privacy/consents", data={"email": SPELLINGS[2], "purpose": "tracking",
                                           "granted": "yes"})
    with Sink() as sink:
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": f"shop@{domain}", "to": SPELLINGS[2].strip(), "subject": "Order",
            "text": "Shipped", "h:Message-ID": "<Order-77.Zelda@shop.test>"})
        assert reply.status_code == 200
        deliver_due(services, sink)
    assert sink.received == []  # the bounce listed under another spelling stops it

    for spelling in SPELLINGS:
        events = api.get(f"/v3/{domain}/events", params={"recipient": spelling}).json()
        assert [e["event"] for e in events["items"]] == ["failed", "accepted"], spelling
        assert events["items"][0]["reason"] == "suppress-bounce"
        consents = api.get("/v1/privacy/consents", params={"email": spelling}).json()
        assert [c["purpose"] for c in consents["items"]] == ["tracking"], spelling
    for message_id in ("<Order-77.Zelda@shop.test>", " order-77.zelda@SHOP.test "):
        events = api.get(f"/v3/{domain}/events", params={"message-id": message_id}).json()
        assert len(events["items"]) == 2, message_id


def test_an_erasure_under_another_spelling_erases_the_subject(api, services, domain) -> None:
    with Sink() as sink:
        api.post(f"/v3/{domain}/messages", data={
            "from": f"shop@{domain}", "to": SPELLINGS[0], "subject": "Order", "text": "t"})
        deliver_due(services, sink)
    assert api.delete("/v1/privacy/recipients/%20ZELDA%40Example.com").status_code == 200
    for spelling in SPELLINGS:
        assert api.get(f"/v3/{domain}/events", params={"recipient": spelling}
                       ).json()["items"] == []
