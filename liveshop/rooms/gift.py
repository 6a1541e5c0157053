"""Virtual gifts in a room: a paid gift becomes an event once, and a per-show leaderboard.

The money moves in PostgreSQL before the room hears of the gift (see storage/wallets.py); the
room only publishes receipts, each exactly once, keyed by the send id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import InvalidRequest

LEADERBOARD_SIZE = 10
#: The built-in catalog item a tip is made of (migration 0003): one coin each.
TIP_GIFT = "tip"
#: Send ids remembered with their event offsets, to answer replays without a second event.
REMEMBERED_SENDS = 10_000


@dataclass(frozen=True)
class Gift:
    """A catalog gift, priced in whole coins."""

    gift_id: str
    name: str
    price_coins: int
    image_url: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.price_coins, bool) or not isinstance(self.price_coins, int):
            raise InvalidRequest("price_coins must be an integer")
        if self.price_coins <= 0:
            raise InvalidRequest("price_coins must be positive")

    def card(self) -> dict[str, Any]:
        return {
            "id": self.gift_id,
            "name": self.name,
            "price_coins": self.price_coins,
            "image_url": self.image_url,
        }


@dataclass(frozen=True)
class GiftReceipt:
    send_id: int
    sender_id: str
    sender_name: str
    recipient_id: str
    gift_id: str
    gift_name: str
    quantity: int
    coins: int
    #: The sender's balance after this send (for a replay: the balance now).
    balance: int
    replayed: bool = False
    event_offset: int | None = None


@dataclass
class GiftBoard:
    totals: Counter[str] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)
    published: dict[int, int] = field(default_factory=dict)  # send id -> event offset

    def record(self, receipt: GiftReceipt, offset: int) -> None:
        self.totals[receipt.sender_id] += receipt.coins
        self.names[receipt.sender_id] = receipt.sender_name
        self.published[receipt.send_id] = offset
        while len(self.published) > REMEMBERED_SENDS:
            self.published.pop(next(iter(self.published)))

    def top(self) -> list[dict[str, Any]]:
        return [
            {"user": {"id": user, "name": self.names.get(user, user)}, "coins": coins}
            for user, coins in self.totals.most_common(LEADERBOARD_SIZE)
        ]

    def to_state(self) -> dict[str, Any]:
        return {"totals": dict(self.totals), "names": self.names}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GiftBoard:
        return cls(Counter(state.get("totals") or {}), dict(state.get("names") or {}))
