"""An account's routes. What the customer wrote (the expression, the actions, the
description) may name people (`match_recipient("bob@…")`, `forward("ann@…")`), so it is
sealed under a content key of the route's own: deleting the route, or the account, deletes
the key, and nothing of it is left readable, in backups either. The priority and the dates
order evaluation and stay clear."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped

from mailhaven.storage.base import Base, BigId
from mailhaven.storage.inventory import OWNERSHIP, TECHNICAL, classified, column

ROUTE_SEALED = classified(
    "personal", "people a route names", "inbound mail routing",
    "until the route is deleted or the account erased",
    note="ciphertext under the route's content key: its expression, actions and "
         "description, which may name addresses (recipients matched, forward targets)",
)
PRIORITY = classified(
    "non-personal", "none", "inbound mail routing", "life of the route",
    note="a number the customer chooses: the order routes are evaluated in",
)


class Route(Base):
    __tablename__ = "routes"

    # The order routes were created in: ties of priority are evaluated oldest first.
    id: Mapped[int] = column(BigId, primary_key=True, autoincrement=True, data=TECHNICAL)
    public_id: Mapped[str] = column(String(24), unique=True, data=TECHNICAL)  # 24 hex
    account_id: Mapped[str] = column(
        String(24), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, data=OWNERSHIP)
    priority: Mapped[int] = column(Integer, data=PRIORITY)
    # Erasing the key erases the route (ON DELETE CASCADE): nothing is left unreadable.
    content_key_id: Mapped[str] = column(
        String(24), ForeignKey("vault_keys.id", ondelete="CASCADE"), index=True,
        data=TECHNICAL)
    details_sealed: Mapped[bytes] = column(LargeBinary, data=ROUTE_SEALED)
    created_at: Mapped[float] = column(Float, data=TECHNICAL)
