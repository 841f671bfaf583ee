"""Issue 15's acceptance: with regions us and eu, each account's data — sent through the
real HTTP API, delivered by the real worker, its suppressions, webhooks and tracked opens —
is stored in its region's database only, and a key of one region sees nothing of the other."""

from __future__ import annotations

import dataclasses
import re
from contextlib import ExitStack
from urllib.parse import urlsplit

from fastapi import FastAPI
from sqlalchemy import select

from mailhaven.accounts.service import key_digest
from mailhaven.config import Settings
from mailhaven.delivery.worker import DeliveryWorker
from mailhaven.events.models import Event
from mailhaven.regional import create_platform_app
from mailhaven.server import region_runners
from mailhaven.services import Platform
from mailhaven.suppressions.models import Suppression
from tests.regions.serving import PlatformServer, dumps, tenant_in
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks

HTML = "<html><body><p>{marker}</p></body></html>"


def test_each_accounts_data_is_only_in_its_regions_database(platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    tenants = {"us": tenant_in(us, "Yankee Widgets", "mg.yankee.test"),
               "eu": tenant_in(eu, "Europa Gmbh", "mg.europa.test")}
    with PlatformServer(platform) as live, Sink() as sink, WebhookReceiver() as hooks, \
            ExitStack() as clients:
        us_api, eu_api, anyone, nobody = (clients.enter_context(live.client(key)) for key in (
            tenants["us"].api_key, tenants["eu"].api_key, None, "key-nobody"))
        for (region, tenant), api in zip(tenants.items(), (us_api, eu_api), strict=True):
            assert api.put(f"/v3/domains/{tenant.domain}/tracking/open",
                           data={"active": "yes"}).status_code == 200
            assert api.post(f"/v3/{tenant.domain}/bounces",
                            data={"address": f"gone-{region}@example.org"}
                            ).status_code == 200
            assert api.post(f"/v3/domains/{tenant.domain}/webhooks",
                            data={"id": "delivered", "url": hooks.url}).status_code == 200
            sent = api.post(f"/v3/{tenant.domain}/messages", data={
                "from": f"news@{tenant.domain}", "to": f"reader-{region}@example.org",
                "subject": "Hello", "html": HTML.format(marker=f"marker-{region}-7f3a"),
                "text": f"marker-{region}-7f3a"})
            assert sent.status_code == 200, sent.text
        for region in ("us", "eu"):
            services = platform.region(region)
            deliver_due(dataclasses.replace(services, settings=services.settings.with_(
                public_url=live.base_url)), sink)
            send_webhooks(services)
        assert sorted(r.rcpt_tos[0] for r in sink.received) == [
            "reader-eu@example.org", "reader-us@example.org"]
        assert len(hooks.received) == 2
        for received in sink.received:  # the recipient opens: the pixel, no key
            html = received.message.get_body(("html",)).get_content()
            [pixel] = re.findall(r'<img[^>]+src="([^"]+)"', html)
            assert anyone.get(urlsplit(pixel).path).status_code == 200

        for region, api in (("us", us_api), ("eu", eu_api)):
            domain = tenants[region].domain
            opened = api.get(f"/v3/{domain}/events", params={"event": "opened"}).json()
            assert [e["recipient"] for e in opened["items"]] == [f"reader-{region}@example.org"]
        # A key of one region sees nothing of the other's (as another account's: 404)
        eu_domain = tenants["eu"].domain
        assert us_api.get(f"/v3/domains/{eu_domain}").status_code == 404
        assert us_api.get(f"/v3/{eu_domain}/events").status_code == 404
        assert us_api.get(f"/v3/{eu_domain}/bounces/gone-eu@example.org").status_code == 404
        assert [d["name"] for d in eu_api.get("/v3/domains").json()["items"]] == [eu_domain]
        assert nobody.get("/v3/domains").status_code == 401
        for region, api in (("us", us_api), ("eu", eu_api)):  # the stored body, in its region
            domain = tenants[region].domain
            [event] = api.get(f"/v3/{domain}/events", params={"event": "delivered"}
                              ).json()["items"]
            stored = api.get(f"/v3/domains/{domain}/messages/{event['storage']['key']}")
            assert stored.status_code == 200 and f"marker-{region}-7f3a" in stored.text
            other = eu_api if region == "us" else us_api
            assert other.get(f"/v3/domains/{domain}/messages/{event['storage']['key']}"
                             ).status_code == 404

    for region in ("us", "eu"):
        with platform.region(region).db.sessions() as session:
            assert session.scalars(select(Event.event).where(Event.event == "opened")).all() \
                == ["opened"]
    found = dumps(platform)
    for region, tenant in tenants.items():
        services = platform.region(region)
        with services.db.sessions() as session:
            sealed = session.scalars(select(Suppression.value_sealed)).one()
        needles = {
            "account id": tenant.account_id.encode(),
            "domain": tenant.domain.encode(),
            "key digest": key_digest(tenant.api_key).encode(),
            "recipient index": services.vault.blind_index(
                tenant.account_id, f"reader-{region}@example.org").encode(),
            "suppression ciphertext": bytes(sealed),
        }
        # bodies are sealed: their words are in no database as written
        assert not any(d.holding(f"marker-{region}-7f3a".encode()) for d in found.values())
        for what, needle in needles.items():
            assert found[region].holding(needle), f"{what} of {region} not in its database"
            for other in found.keys() - {region}:
                assert not found[other].holding(needle), \
                    f"{what} of {region} found in {other}: {found[other].holding(needle)}"


def test_one_region_is_served_by_its_own_app_without_a_dispatcher(services) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(create_platform_app(services.platform), FastAPI)


def test_a_site_of_one_region_answers_only_its_accounts(
        regions_settings: Settings, platform: Platform) -> None:
    """`serve --region eu`: the EU site; a US key is unknown there."""
    tenants = {"us": tenant_in(platform.region("us"), "Yankee Widgets", "mg.yankee.test"),
               "eu": tenant_in(platform.region("eu"), "Europa Gmbh", "mg.europa.test")}
    eu_site = Platform.start(regions_settings, platform.clock, migrate=False, only=["eu"])
    try:
        with PlatformServer(eu_site) as live, live.client(tenants["eu"].api_key) as eu_api, \
                live.client(tenants["us"].api_key) as us_api:
            assert [d["name"] for d in eu_api.get("/v3/domains").json()["items"]] == [
                "mg.europa.test"]
            assert us_api.get("/v3/domains").status_code == 401
    finally:
        eu_site.close()


def test_serve_and_worker_run_each_runner_once_per_region(platform: Platform) -> None:
    runners = [r for s in platform.regions.values() for r in region_runners(s)]
    workers = [r for r in runners if isinstance(r, DeliveryWorker)]
    assert [w.services.region for w in workers] == ["us", "eu"]
    assert len(runners) == 2 * len(region_runners(platform.home))
    assert {type(r) for r in region_runners(platform.home, worker_only=True)} < \
        {type(r) for r in region_runners(platform.home)}
