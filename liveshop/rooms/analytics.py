"""Live host analytics for one show: counters fed by the events the show produces, read
every second by the host and operators, stored per show for reports. No I/O, no clock.

Viewers come from the gateways' reports (current) and joins/leaves (unique viewers, watch
time); chat and reactions from the room's events; add-to-carts, orders and GMV from
commerce. Rates are per minute over the last minute. Money is integer minor units, per
currency (a show may sell in several).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from liveshop.rooms.room import MAX_UNIQUE_VIEWERS  # counted exactly up to the room's cap

RATE_WINDOW = 60.0


@dataclass
class ProductStats:
    views: int = 0  # times it was pinned to the viewers then watching (impressions)
    add_to_carts: int = 0
    units_sold: int = 0


@dataclass
class ShowAnalytics:
    show_id: str
    started_at: float
    viewers: int = 0
    peak_viewers: int = 0
    chat_messages: int = 0
    reactions: int = 0
    add_to_carts: int = 0
    orders: int = 0
    gmv_minor: Counter[str] = field(default_factory=Counter)
    products: dict[str, ProductStats] = field(default_factory=dict)
    _joined: dict[str, float] = field(default_factory=dict)  # user -> when they came
    _joined_sum: float = 0.0  # sum of _joined's times: watch time so far without a scan
    _watched: float = 0.0  # seconds watched by viewers who left
    _uniques: set[str] = field(default_factory=set)
    _buyers: set[str] = field(default_factory=set)
    _chat_times: deque[float] = field(default_factory=deque)
    _reaction_times: deque[tuple[float, int]] = field(default_factory=deque)
    _orders_seen: set[str] = field(default_factory=set)

    # -- inputs ----------------------------------------------------------------------------

    def viewer_count(self, viewers: int) -> None:
        self.viewers = viewers
        self.peak_viewers = max(self.peak_viewers, viewers)

    def joined(self, user_id: str, now: float) -> None:
        if len(self._uniques) < MAX_UNIQUE_VIEWERS:
            self._uniques.add(user_id)
        if user_id not in self._joined:
            self._joined[user_id] = now
            self._joined_sum += now

    def left(self, user_id: str, now: float) -> None:
        since = self._joined.pop(user_id, None)
        if since is not None:
            self._joined_sum -= since
            self._watched += max(0.0, now - since)

    def chat(self, now: float) -> None:
        self.chat_messages += 1
        self._chat_times.append(now)

    def reacted(self, count: int, now: float) -> None:
        self.reactions += count
        self._reaction_times.append((now, count))

    def pinned(self, product_id: str) -> None:
        self._product(product_id).views += self.viewers

    def added_to_cart(self, product_id: str, quantity: int) -> None:
        self.add_to_carts += quantity
        self._product(product_id).add_to_carts += quantity

    def ordered(
        self,
        order_id: str,
        buyer_id: str,
        lines: list[tuple[str, int]],
        total_minor: int,
        currency: str,
    ) -> None:
        """An order placed from the show; counted once per order id (events may repeat)."""
        if order_id in self._orders_seen:
            return
        self._orders_seen.add(order_id)
        self.orders += 1
        self._buyers.add(buyer_id)
        self.gmv_minor[currency] += total_minor
        for product_id, quantity in lines:
            self._product(product_id).units_sold += quantity

    def _product(self, product_id: str) -> ProductStats:
        return self.products.setdefault(product_id, ProductStats())

    # -- output ----------------------------------------------------------------------------

    def report(self, now: float) -> dict[str, Any]:
        edge = now - RATE_WINDOW
        while self._chat_times and self._chat_times[0] < edge:
            self._chat_times.popleft()
        while self._reaction_times and self._reaction_times[0][0] < edge:
            self._reaction_times.popleft()
        watching = max(0.0, len(self._joined) * now - self._joined_sum)
        uniques = len(self._uniques)
        return {
            "show_id": self.show_id,
            "at": now,
            "viewers": self.viewers,
            "peak_viewers": self.peak_viewers,
            "unique_viewers": uniques,
            "average_watch_seconds": round((self._watched + watching) / uniques, 1)
            if uniques
            else 0.0,
            "chat_per_minute": len(self._chat_times),
            "reactions_per_minute": sum(n for _, n in self._reaction_times),
            "chat_messages": self.chat_messages,
            "reactions": self.reactions,
            "add_to_carts": self.add_to_carts,
            "orders": self.orders,
            "gmv_minor": dict(self.gmv_minor),
            # Buyers per unique viewer, in basis points (integers, like money).
            "conversion_bps": len(self._buyers) * 10_000 // uniques if uniques else 0,
            "products": {
                p: {"views": s.views, "add_to_carts": s.add_to_carts, "units_sold": s.units_sold}
                for p, s in self.products.items()
            },
        }
