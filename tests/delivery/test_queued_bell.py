"""Mail queued by one process wakes the delivery workers of the others (`storage.queued`):
a `mailhaven worker` beside `serve` hears each send's commit instead of waiting for its
next poll; a process does not hear its own sends (it rings its own doorbell). A worker
process says it is there, and `serve` hears it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from mailhaven.config import Settings
from mailhaven.sending.service import send
from mailhaven.services import Services
from mailhaven.storage import queued
from tests.scaleout.nodes import Node
from tests.support import create_tenant

DEADLINE = 60.0  # generous: a loaded 2-core machine; the test waits for a ring, not a time

# Another process sends one message through the real send path.
SENDER = """
import sys
from pathlib import Path
from mailhaven.config import Settings
from mailhaven.sending.service import send
from mailhaven.services import Services
data_dir, url, account_id, domain = sys.argv[1:5]
services = Services.start(Settings(data_dir=Path(data_dir), database_url=url,
                                   hostname="mx.mailhaven.test"), migrate=False)
try:
    send(services.db, services.vault, account_id, domain,
         [("from", f"ops@{domain}"), ("to", "ann@example.org"), ("subject", "hi"),
          ("text", "hello")], [], mime=False)
finally:
    services.close()
"""


class Rings:
    def __init__(self) -> None:
        self.count = 0
        self.rung = threading.Event()

    def ring(self) -> None:
        self.count += 1
        self.rung.set()


def test_a_send_in_another_process_wakes_this_processs_workers_and_its_own_does_not(
        services: Services, settings: Settings) -> None:
    tenant = create_tenant(services)
    rings = Rings()
    listener = queued.Listener(services.db, rings.ring).start()
    try:
        assert listener.listening.wait(DEADLINE)
        rings.count = 0  # PostgreSQL rings once on LISTEN: what was queued before it
        rings.rung.clear()
        # this process's own send: its API rings its own doorbell, the listener stays quiet
        send(services.db, services.vault, tenant.account_id, tenant.domain,
             [("from", f"ops@{tenant.domain}"), ("to", "bob@example.org"),
              ("subject", "hi"), ("text", "hello")], [], mime=False)
        subprocess.run([sys.executable, "-c", SENDER, str(settings.data_dir),
                        settings.database_url, tenant.account_id, tenant.domain],
                       check=True, timeout=DEADLINE)
        assert rings.rung.wait(DEADLINE), "the other process's send was not heard"
    finally:
        listener.stop()
    # Heard in order: the own send's notice (left out) came before the other's.
    assert rings.count == 1


def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_serve_leaves_its_mail_to_a_worker_process_while_one_runs(
        services: Services, tmp_path: Path) -> None:
    """A real `mailhaven worker` says it is there; serve's listener hears it (its worker
    then leaves the API's mail to it), and no longer once the worker stopped."""
    listener = queued.Listener(services.db, lambda: None).start()
    node = Node(services, tmp_path / "worker", "worker")
    try:
        assert not listener.workers_alive()
        node.start()
        node.wait_ready()
        _until(listener.workers_alive, "the worker process was not heard")
    finally:
        node.stop()
        try:
            _until(lambda: not listener.workers_alive(), "a stopped worker still counted")
        finally:
            listener.stop()
