"""Restriction, objection and withdrawn consent are enforced where processing happens:
the send path, the tracking decision, the stats fold (SPEC N6)."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

from tests.support import Sink, deliver_due

ANN = "ann@example.org"


def _ask(api, right: str, **fields: str) -> None:  # type: ignore[no-untyped-def]
    done = api.post("/v1/privacy/requests", data={"type": right, "email": ANN, **fields})
    assert done.status_code == 201 and done.json()["state"] == "completed", done.text


def _send(api, domain: str, category: str | None = None) -> None:  # type: ignore[no-untyped-def]
    data = {"from": f"news@{domain}", "to": ANN, "subject": "s", "text": "t",
            "html": "<p>t</p>"}
    if category:
        data["o:category"] = category
    assert api.post(f"/v3/{domain}/messages", data=data).status_code == 200


def _outcomes(api, domain: str) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    items = api.get(f"/v3/{domain}/events", params={"ascending": "yes"}).json()["items"]
    return [(e["event"], e.get("reason")) for e in items if e["event"] != "accepted"]


def test_a_restricted_recipient_gets_no_mail_at_all(api, services, domain) -> None:
    _ask(api, "restriction")
    with Sink() as sink:
        _send(api, domain)
        _send(api, domain, "transactional")
        deliver_due(services, sink)
    assert sink.received == []
    assert _outcomes(api, domain) == [("failed", "suppress-restriction")] * 2
    _ask(api, "restriction", lift="yes")
    with Sink() as sink:
        _send(api, domain)
        deliver_due(services, sink)
    assert len(sink.received) == 1


def test_an_objection_stops_marketing_but_not_service_messages(api, services,
                                                                domain) -> None:
    _ask(api, "objection")
    with Sink() as sink:
        _send(api, domain)
        _send(api, domain, "transactional")
        deliver_due(services, sink)
    assert len(sink.received) == 1
    assert sorted(_outcomes(api, domain)) == [("delivered", None),
                                              ("failed", "suppress-objection")]
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"a@{domain}", "to": ANN, "text": "t", "o:category": "newsletter"}
    ).status_code == 400


def test_a_withdrawn_marketing_consent_stops_marketing_at_once(api, services,
                                                               domain) -> None:
    assert api.post("/v1/privacy/consents", data={
        "email": ANN, "purpose": "marketing-email", "granted": "no",
        "source": "preference-centre"}).status_code == 201
    with Sink() as sink:
        _send(api, domain)
        deliver_due(services, sink)
    assert sink.received == []
    assert _outcomes(api, domain) == [("failed", "suppress-unsubscribe")]


def test_the_latest_consent_counts_a_withdrawal_given_back_lets_marketing_through(
        api, services, domain) -> None:  # type: ignore[no-untyped-def]
    for granted in ("no", "yes"):  # at the same (frozen) time: the ledger's order decides
        assert api.post("/v1/privacy/consents", data={
            "email": ANN, "purpose": "marketing-email", "granted": granted,
            "source": "preference-centre"}).status_code == 201
    with Sink() as sink:
        _send(api, domain)
        deliver_due(services, sink)
    assert len(sink.received) == 1
    assert _outcomes(api, domain) == [("delivered", None)]


def test_no_tracking_and_no_analytics_for_an_objecting_recipient(api, live, services,
                                                                 domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/open", data={"active": "yes"})
    api.put(f"/v3/domains/{domain}/tracking/click", data={"active": "yes"})
    tracked = dataclasses.replace(services, settings=services.settings.with_(
        public_url=live.base_url))
    with Sink() as sink:
        _send(api, domain, "transactional")
        deliver_due(tracked, sink)
        [pixel] = re.findall(r'<img[^>]+src="([^"]+)"',
                             sink.received[0].message.get_body(("html",)).get_content())
        _ask(api, "objection")  # after the mail went out, before it is opened
        api.get(urlsplit(pixel).path)
        _send(api, domain, "transactional")
        deliver_due(tracked, sink)
    assert "<img" not in sink.received[1].message.get_body(("html",)).get_content()
    assert [e for e, _ in _outcomes(api, domain)].count("opened") == 0
    stats = api.get(f"/v3/{domain}/stats/total", params={
        "event": ["accepted", "delivered"], "duration": "1d"}).json()["stats"]
    # The first message was counted before the objection; the second is not.
    assert sum(s["delivered"]["total"] for s in stats) == 1
    assert sum(s["accepted"]["total"] for s in stats) == 1


def test_a_consent_label_can_not_smuggle_an_address(api) -> None:
    bad = api.post("/v1/privacy/consents", data={"email": ANN, "purpose": "tracking",
                                                 "granted": "no", "source": ANN})
    assert bad.status_code == 400
