"""The parts every role shares, built once per process: settings, database, vault, clock."""

from __future__ import annotations

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
    settings: Settings
    db: Database
    vault: Vault
    clock: Clock
    key_cache: KeyCache = field(init=False)
    # Rung by the API when it queued mail, for the delivery worker of this process (serve)
    delivery_bell: Doorbell = field(init=False)

    def __post_init__(self) -> None:
        self.key_cache = KeyCache(self.clock)
        self.delivery_bell = Doorbell()

    @classmethod
    def start(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK,
              migrate: bool = True) -> Services:
        db = Database(settings.resolved_database_url)
        key_file = settings.resolved_master_key_file
        vault = Vault(load_or_create_keyring(key_file), clock, key_file)
        if migrate:
            db.migrate(vault=vault)  # a revision may seal what was stored in clear
        keep_anchor(db.engine, settings.data_dir / HEAD_FILE)
        return cls(settings, db, vault, clock)

    @property
    def renderer(self) -> RenderPool:
        """The process's rendering processes (see messages.renderer), started when needed."""
        return renderer.shared(self.settings.render_processes, RENDERED_BY)

    def close(self) -> None:
        self.db.dispose()
