"""The caches that hear revocations (`storage.revocations`) on another thread than the one
filling them: a drop never races a put, and a lookup that read the database before a
revocation cannot put the revoked entry back."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event, update

from mailhaven.accounts.service import KeyCache, KeyOwner
from mailhaven.config import parse_trusted_networks
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.services import Services
from mailhaven.storage.revocations import Revoked
from mailhaven.submission.trusted import TrustedNetworks

OWNER = KeyOwner("account-1", "admin")


def test_a_key_looked_up_before_its_revocation_is_not_put_back() -> None:
    cache = KeyCache()
    looked_up_at = cache.generation  # a request reads the key from the database ...
    cache.drop([Revoked("key", "digest-1")])  # ... the revocation is heard meanwhile ...
    cache.put("digest-1", OWNER, looked_up_at=looked_up_at)  # ... and it tries to keep it
    assert cache.get("digest-1") is None
    cache.put("digest-1", OWNER, looked_up_at=cache.generation)  # a lookup begun after
    assert cache.get("digest-1") == OWNER


@pytest.fixture
def eager_switching() -> Iterator[None]:
    """Threads switch every microsecond, so a race shows within a few thousand turns."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_drops_heard_on_another_thread_do_not_race_requests_putting_keys(
        eager_switching: None) -> None:
    cache = KeyCache()
    for n in range(2000):  # an account's keys, which the drops walk through
        cache.put(f"held-{n}", OWNER, looked_up_at=cache.generation)
    failures: list[BaseException] = []
    done = threading.Event()

    def requests() -> None:
        n = 0
        while not done.is_set():
            n += 1
            cache.put(f"new-{n}", KeyOwner(f"account-{n}", "admin"),
                      looked_up_at=cache.generation)

    putting = threading.Thread(target=requests)
    putting.start()
    try:
        for n in range(300):
            try:
                cache.drop([Revoked("account", f"gone-{n}")])
            except RuntimeError as exc:  # "dictionary changed size during iteration"
                failures.append(exc)
                break
    finally:
        done.set()
        putting.join()
    assert failures == []


@pytest.fixture
def verified(services: Services, domain: str) -> str:
    with services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.name == domain).values(state=ACTIVE_DOMAIN))
    return domain


def test_a_trusted_networks_domain_looked_up_before_its_deletion_is_not_kept(
        services: Services, verified: str) -> None:
    settings = services.settings.with_(
        smtp_trusted_networks=parse_trusted_networks(f"127.0.0.0/8={verified}"))
    trusted = TrustedNetworks(dataclasses.replace(services, settings=settings))
    network = trusted.network_of("127.0.0.1")
    assert network is not None
    lookups: list[str] = []

    def deleted_meanwhile(conn, cursor, statement: str, *args: object) -> None:  # type: ignore[no-untyped-def]
        if "FROM domains" in statement:
            lookups.append(statement)
            if len(lookups) == 1:  # the domain's deletion is heard while it is read
                trusted.drop([Revoked("domain", verified)])

    event.listen(services.db.engine, "after_cursor_execute", deleted_meanwhile)
    try:
        trusted.credential(network)
        trusted.credential(network)  # looked up again: the first lookup kept nothing
    finally:
        event.remove(services.db.engine, "after_cursor_execute", deleted_meanwhile)
    assert len(lookups) == 2
