"""Live host analytics for one show: counters fed by what the show's room and commerce say,
read every second by the host and operators, stored per show for reports. No I/O, no clock.

Three inputs, each from a source that cannot double count:

* ``sample``: the room's exact viewer count (the gateways report it every second), its
  unique viewers and its reaction total. Watch time is the integral of viewers over time, so
  the average watch time is viewer-seconds per unique viewer.
* ``room_events``: the room's events since the last offset seen (chat messages, product
  pins); offsets make each event count once.
* ``sales``: orders, buyers, GMV and units per product, and add-to-carts, as totals read from
  PostgreSQL (absolute, so re-reading them is harmless).

Rates are per minute over the last minute. Money is integer minor units, per currency.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

RATE_WINDOW = 60.0
#: A sample further apart than this from the previous one (the actor was down) adds no
#: viewer-seconds: nobody knows how many watched meanwhile.
MAX_SAMPLE_GAP = 10.0


@dataclass
class ProductStats:
    views: int = 0  # viewers watching when it was pinned (impressions)
    add_to_carts: int = 0
    units_sold: int = 0


@dataclass
class ShowAnalytics:
    show_id: str
    viewers: int = 0
    peak_viewers: int = 0
    unique_viewers: int = 0
    viewer_seconds: float = 0.0
    chat_messages: int = 0
    reactions: int = 0
    add_to_carts: int = 0
    orders: int = 0
    buyers: int = 0
    gmv_minor: dict[str, int] = field(default_factory=dict)
    products: dict[str, ProductStats] = field(default_factory=dict)
    #: The room's counters when the show started (a room may host several shows).
    base_uniques: int | None = None
    base_reactions: int | None = None
    #: The last room event counted, and its epoch.
    offset: int = 0
    epoch: str | None = None
    _sampled_at: float | None = None
    _chat_times: deque[float] = field(default_factory=deque)
    _reaction_samples: deque[tuple[float, int]] = field(default_factory=deque)

    # -- inputs ----------------------------------------------------------------------------

    def sample(self, now: float, viewers: int, unique_viewers: int, reactions_total: int) -> None:
        if self._sampled_at is not None and 0 < now - self._sampled_at <= MAX_SAMPLE_GAP:
            self.viewer_seconds += self.viewers * (now - self._sampled_at)
        self._sampled_at = now
        self.viewers = viewers
        self.peak_viewers = max(self.peak_viewers, viewers)
        if self.base_uniques is None or self.base_reactions is None:
            self.base_uniques, self.base_reactions = unique_viewers, reactions_total
        self.unique_viewers = max(self.unique_viewers, unique_viewers - self.base_uniques)
        self.reactions = max(self.reactions, reactions_total - self.base_reactions)
        self._reaction_samples.append((now, self.reactions))

    def room_events(self, events: list[dict[str, Any]]) -> None:
        """The room's events after :attr:`offset`, in order (of :attr:`epoch`)."""
        for event in events:
            if event["offset"] <= self.offset:
                continue
            self.offset = event["offset"]
            if event["kind"] == "chat":
                self.chat_messages += 1
                self._chat_times.append(event["ts"] / 1000)
            elif event["kind"] == "pin":
                self._product(event["product"]["product_id"]).views += self.viewers

    def skip_to(self, epoch: str, offset: int) -> None:
        """Count from ``offset`` on: the events before it were counted, are of kinds not
        counted, or are out of reach (the room's history moved on, or its epoch changed)."""
        self.epoch, self.offset = epoch, offset

    def sales(
        self,
        *,
        orders: int,
        buyers: int,
        gmv_minor: dict[str, int],
        units: dict[str, int],
        carts: dict[str, int],
    ) -> None:
        """Totals for the show so far (orders placed in its room during it)."""
        self.orders, self.buyers, self.gmv_minor = orders, buyers, dict(gmv_minor)
        self.add_to_carts = sum(carts.values())
        for product_id in set(units) | set(carts) | set(self.products):
            stats = self._product(product_id)
            stats.units_sold = units.get(product_id, 0)
            stats.add_to_carts = carts.get(product_id, 0)

    def _product(self, product_id: str) -> ProductStats:
        return self.products.setdefault(product_id, ProductStats())

    # -- output ----------------------------------------------------------------------------

    def report(self, now: float) -> dict[str, Any]:
        edge = now - RATE_WINDOW
        while self._chat_times and self._chat_times[0] < edge:
            self._chat_times.popleft()
        while len(self._reaction_samples) > 1 and self._reaction_samples[1][0] <= edge:
            self._reaction_samples.popleft()
        oldest = self._reaction_samples[0][1] if self._reaction_samples else self.reactions
        uniques = self.unique_viewers
        return {
            "show_id": self.show_id,
            "at": now,
            "viewers": self.viewers,
            "peak_viewers": self.peak_viewers,
            "unique_viewers": uniques,
            "average_watch_seconds": round(self.viewer_seconds / uniques, 1) if uniques else 0.0,
            "chat_per_minute": len(self._chat_times),
            "reactions_per_minute": self.reactions - oldest,
            "chat_messages": self.chat_messages,
            "reactions": self.reactions,
            "add_to_carts": self.add_to_carts,
            "orders": self.orders,
            "buyers": self.buyers,
            "gmv_minor": dict(self.gmv_minor),
            # Buyers per unique viewer, in basis points (integers, like money).
            "conversion_bps": min(10_000, self.buyers * 10_000 // uniques) if uniques else 0,
            "products": {
                p: {"views": s.views, "add_to_carts": s.add_to_carts, "units_sold": s.units_sold}
                for p, s in self.products.items()
            },
        }

    def to_state(self) -> dict[str, Any]:
        """What a restarted channel actor needs to carry on counting."""
        return {
            "show_id": self.show_id,
            "peak_viewers": self.peak_viewers, "unique_viewers": self.unique_viewers,
            "viewer_seconds": self.viewer_seconds, "chat_messages": self.chat_messages,
            "reactions": self.reactions, "base_uniques": self.base_uniques,
            "base_reactions": self.base_reactions, "offset": self.offset, "epoch": self.epoch,
            "views": {p: s.views for p, s in self.products.items() if s.views},
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ShowAnalytics:
        show = cls(
            state["show_id"],
            peak_viewers=int(state.get("peak_viewers", 0)),
            unique_viewers=int(state.get("unique_viewers", 0)),
            viewer_seconds=float(state.get("viewer_seconds", 0.0)),
            chat_messages=int(state.get("chat_messages", 0)),
            reactions=int(state.get("reactions", 0)),
            base_uniques=state.get("base_uniques"), base_reactions=state.get("base_reactions"),
            offset=int(state.get("offset", 0)), epoch=state.get("epoch"),
        )  # fmt: skip
        for product_id, views in (state.get("views") or {}).items():
            show._product(product_id).views = int(views)
        return show
