"""Templates are the customer's content: sealed at rest under a key of their own, gone with
that key when the template, its domain or the account is deleted (backups then hold
nothing readable of them), and never in a log line."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from mailhaven.templates.models import Template, TemplateVersion
from mailhaven.vault.models import VaultKey

SECRET = "Quarterly-figures-q9x7"  # in every field a customer writes
HEADERS = '{"Subject": "Figures q9x7", "Reply-To": "cfo.q9x7@acme.test"}'


def _store(api, domain: str, name: str = "figures") -> None:  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/templates", data={
        "name": name, "description": f"about {SECRET}", "createdBy": f"{SECRET} author",
        "template": f"<p>{SECRET} {{{{x}}}}</p>", "comment": f"{SECRET} comment",
        "headers": HEADERS})
    assert reply.status_code == 200, reply.text


def _count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _template_keys(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return list(session.scalars(select(Template.content_key_id)))


def _keys_left(services, ids: list[str]) -> int:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).where(VaultKey.id.in_(ids))) or 0


def test_nothing_a_customer_wrote_in_a_template_is_stored_in_clear(api, domain, raw_dump,
                                                                   caplog) -> None:
    caplog.set_level(logging.DEBUG)
    _store(api, domain)
    ok = api.post(f"/v3/{domain}/templates/figures/versions", data={
        "tag": "v2", "template": f"{SECRET} v2", "comment": SECRET, "active": "yes"})
    assert ok.status_code == 200
    assert api.post(f"/v3/{domain}/messages", data={
        "to": "ann@example.org", "template": "figures",
        "t:variables": f'{{"x": "{SECRET}"}}'}).status_code == 200
    assert SECRET in api.get(f"/v3/{domain}/templates/figures/versions").text  # readable
    dump = raw_dump()
    assert dump.holding(SECRET.encode()) == []
    assert dump.holding(b"q9x7") == []
    assert dump.columns["templates.name"] == [b"figures"]  # the name is clear
    assert SECRET not in caplog.text


def test_deleting_a_template_deletes_its_key(api, services, domain) -> None:
    _store(api, domain)
    keys = _template_keys(services)
    assert api.delete(f"/v3/{domain}/templates/figures").status_code == 200
    assert _keys_left(services, keys) == 0
    assert _count(services, Template) == _count(services, TemplateVersion) == 0


def test_deleting_the_domain_deletes_its_templates_and_their_keys(api, services,
                                                                  domain) -> None:
    _store(api, domain, "one")
    _store(api, domain, "two")
    keys = _template_keys(services)
    assert len(keys) == 2
    assert api.delete(f"/v3/domains/{domain}").status_code == 200
    assert _keys_left(services, keys) == 0
    assert _count(services, Template) == _count(services, TemplateVersion) == 0


def test_deleting_the_account_erases_its_templates(api, services, account, domain,
                                                   second_api, second_account) -> None:
    _store(api, domain)
    _store(second_api, second_account.domain)  # another account's stay
    keys = _template_keys(services)
    done = api.delete("/v1/privacy/account", params={"confirm": account[0]})
    assert done.status_code == 200, done.text
    assert _keys_left(services, keys) == 1
    with services.db.sessions() as session:
        left = session.scalars(select(Template.account_id)).all()
    assert left == [second_account.account_id]
    assert _count(services, TemplateVersion) == 1
    reply = second_api.get(f"/v3/{second_account.domain}/templates/figures",
                           params={"active": "yes"})
    assert SECRET in reply.json()["template"]["version"]["template"]
