"""The head anchor: the newest committed row's id and hash, kept in a file beside the data.

A hash chain shows an edited, removed or reordered row, but not the newest rows cut off the
end: what remains is still a valid chain. So each commit that appends records its head in
`$DATA_DIR/audit-head`, outside the database, where someone who can only write to the
database cannot roll it back. A row the anchor names must exist with the hash it names.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

HEAD_FILE = "audit-head"
_STAGED = "mailhaven.audit.staged_head"
log = logging.getLogger(__name__)


class Head(NamedTuple):
    id: int
    hash: str


class HeadAnchor:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def read(self) -> Head | None:
        """The recorded head; None before the first append. ValueError when unreadable."""
        try:
            data = json.loads(self.path.read_text())
            return Head(int(data["id"]), str(data["hash"]))
        except FileNotFoundError:
            return None
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{self.path} is not an audit head: {exc}") from None

    def advance(self, head: Head) -> None:
        """Record `head` unless a newer one is recorded already: the processes of one data
        directory append in turn but finish their commits in any order."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # conflicts across processes and threads alike
            current = self.read()
            if current is not None and current.id >= head.id:
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps({"id": head.id, "hash": head.hash}) + "\n")
            os.replace(tmp, self.path)  # a crash leaves the old head or the new, never half


# Which anchor each database's appends keep; set once per process by `Services.start`.
_ANCHORS: WeakKeyDictionary[Engine, HeadAnchor] = WeakKeyDictionary()


def keep_anchor(engine: Engine, path: Path) -> HeadAnchor:
    """After each commit through `engine` that appended audit rows, record the new head."""
    anchor = HeadAnchor(path)
    _ANCHORS[engine] = anchor
    return anchor


def anchor_for(session: Session) -> HeadAnchor | None:
    bind = session.get_bind()
    return _ANCHORS.get(bind) if isinstance(bind, Engine) else None


def stage(session: Session, anchor: HeadAnchor, head: Head) -> None:
    """Advance `anchor` to `head` once the session's transaction commits."""
    session.info[_STAGED] = (anchor, head)


@event.listens_for(Session, "after_commit")
def _advance_after_commit(session: Session) -> None:
    staged = session.info.pop(_STAGED, None)
    if staged is None:
        return
    anchor, head = staged
    try:
        anchor.advance(head)
    except (OSError, ValueError) as exc:  # the rows are committed; only the anchor lags
        log.warning("audit log: could not record the head in %s: %s", anchor.path, exc)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_STAGED, None)
