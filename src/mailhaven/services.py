"""The parts every role shares, built once per process: settings, databases, vaults, clock.

A `Platform` is the whole installation: the main database (the directory of which region
holds what, and what belongs to no region: the privacy notices, the sub-processors) and one
`Services` per region, each with its own database and vault (SPEC N11). With one region and
no database of its own (the default), the region's database is the main one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mailhaven.accounts.service import KeyCache
from mailhaven.audit import HEAD_FILE, keep_anchor
from mailhaven.clock import SYSTEM_CLOCK, Clock
from mailhaven.config import Settings
from mailhaven.messages import renderer
from mailhaven.messages.renderer import RenderPool
from mailhaven.runner import Doorbell
from mailhaven.storage.db import Database
from mailhaven.vault import Vault, load_or_create_keyring

# What the rendering processes are sent to run, imported before they say they are ready:
# never on a render's budget.
RENDERED_BY = ("mailhaven.sending.stored", "mailhaven.tracking.render",
               "mailhaven.inbound.payload")


@dataclass
class Services:
    """One region's parts: `db` and `vault` hold its accounts' data; `directory` is the
    main database (the same object when the region has no database of its own)."""

    settings: Settings
    db: Database
    vault: Vault
    clock: Clock
    directory: Database | None = None  # None: `db`
    key_cache: KeyCache = field(init=False)
    # Rung by the API when it queued mail, for the delivery worker of this process (serve)
    delivery_bell: Doorbell = field(init=False)
    # The platform these services belong to (set by Platform.start); an init field, so a
    # copy made with dataclasses.replace (tests change settings so) still belongs to it
    in_platform: Platform | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.key_cache = KeyCache(self.clock)
        self.delivery_bell = Doorbell()
        if self.directory is None:
            self.directory = self.db

    @property
    def region(self) -> str:
        return self.settings.region or self.settings.home_region

    @property
    def platform(self) -> Platform:
        if self.in_platform is None:
            raise AttributeError("these services were made outside a Platform")
        return self.in_platform

    @property
    def main_db(self) -> Database:
        """The main database: the directory, notices, sub-processors."""
        assert self.directory is not None
        return self.directory

    @classmethod
    def start(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK,
              migrate: bool = True) -> Services:
        """The home region's services (or those of `settings.region`), within a platform
        that opens every configured region."""
        platform = Platform.start(settings, clock, migrate=migrate)
        return platform.region(settings.region or settings.home_region)

    @property
    def renderer(self) -> RenderPool:
        """The process's rendering processes (see messages.renderer), started when needed."""
        return renderer.shared(self.settings.render_processes, RENDERED_BY)

    def close(self) -> None:
        """Close the whole platform this region belongs to."""
        if self.in_platform is None:
            self.db.dispose()
        else:
            self.in_platform.close()


def _open(settings: Settings, clock: Clock, migrate: bool) -> tuple[Database, Vault]:
    db = Database(settings.resolved_database_url)
    key_file = settings.resolved_master_key_file
    vault = Vault(load_or_create_keyring(key_file), clock, key_file)
    if migrate:
        db.migrate(vault=vault)  # a revision may seal what was stored in clear
    keep_anchor(db.engine, settings.data_dir / HEAD_FILE)
    return db, vault


@dataclass
class Platform:
    """Every region this process opened, and the main database with its vault (whose
    keyed index names the directory's entries: no account id or domain is stored there)."""

    settings: Settings
    directory: Database
    directory_vault: Vault
    regions: dict[str, Services]
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def start(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK, migrate: bool = True,
              only: Iterable[str] | None = None) -> Platform:
        """Open the main database and the regions (all, or `only` these)."""
        settings = settings.with_(region="").check_regions()
        names = list(only) if only is not None else list(settings.regions)
        directory, directory_vault = _open(settings, clock, migrate)
        regions: dict[str, Services] = {}
        for name in names:
            regional = settings.regional(name)
            if regional.resolved_database_url == settings.resolved_database_url:
                db, vault = directory, directory_vault
            else:
                db, vault = _open(regional, clock, migrate)
            regions[name] = Services(regional, db, vault, clock, directory=directory)
        platform = cls(settings, directory, directory_vault, regions, clock)
        for services in regions.values():
            services.in_platform = platform
        return platform

    @property
    def home(self) -> Services:
        return self.region(self.settings.home_region)

    def region(self, name: str) -> Services:
        try:
            return self.regions[name]
        except KeyError:
            raise ValueError(f"region {name!r} is not open in this process (open: "
                             f"{', '.join(self.regions) or 'none'})") from None

    def close(self) -> None:
        for services in self.regions.values():
            if services.db is not self.directory:
                services.db.dispose()
        self.directory.dispose()
