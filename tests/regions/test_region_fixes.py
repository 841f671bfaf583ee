"""Fixes to the split into regions: a name, an address, a database each belong to one
region, and the dispatcher routes what names them to it."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from mailhaven.domains import verify
from mailhaven.domains.models import ACTIVE_DOMAIN, Domain
from mailhaven.domains.service import create_domain
from mailhaven.errors import BadRequest
from mailhaven.regions import service as regions
from mailhaven.services import Platform, Services
from tests.regions.serving import PlatformServer, tenant_in


def _verify(services: Services, name: str) -> None:
    with services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.name == name).values(state=ACTIVE_DOMAIN))


def _copy(services: Services, account_id: str, name: str) -> None:
    """A copy of the name added straight to the region's database (as before the fix)."""
    with services.db.transaction() as session:
        create_domain(session, services.vault, account_id, {"name": name}, services.clock)


def test_the_verified_copy_wins_over_an_unverified_copy_in_another_region(
        platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    tenant_in(eu, "Victim", "mail.victim.test")
    attacker = tenant_in(us, "Attacker", "mg.attacker.test")
    _verify(eu, "mail.victim.test")
    _copy(us, attacker.account_id, "mail.victim.test")
    regions.record(platform, "domain", "mail.victim.test", "us")  # even a stale entry

    assert regions.for_domain(platform, "mail.victim.test") is eu
    assert regions.for_domain(platform, "mail.victim.test") is eu  # the entry rewritten


def test_unverified_copies_stand_for_a_region_only_when_alone(platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    one = tenant_in(us, "One", "mg.one.test")
    tenant_in(eu, "Two", "mg.two.test")
    assert regions.for_domain(platform, "mg.two.test") is eu
    _copy(us, one.account_id, "mg.two.test")
    assert regions.for_domain(platform, "mg.two.test") is None
    assert regions.for_domain(platform, "mg.nobody.test") is None


def test_a_name_verified_in_one_region_is_not_added_nor_verified_in_another(
        platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    tenant_in(eu, "Victim", "mail.victim.test")
    attacker = tenant_in(us, "Attacker", "mg.attacker.test")
    _copy(us, attacker.account_id, "mail.victim.test")  # added before the owner verified
    _verify(eu, "mail.victim.test")

    with PlatformServer(platform) as live, live.client(attacker.api_key) as api:
        answer = api.post("/v4/domains", data={"name": "mail.victim.test"})
        assert answer.status_code == 400 and "taken" in answer.json()["message"]
        answer = api.put("/v4/domains/mail.victim.test/verify")
        assert answer.status_code == 400 and "verified by another" in answer.json()["message"]

    with us.db.transaction() as session:
        with pytest.raises(BadRequest):
            verify.to_check(session, attacker.account_id, "mail.victim.test", us)
        copy = verify.owned_domain(session, attacker.account_id, "mail.victim.test")
        passing = {"valid": verify.VALID}
        verify.apply(session, copy, {"spf": passing, **{verify.dkim_kind(k): passing
                                                        for k in copy.dkim_keys}},
                     us.clock.now(), us)
        assert copy.state != ACTIVE_DOMAIN
    assert regions.for_domain(platform, "mail.victim.test") is eu
