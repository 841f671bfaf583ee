"""The recipient's request form, used by an attacker (issue 10, findings 4 and 16): limits per
client network, per domain and per mailbox, however the mailbox is spelt; and the same
answer after the same work whether or not the named domain is a customer's."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from sqlalchemy import event, func, select

from mailhaven import audit
from mailhaven.accounts.models import Account
from mailhaven.audit.models import AuditEntry
from mailhaven.domains.models import Domain
from mailhaven.privacy import form
from mailhaven.privacy.models import PrivacyRequest
from tests.support import Sink, deliver_due

CLIENT_LIMITED = {"message": "Too many privacy requests from your network: try again in an "
                             "hour"}
DOMAIN_LIMITED = {"message": "Too many privacy requests for this domain today: try again "
                             "tomorrow"}


def _ask(client, domain: str, email: str, ip: str = "198.51.100.1"):  # type: ignore[no-untyped-def]
    """As a reverse proxy on loopback forwards it (uvicorn trusts it for X-Forwarded-For)."""
    return client.post("/v1/privacy/requests", headers={"X-Forwarded-For": ip},
                       data={"type": "access", "email": email, "domain": domain})


def test_one_client_network_gets_ten_requests_an_hour(live, services, clock,
                                                      domain) -> None:
    with Sink() as sink, live.client() as anonymous:
        for n in range(form.PER_CLIENT_PER_HOUR):
            assert _ask(anonymous, domain, f"user{n}@example.org", "203.0.113.7"
                        ).status_code == 202
        refused = _ask(anonymous, domain, "late@example.org", "203.0.113.7")
        assert (refused.status_code, refused.json()) == (429, CLIENT_LIMITED)
        # IPv6: a /64 is one client (it is what one subscriber gets).
        for n in range(form.PER_CLIENT_PER_HOUR):
            assert _ask(anonymous, domain, f"v6-{n}@example.org", f"2001:db8:1:2::{n + 1}"
                        ).status_code == 202
        assert _ask(anonymous, domain, "v6-late@example.org", "2001:db8:1:2:ffff::1"
                    ).status_code == 429
        assert _ask(anonymous, domain, "other@example.org", "203.0.113.8").status_code == 202
        clock.advance(3600)
        assert _ask(anonymous, domain, "next@example.org", "203.0.113.7").status_code == 202
        deliver_due(services, sink)
    assert len(sink.received) == 2 * form.PER_CLIENT_PER_HOUR + 2  # none for the refused


def test_one_domain_gets_so_many_requests_a_day_known_or_not(live, services, monkeypatch,
                                                             domain) -> None:
    monkeypatch.setattr(form, "PER_DOMAIN_PER_DAY", 4)
    with live.client() as anonymous:
        for name in (domain, "not-a-customer.example"):
            answers = [_ask(anonymous, name, f"u{n}@example.org", f"192.0.2.{n}")
                       for n in range(5)]
            assert [a.status_code for a in answers] == [202] * 4 + [429]
            assert answers[-1].json() == DOMAIN_LIMITED
            # Spelt otherwise, it is the same domain.
            assert _ask(anonymous, name.upper() + ".", "x@example.org", "192.0.2.99"
                        ).status_code == 429


def test_one_mailbox_gets_three_links_a_day_however_it_is_spelt(api, live, services,
                                                                domain) -> None:
    spellings = ["ann@bücher.example", "ＡＮＮ@bücher.example", "an\u00adn@BÜCHER.example",
                 "a\u200bnn+privacy@bücher.example", "ann@xn--bcher-kva.example"]
    with live.client() as anonymous:
        for email in spellings:
            assert _ask(anonymous, domain, email).status_code == 202
    mailed = api.get(f"/v3/{domain}/events", params={"event": "accepted"}).json()["items"]
    assert len(mailed) == form.PER_MAILBOX_PER_DAY
    # What was refused cost nothing: no key, no request, no audit row.
    assert len(api.get("/v1/privacy/requests").json()["items"]) == form.PER_MAILBOX_PER_DAY
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) \
            == form.PER_MAILBOX_PER_DAY


def _statements(services):  # type: ignore[no-untyped-def]
    """Each SQL statement the engine runs, as (verb, table): what work a request did."""
    seen: list[tuple[str, str]] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        verb = statement.split(None, 1)[0].upper()
        table = re.search(r"\b(?:INTO|UPDATE|FROM)\s+\"?(\w+)", statement)
        seen.append((verb, table.group(1) if table else statement[:40]))

    return seen, record


@pytest.mark.parametrize("right", ["access", "erasure"])
def test_an_unknown_domain_gets_the_same_answer_after_the_same_work(api, live, services,
                                                                    domain, right) -> None:
    def count(model) -> int:  # type: ignore[no-untyped-def]
        with services.db.sessions() as session:
            return session.scalar(select(func.count()).select_from(model))

    before = (count(Account), count(Domain), count(PrivacyRequest))
    answers, work = {}, {}
    with Sink() as sink, live.client() as anonymous:
        for name in (domain, "not-a-customer.example"):
            _ask(anonymous, name, f"warm-up@{name}")  # first-use costs aside
            seen, record = _statements(services)
            event.listen(services.db.engine, "before_cursor_execute", record)
            try:
                reply = anonymous.post("/v1/privacy/requests", data={
                    "type": right, "email": "zoe@example.org", "domain": name})
            finally:
                event.remove(services.db.engine, "before_cursor_execute", record)
            answers[name] = (reply.status_code, reply.headers["content-type"], reply.content)
            work[name] = Counter(seen)
        deliver_due(services, sink)
    assert answers[domain] == answers["not-a-customer.example"]
    assert answers[domain][0] == 202
    # Everything done for the customer's domain was done for the unknown one (on a stand-in
    # account and domain, then rolled back)…
    assert work[domain] - work["not-a-customer.example"] == Counter()
    extra = work["not-a-customer.example"] - work[domain]
    assert extra == Counter({("INSERT", "accounts"): 1, ("INSERT", "domains"): 1,
                             ("SELECT", "domains"): 1})  # the stand-in, and the lookup again
    assert work[domain][("INSERT", "privacy_requests")] == 1
    assert work[domain][("INSERT", "messages")] == 1
    # … and nothing of it was kept: only the customer's two links went out.
    after = (count(Account), count(Domain), count(PrivacyRequest))
    assert after == (before[0], before[1], before[2] + 2)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [f"warm-up@{domain}",
                                                            "zoe@example.org"]
    with services.db.sessions() as session:  # the stand-in's audit row never counted
        assert audit.verify(session, services.vault,
                            audit.HeadAnchor(services.settings.data_dir / audit.HEAD_FILE)
                            ) == []


def test_a_name_no_domain_can_have_is_refused_before_anything_is_done(live) -> None:
    with live.client() as anonymous:
        for name in ("x" * 300 + ".example", "not a domain", ""):
            refused = _ask(anonymous, name, "ann@example.org")
            assert (refused.status_code, refused.json()) == (400, {
                "message": "domain is required: the domain name that sent you email"})


def test_one_ipv6_site_counts_as_a_few_clients(live, services, monkeypatch, domain) -> None:
    """A subscriber holds a /48: 65,536 /64s, each a client; the site is counted too."""
    monkeypatch.setattr(form, "PER_SITE_PER_HOUR", 12)
    with live.client() as anonymous:
        for n in range(12):
            assert _ask(anonymous, domain, f"s{n}@example.org", f"2001:db8:5:{n}::1"
                        ).status_code == 202
        refused = _ask(anonymous, domain, "s-late@example.org", "2001:db8:5:99::1")
        assert (refused.status_code, refused.json()) == (429, CLIENT_LIMITED)
        assert _ask(anonymous, domain, "t@example.org", "2001:db8:6::1").status_code == 202


def test_requests_naming_other_domains_do_not_use_up_a_persons_own(api, live, services,
                                                                    domain) -> None:
    """A stranger files for the victim at made-up domains; the victim's own request to the
    customer is still mailed."""
    with live.client() as anonymous:
        for n in range(form.PER_MAILBOX_PER_DAY + 2):
            assert _ask(anonymous, f"made-up-{n}.example", "vic@example.org",
                        f"198.51.100.{n + 10}").status_code == 202
        assert _ask(anonymous, domain, "vic@example.org", "198.51.100.99").status_code == 202
    assert len(api.get(f"/v3/{domain}/events", params={"event": "accepted"}).json()["items"]) == 1


def test_the_form_reads_only_a_small_body(live, domain) -> None:
    with live.client() as anonymous:
        reply = anonymous.post("/v1/privacy/requests", data={
            "type": "access", "email": "ann@example.org", "domain": domain,
            "name": "x" * (form.MAX_FORM_BYTES + 1)})
    assert reply.status_code == 413
    assert reply.json() == {"message": "request size exceeds 64KiB limit"}
