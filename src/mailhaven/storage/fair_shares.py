"""Fair shares of a claim between the accounts with work due (the delivery and webhook queues)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

Account = TypeVar("Account", bound=Hashable)


def fair_shares(oldest: Mapping[Account, float], *, limit: int, capacity: int,
                held: Mapping[Account, int] | None = None) -> dict[Account, int]:
    """How many of a claim's `limit` rows each account due may take first: its share of
    `capacity` (the claimer's concurrency) over the accounts due, less what the claimer holds
    of it already (`held`), the least served and then the longest waiting (`oldest`: each
    account's oldest due time) first. Slots this leaves free go to the oldest rows of anyone,
    so one account alone still gets the whole claim."""
    held = held or {}
    share = math.ceil(capacity / len(oldest)) if oldest else 0
    rooms: dict[Account, int] = {}
    for account in sorted(oldest, key=lambda a: (held.get(a, 0), oldest[a])):
        room = min(share - held.get(account, 0), limit - sum(rooms.values()))
        if room > 0:
            rooms[account] = room
    return rooms
