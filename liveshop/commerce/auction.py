"""A live auction: bids, proxy (maximum) bids, reserve price, anti-sniping. No I/O.

Every bid is a maximum: the bidder will pay up to ``max_amount`` (``amount`` when no maximum
is given), and liveshop bids for them as others bid, one increment at a time (proxy bidding).
The current price is what the leader pays now: the second-highest maximum plus one increment,
capped at the leader's maximum, never below the leader's own explicit bid or the starting
price, and raised to the reserve as soon as the leader's maximum reaches it. Of two equal
maximums, the earlier wins.

Anti-sniping: in ``extend`` mode a bid in the last ``extend_window`` seconds pushes the end to
``extend_window`` seconds after the bid; ``sudden_death`` never extends.

The auction is rebuilt after a restart by replaying its accepted bids (stored with their
times): replay gives the same state and the same answers, so a retried key gets its answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import AuctionNotLive, BidTooLow, IdempotencyMismatch, InvalidRequest
from liveshop.text import text_problem

MAX_AMOUNT = 10**12
MODES = ("extend", "sudden_death")
HISTORY_SHOWN = 10


@dataclass(frozen=True)
class AuctionTerms:
    auction_id: str
    start_price: int
    min_increment: int
    starts_at: float
    ends_at: float
    currency: str = "USD"
    reserve_price: int | None = None
    mode: str = "extend"
    extend_window: float = 15.0

    def check(self) -> None:
        for name in ("start_price", "min_increment"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequest(f"{name} must be an integer number of minor units")
        if not 0 <= self.start_price <= MAX_AMOUNT or not 1 <= self.min_increment <= MAX_AMOUNT:
            raise InvalidRequest("start_price must be >= 0 and min_increment >= 1")
        if self.reserve_price is not None and not 0 <= self.reserve_price <= MAX_AMOUNT:
            raise InvalidRequest("reserve_price out of range")
        if self.ends_at <= self.starts_at:
            raise InvalidRequest("an auction must end after it starts")
        if self.mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}")
        if not 1 <= self.extend_window <= 600:
            raise InvalidRequest("extend_window must be 1..600 seconds")


@dataclass(frozen=True)
class BidPlaced:
    """An accepted bid request, as stored and replayed."""

    bidder: str
    amount: int
    max_amount: int
    key: str
    at: float


@dataclass
class _Entry:
    bidder: str
    max_amount: int
    floor: int  # their own highest explicit bid
    rank: int  # order in which they reached this maximum (ties: earlier wins)


@dataclass
class Auction:
    terms: AuctionTerms
    ends_at: float = 0.0
    price: int | None = None
    leader: str | None = None
    ended: bool = False
    #: What viewers see as the bid history: ``{bidder, amount, at, auto}``.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Accepted bids since the last drain (what the actor commits).
    pending: list[BidPlaced] = field(default_factory=list)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _answers: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = field(
        default_factory=dict
    )
    _rank: int = 0

    def __post_init__(self) -> None:
        if not self.ends_at:
            self.ends_at = self.terms.ends_at

    # -- reading ------------------------------------------------------------------------------

    def phase(self, now: float) -> str:
        if self.ended or now >= self.ends_at:
            return "ended"
        return "upcoming" if now < self.terms.starts_at else "live"

    def minimum_bid(self) -> int:
        if self.price is None:
            return self.terms.start_price
        return self.price + self.terms.min_increment

    def reserve_met(self) -> bool:
        reserve = self.terms.reserve_price
        return self.price is not None and (reserve is None or self.price >= reserve)

    def view(self, now: float) -> dict[str, Any]:
        t = self.terms
        return {
            "auction_id": t.auction_id,
            "phase": self.phase(now),
            "price": self.price,
            "leader": self.leader,
            "minimum_bid": self.minimum_bid(),
            "currency": t.currency,
            "starts_at": t.starts_at,
            "ends_at": self.ends_at,
            "mode": t.mode,
            "reserve_met": self.reserve_met() if t.reserve_price is not None else None,
            "bids": len(self.history),
            "recent_bids": self.history[-HISTORY_SHOWN:],
        }

    # -- bids ---------------------------------------------------------------------------------

    def bid(
        self, bidder: str, amount: int, max_amount: int | None, key: str, now: float
    ) -> dict[str, Any]:
        """Place a bid (with an optional maximum for proxy bidding)."""
        if text_problem(bidder) is not None or text_problem(key) is not None:
            # Stored with the bid: PostgreSQL must be able to (see Inventory's _storable).
            raise InvalidRequest("a bidder id or key PostgreSQL cannot store")
        ceiling = amount if max_amount is None else max_amount
        fingerprint = (amount, ceiling)
        stored = self._answers.get((bidder, key))
        if stored is not None:
            if stored[0] != fingerprint:
                raise IdempotencyMismatch(f"key {key!r} was used for a different bid")
            return {**stored[1], "replayed": True}
        if not key or len(key) > 64:
            raise InvalidRequest("an idempotency key of 1-64 characters is required")
        for value in (amount, ceiling):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequest("bids are integer numbers of minor units")
        if ceiling < amount or not 0 <= amount <= MAX_AMOUNT or ceiling > MAX_AMOUNT:
            raise InvalidRequest("max_amount must be at least amount (and both in range)")
        phase = self.phase(now)
        if phase != "live":
            raise AuctionNotLive(f"the auction is {phase}")
        mine = self._entries.get(bidder)
        if bidder == self.leader and mine is not None:
            if ceiling <= mine.max_amount:
                raise BidTooLow(
                    "you lead already; a new maximum must be above your current one",
                    details={"minimum": mine.max_amount + 1},
                )
        elif amount < self.minimum_bid():
            raise BidTooLow(
                f"the minimum bid is {self.minimum_bid()}", details={"minimum": self.minimum_bid()}
            )
        self._accept(BidPlaced(bidder, amount, ceiling, key, now))
        leading = self.leader == bidder
        answer = {
            "auction_id": self.terms.auction_id,
            "leading": leading,
            "price": self.price,
            "ends_at": self.ends_at,
        }
        self._answers[(bidder, key)] = (fingerprint, answer)
        return answer

    def _accept(self, placed: BidPlaced) -> None:
        self.pending.append(placed)
        self._rank += 1
        before_leader, before_price = self.leader, self.price
        entry = self._entries.get(placed.bidder)
        if entry is None:
            entry = self._entries[placed.bidder] = _Entry(placed.bidder, 0, 0, self._rank)
        if placed.max_amount > entry.max_amount:
            entry.max_amount = placed.max_amount
            entry.rank = self._rank
        entry.floor = max(entry.floor, placed.amount)
        ranked = sorted(self._entries.values(), key=lambda e: (-e.max_amount, e.rank))
        top = ranked[0]
        if len(ranked) > 1:
            price = min(top.max_amount, ranked[1].max_amount + self.terms.min_increment)
        else:
            price = self.terms.start_price
        price = max(price, top.floor, self.terms.start_price)
        reserve = self.terms.reserve_price
        if reserve is not None and top.max_amount >= reserve and price < reserve:
            price = reserve
        self.leader, self.price = top.bidder, min(price, top.max_amount)
        # The visible history: the bid as placed, then the leader's proxy answering it.
        if placed.bidder != self.leader:
            self._show(placed.bidder, min(placed.max_amount, self.price), placed.at, False)
            self._show(self.leader, self.price, placed.at, True)
        elif self.leader != before_leader or self.price != before_price:
            self._show(self.leader, self.price, placed.at, placed.amount != self.price)
        t = self.terms
        if t.mode == "extend" and self.ends_at - placed.at < t.extend_window:
            self.ends_at = placed.at + t.extend_window

    def _show(self, bidder: str, amount: int, at: float, auto: bool) -> None:
        self.history.append({"bidder": bidder, "amount": amount, "at": at, "auto": auto})

    # -- the end ------------------------------------------------------------------------------

    def close(self, now: float) -> dict[str, Any] | None:
        """Once the time is up: the result (winner and price, or why there is none)."""
        if self.ended or now < self.ends_at:
            return None
        self.ended = True
        return self.result()

    def result(self) -> dict[str, Any]:
        if self.leader is None:
            return {"winner": None, "price": None, "reason": "no bids"}
        if not self.reserve_met():
            return {"winner": None, "price": self.price, "reason": "reserve not met"}
        return {"winner": self.leader, "price": self.price, "reason": "sold"}

    def drain(self) -> list[BidPlaced]:
        placed, self.pending = self.pending, []
        return placed

    @classmethod
    def replay(cls, terms: AuctionTerms, bids: list[BidPlaced], ended: bool) -> Auction:
        """Rebuild from the stored bids, in order: the same state and the same answers."""
        auction = cls(terms)
        for placed in bids:
            max_amount = None if placed.max_amount == placed.amount else placed.max_amount
            auction.bid(placed.bidder, placed.amount, max_amount, placed.key, placed.at)
        auction.pending = []
        auction.ended = ended
        return auction
