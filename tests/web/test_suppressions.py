"""`/app/suppressions`: a domain's lists searched, changed, imported and exported in the
panel, as the Suppressions API sees them; only by roles that may, only in one's account."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from tests.web.helpers import add_user, csrf_of, http_log_in

DOMAIN = "mg.acme.test"


def _actions(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_bounce_is_added_found_by_search_and_removed(page, live, services, api, domain,
                                                       signed_in) -> None:
    signed_in()
    api.post(f"/v3/{domain}/bounces", data={"address": "old@example.org"})
    page.goto(f"{live.base_url}/app/suppressions")
    assert page.get_by_label("Domain").input_value() == DOMAIN
    page.get_by_label("Address", exact=True).fill("Bob@Example.org")
    page.get_by_label("SMTP code").fill("551")
    page.get_by_label("Error").fill("mailbox unavailable")
    page.get_by_role("button", name="Add").click()
    page.wait_for_load_state()
    assert "Added to bounces." in page.content()
    found = api.get(f"/v3/{domain}/bounces/bob@example.org").json()
    assert found["code"] == "551" and found["error"] == "mailbox unavailable"

    page.get_by_label("Find an address").fill("bob@example.org")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "mailbox unavailable" in rows.inner_text()
    assert "old@example.org" not in page.content()

    page.get_by_role("button", name="Remove bob@example.org").click()
    page.wait_for_load_state()
    assert "Removed from bounces." in page.content()
    assert api.get(f"/v3/{domain}/bounces/bob@example.org").status_code == 404
    assert "old@example.org" in page.content()  # the whole list again

    page.get_by_role("link", name="Unsubscribes").click()
    page.get_by_label("Address", exact=True).fill("carol@example.org")
    page.get_by_label("Tag").fill("news")
    page.get_by_role("button", name="Add").click()
    page.wait_for_load_state()
    assert api.get(f"/v3/{domain}/unsubscribes/carol@example.org").json()["tags"] == ["news"]
    page.get_by_label("Address", exact=True).fill("not an address")
    page.get_by_role("button", name="Add").click()
    page.wait_for_load_state()
    assert page.locator(".error").is_visible()  # the API's refusal, on the page
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested
    assert _actions(services).count("web.suppression_added") == 2
    assert "web.suppression_deleted" in _actions(services)


def test_csv_import_and_export(live, services, api, account, domain) -> None:
    add_user(services, account[0], email="ann@acme.test")
    csv_file = (b"address,code,error\nann@example.org,550,gone\n"
                b"bob@example.org,552,=HYPERLINK(\"x\")\n")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/suppressions").text)
        answer = client.post(f"/app/suppressions/{domain}/bounces/import",
                             data={"csrf_token": token},
                             files={"file": ("bounces.csv", csv_file, "text/csv")})
        assert answer.status_code == 303
        assert "Imported 2" in client.get(answer.headers["location"]).text
        items = api.get(f"/v3/{domain}/bounces").json()["items"]
        assert sorted(i["address"] for i in items) == ["ann@example.org", "bob@example.org"]

        bad = client.post(f"/app/suppressions/{domain}/bounces/import",
                          data={"csrf_token": token},
                          files={"file": ("b.csv", b"address,code\nx@example.org,5x\n",
                                          "text/csv")})
        assert bad.status_code == 400 and "3-digit" in bad.text

        huge = client.post(f"/app/suppressions/{domain}/bounces/import",
                           data={"csrf_token": token},
                           files={"file": ("h.csv", b"a" * (5 * 2**20), "text/csv")})
        assert huge.status_code == 413 and "larger than 4 MiB" in huge.text

        allowed = client.post(f"/app/suppressions/{domain}/whitelists/add",
                              data={"csrf_token": token, "domain": "partner.example",
                                    "reason": "our partner"})
        assert allowed.status_code == 303
        exported = client.get(f"/app/suppressions/{domain}/whitelists/export")
        assert exported.text.splitlines()[1].startswith(",partner.example,our partner,")

        exported = client.get(f"/app/suppressions/{domain}/bounces/export")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        lines = exported.text.splitlines()
        assert lines[0] == "address,code,error,created_at"
        assert lines[1].startswith("ann@example.org,550,gone,")
        assert "'=HYPERLINK" in lines[2]  # never run as a formula by a spreadsheet
        # What is exported imports again (here into the complaints list).
        again = client.post(f"/app/suppressions/{domain}/complaints/import",
                            data={"csrf_token": token},
                            files={"file": ("c.csv", exported.content, "text/csv")})
        assert again.status_code == 303
    assert len(api.get(f"/v3/{domain}/complaints").json()["items"]) == 2
    assert _actions(services).count("web.suppressions_imported") == 2


def test_an_analyst_may_look_but_not_change(live, services, api, account, domain) -> None:
    api.post(f"/v3/{domain}/bounces", data={"address": "ann@example.org"})
    add_user(services, account[0], email="ana@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ana@acme.test")
        shown = client.get("/app/suppressions")
        assert shown.status_code == 200 and "ann@example.org" in shown.text
        assert "Remove" not in shown.text and "Import a CSV file" not in shown.text
        token = csrf_of(shown.text)
        for action in ("add", "delete", "import"):
            refused = client.post(f"/app/suppressions/{domain}/bounces/{action}",
                                  data={"csrf_token": token, "address": "x@example.org",
                                        "value": "ann@example.org"})
            assert refused.status_code == 403, action
            assert "Your role does not allow this" in refused.text
        assert client.get(f"/app/suppressions/{domain}/bounces/export").status_code == 200
        for kind in ("unsubscribes", "complaints", "whitelists"):
            assert client.get(f"/app/suppressions?kind={kind}").status_code == 200
    assert api.get(f"/v3/{domain}/bounces/ann@example.org").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(live, services, api, account,
                                                  domain) -> None:
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        refused = client.post(f"/app/suppressions/{domain}/bounces/add",
                              data={"address": "x@example.org"})
        assert refused.status_code == 403
    assert api.get(f"/v3/{domain}/bounces/x@example.org").status_code == 404


def test_another_account_sees_nothing_of_ours(live, services, api, domain,
                                              second_account) -> None:
    api.post(f"/v3/{domain}/bounces", data={"address": "ann@example.org"})
    add_user(services, second_account.account_id, email="bea@bee.test")
    with live.client() as client:
        http_log_in(client, "bea@bee.test")
        own = client.get("/app/suppressions")
        assert own.status_code == 200 and second_account.domain in own.text
        assert domain not in own.text and "ann@example.org" not in own.text
        assert client.get(f"/app/suppressions?domain={domain}").status_code == 404
        assert client.get(f"/app/suppressions/{domain}/bounces/export").status_code == 404
        token = csrf_of(own.text)
        for action in ("add", "delete"):
            answer = client.post(f"/app/suppressions/{domain}/bounces/{action}",
                                 data={"csrf_token": token, "address": "x@example.org",
                                       "value": "ann@example.org"})
            assert answer.status_code == 404, action
        assert client.get("/app/suppressions?kind=nonsense").status_code == 404
    assert api.get(f"/v3/{domain}/bounces/ann@example.org").status_code == 200


def test_a_long_list_is_paged(live, services, api, account, domain) -> None:
    from mailhaven.web.suppressions import PAGE_SIZE

    addresses = [f"user{n:03}@example.org" for n in range(PAGE_SIZE + 5)]
    assert api.post(f"/v3/{domain}/complaints",
                    json=[{"address": a} for a in addresses]).status_code == 200
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        first = client.get("/app/suppressions", params={"kind": "complaints"}).text
        assert addresses[PAGE_SIZE - 1] in first and addresses[PAGE_SIZE] not in first
        assert "Previous" not in first
        [next_link] = re.findall(r'href="([^"]+)">Next', first)
        second = client.get(html.unescape(next_link)).text
        assert addresses[PAGE_SIZE] in second and addresses[-1] in second
        assert addresses[0] not in second and "Next" not in second
        [previous] = re.findall(r'href="([^"]+)">← Previous', second)
        again = client.get(html.unescape(previous)).text
        assert addresses[0] in again and addresses[PAGE_SIZE] not in again
