"""The directory finds the region that holds an account, a domain, a key, and holds none
of their names itself."""

from __future__ import annotations

from sqlalchemy import select

from mailhaven.accounts.service import create_account, key_digest
from mailhaven.domains.service import create_domain
from mailhaven.regions import service as regions
from mailhaven.regions.models import RegionEntry
from mailhaven.services import Platform


def test_each_region_has_its_own_database_and_vault(platform: Platform) -> None:
    us, eu = platform.region("us"), platform.region("eu")
    assert us.db.url != eu.db.url != platform.directory.url
    assert us.vault.blind_index("a", "x@y.test") != eu.vault.blind_index("a", "x@y.test")
    assert platform.home is us and us.main_db is platform.directory is eu.main_db


def test_lookups_find_the_holding_region_and_record_only_keyed_hashes(
        platform: Platform) -> None:
    eu = platform.region("eu")
    with eu.db.transaction() as session:
        issued = create_account(session, eu.vault, name="Euro", email="ops@euro.test",
                                region="eu", clock=eu.clock)
        create_domain(session, eu.vault, issued.account_id, {"name": "mg.euro.test"}, eu.clock)

    assert regions.for_account(platform, issued.account_id) is eu
    assert regions.for_domain(platform, "MG.Euro.test.") is eu
    assert regions.for_key(platform, key_digest(issued.api_key)) is eu
    assert regions.for_key(platform, key_digest("key-nobody")) is None

    with platform.directory.sessions() as session:
        entries = session.scalars(select(RegionEntry)).all()
    assert {e.region for e in entries} == {"eu"} and len(entries) == 3
    stored = repr([(e.entry_index, e.region) for e in entries])
    for secret in (issued.account_id, "mg.euro.test", key_digest(issued.api_key)):
        assert secret not in stored
