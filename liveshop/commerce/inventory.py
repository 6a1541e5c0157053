"""One SKU's stock: what a SKU actor decides, without I/O or clock reads.

Quantities: ``on_hand`` units are in the warehouse and not yet sold; ``reserved`` of them are
held for carts; ``available = on_hand - reserved`` may be reserved or bought; ``sold`` counts
units committed to orders. Every change appends a :class:`LedgerEntry`; a buy also places an
order (:class:`OrderPlaced`). The actor drains them as :class:`Changes` and writes them in one
transaction with the new counts, so the ledger always explains the numbers and no purchase is
acknowledged without its order row.

Buys and reservations carry idempotency keys, scoped to the buyer, with payment-API
semantics: the same key with the same request returns the stored answer (and changes
nothing); the same key with a different request is refused with ``idempotency_mismatch``.
Refusals (out of stock, over the limit) change nothing and are not stored: the key may be
tried again. Answers are kept :data:`ANSWER_TTL` seconds.

A flash deal is a window on the SKU: while it is live, buys and holds get its price, units
taken in the deal are capped at its quantity, and each buyer at its per-buyer limit.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import (
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InvalidRequest,
    LimitExceeded,
    OutOfStock,
    ReservationNotFound,
    StaleQuantity,
)
from liveshop.text import text_problem

MAX_QUANTITY = 1_000_000
#: The longest hold: an auction's unit is held from its start until after its end (up to
#: 7 days ahead, 7 days long, and a day to settle).
MAX_HOLD_SECONDS = 30 * 24 * 3600.0
MAX_PRICE_MINOR = 10**12
#: How long an idempotency key's answer is kept (as payment APIs do: a day).
ANSWER_TTL = 24 * 3600.0
MAX_KEY_CHARS = 64


@dataclass(frozen=True)
class LedgerEntry:
    """One change of stock. Deltas are signed; ``ref`` names the reservation, order or key."""

    sku: str
    kind: str  # restock | adjust | reserve | release | expire | commit | buy
    on_hand: int
    reserved: int
    sold: int
    ref: str
    at: float


@dataclass(frozen=True)
class FlashDeal:
    deal_id: str
    price_minor: int
    starts_at: float
    ends_at: float
    quantity: int
    limit_per_buyer: int | None = None
    #: The room running the deal: only buys and holds made there get its price, and only
    #: it ends the deal (None: a deal for every room, set by a service).
    room_id: str | None = None

    def phase(self, now: float) -> str:
        if now < self.starts_at:
            return "upcoming"
        return "live" if now < self.ends_at else "ended"

    def to_wire(self) -> dict[str, Any]:
        return {
            "deal_id": self.deal_id,
            "price_minor": self.price_minor,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "quantity": self.quantity,
            "limit_per_buyer": self.limit_per_buyer,
            "room_id": self.room_id,
        }


@dataclass
class Reservation:
    rid: str
    buyer_id: str
    quantity: int
    expires_at: float
    price_minor: int = 0
    deal_id: str | None = None
    key: str = ""
    ttl: float = 0.0
    room_id: str | None = None

    def answer(self) -> dict[str, Any]:
        return {
            "reservation": self.rid,
            "quantity": self.quantity,
            "expires_at": self.expires_at,
            "price_minor": self.price_minor,
            "deal_id": self.deal_id,
        }


@dataclass(frozen=True)
class OrderPlaced:
    """The order a buy creates (status ``pending``: awaiting payment)."""

    order_id: str
    buyer_id: str
    key: str
    sku: str
    product_id: str
    quantity: int
    price_minor: int
    currency: str
    deal_id: str | None
    room_id: str | None
    at: float

    @property
    def total_minor(self) -> int:
        return self.quantity * self.price_minor

    def answer(self) -> dict[str, Any]:
        return {
            "order": self.order_id,
            "sku": self.sku,
            "quantity": self.quantity,
            "price_minor": self.price_minor,
            "total_minor": self.total_minor,
            "currency": self.currency,
            "deal_id": self.deal_id,
        }


@dataclass(frozen=True)
class ClosedHold:
    rid: str
    status: str  # released | expired | committed
    order_id: str | None
    at: float


@dataclass
class Changes:
    """Everything decided since the last drain: what one commit writes."""

    ledger: list[LedgerEntry] = field(default_factory=list)
    orders: list[OrderPlaced] = field(default_factory=list)
    holds: list[Reservation] = field(default_factory=list)
    closed: list[ClosedHold] = field(default_factory=list)
    #: Refs of stock returns applied (their rows are marked applied in the same commit).
    returned: list[str] = field(default_factory=list)
    #: The SKU's row changed (counts, deal, settings).
    state: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.ledger or self.orders or self.holds or self.closed or self.returned or self.state
        )


def buy_fingerprint(quantity: int, room_id: str | None) -> tuple[Any, ...]:
    return ("buy", quantity, room_id)


def reserve_fingerprint(quantity: int, ttl: float, room_id: str | None) -> tuple[Any, ...]:
    return ("reserve", quantity, float(ttl), room_id)


@dataclass
class Stored:
    """What the actor loads on start: the SKU's row, its open holds, the answers of recent
    keys and how many units each buyer bought (in all, and in the current deal)."""

    state: dict[str, Any]
    holds: list[Reservation] = field(default_factory=list)
    answers: list[tuple[str, str, tuple[Any, ...], dict[str, Any], float]] = field(
        default_factory=list
    )
    bought: dict[str, int] = field(default_factory=dict)
    deal_bought: dict[str, int] = field(default_factory=dict)


# -- commands (what gateways and the API send a SKU actor) -----------------------------------


@dataclass(frozen=True)
class Buy:
    buyer_id: str
    quantity: int
    key: str
    room_id: str | None = None


@dataclass(frozen=True)
class Reserve:
    buyer_id: str
    quantity: int
    key: str
    ttl: float
    room_id: str | None = None


@dataclass(frozen=True)
class Release:
    rid: str
    #: None: an operator or service; else only the holder may release.
    buyer_id: str | None = None


@dataclass(frozen=True)
class Commit:
    rid: str
    order_id: str


@dataclass(frozen=True)
class ReturnStock:
    """Units of a cancelled (or returned) order come back: ``ref`` names the return."""

    ref: str
    buyer_id: str
    quantity: int
    deal_id: str | None = None


@dataclass(frozen=True)
class Restock:
    quantity: int
    ref: str


@dataclass(frozen=True)
class Adjust:
    expected: int
    on_hand: int
    ref: str


@dataclass(frozen=True)
class StartDeal:
    deal: FlashDeal


@dataclass(frozen=True)
class EndDeal:
    #: The room asking: a deal is ended by the room that runs it (None: a service).
    room_id: str | None = None


@dataclass(frozen=True)
class Configure:
    """Operator settings: the regular price and the per-buyer limit (None: unchanged)."""

    price_minor: int | None = None
    limit_per_buyer: int | None = None
    clear_limit: bool = False


SkuCommand = (
    Buy | Reserve | Release | Commit | ReturnStock | Restock | Adjust | StartDeal | EndDeal
    | Configure
)  # fmt: skip


@dataclass
class Inventory:
    sku: str
    product_id: str = ""
    price_minor: int = 0
    currency: str = "USD"
    on_hand: int = 0
    sold: int = 0
    #: Units one buyer may hold (reserved + bought) at most; None: no limit.
    limit_per_buyer: int | None = None
    deal: FlashDeal | None = None
    #: Units sold in the current deal.
    deal_sold: int = 0
    reservations: dict[str, Reservation] = field(default_factory=dict)
    #: Units bought per buyer (committed holds and direct buys), for the per-buyer limit.
    bought: dict[str, int] = field(default_factory=dict)
    deal_bought: dict[str, int] = field(default_factory=dict)
    #: (buyer, key) -> (request fingerprint, stored answer, when).
    answers: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any], float]] = field(
        default_factory=dict
    )
    #: Numbers reservation and order ids; durable, so ids are never reused.
    next_seq: int = 1
    changes: Changes = field(default_factory=Changes)
    #: Derived from ``reservations`` (kept as running totals).
    reserved: int = field(default=0, init=False)
    deal_reserved: int = field(default=0, init=False)
    _holding: dict[str, int] = field(default_factory=dict, init=False)
    _deal_holding: dict[str, int] = field(default_factory=dict, init=False)
    #: (expires_at, rid) of holds, earliest first: the clock looks at the head four times a
    #: second instead of scanning every hold. Entries of closed holds are skipped lazily.
    _expiries: list[tuple[float, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for hold in self.reservations.values():
            self._count_hold(hold, +1)
        self._expiries = sorted((r.expires_at, r.rid) for r in self.reservations.values())

    # -- reading ------------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def counts(self) -> dict[str, int]:
        return {
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "sold": self.sold,
        }

    def live_deal(self, now: float) -> FlashDeal | None:
        deal = self.deal
        return deal if deal is not None and deal.phase(now) == "live" else None

    def deal_remaining(self) -> int:
        if self.deal is None:
            return 0
        return max(0, min(self.available, self.deal.quantity - self.deal_sold - self.deal_reserved))

    def snapshot(self, now: float) -> dict[str, Any]:
        """What viewers see: the stock counter and the deal with its countdown."""
        view: dict[str, Any] = {
            "sku": self.sku,
            "product_id": self.product_id,
            "available": self.available,
            "sold": self.sold,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "deal": None,
        }
        if self.deal is not None:
            view["deal"] = {
                **self.deal.to_wire(),
                "phase": self.deal.phase(now),
                "sold": self.deal_sold,
                "remaining": self.deal_remaining(),
            }
        return view

    def held(self, buyer_id: str) -> int:
        """Units a buyer holds or has bought: what the per-buyer limit counts."""
        return self.bought.get(buyer_id, 0) + self._holding.get(buyer_id, 0)

    # -- commands -----------------------------------------------------------------------------

    def apply(self, cmd: SkuCommand, now: float) -> dict[str, Any]:
        """One command; raises a :class:`~liveshop.errors.ClientError` (changing nothing)
        when it is refused."""
        match cmd:
            case Buy():
                return self.buy(cmd.key, cmd.buyer_id, cmd.quantity, now, room_id=cmd.room_id)
            case Reserve():
                return self.reserve(
                    cmd.key, cmd.buyer_id, cmd.quantity, cmd.ttl, now, room_id=cmd.room_id
                )
            case Release():
                return self.release(cmd.rid, now, buyer_id=cmd.buyer_id)
            case Commit():
                return self.commit(cmd.rid, cmd.order_id, now)
            case ReturnStock():
                return self.take_back(cmd, now)
            case Restock():
                return self.restock(cmd.quantity, cmd.ref, now)
            case Adjust():
                return self.adjust(cmd.expected, cmd.on_hand, cmd.ref, now)
            case StartDeal():
                return self.start_deal(cmd.deal, now)
            case EndDeal():
                return self.end_deal(now, room_id=cmd.room_id)
            case Configure():
                return self.configure(cmd, now)
        raise InvalidRequest(f"unknown SKU command {type(cmd).__name__}")

    def reserve(
        self,
        key: str,
        buyer_id: str,
        quantity: int,
        ttl: float,
        now: float,
        *,
        room_id: str | None = None,
    ) -> dict[str, Any]:
        """Hold ``quantity`` units for ``ttl`` seconds (a cart hold) at today's price."""
        _storable(buyer_id, room_id)
        fingerprint = reserve_fingerprint(quantity, ttl, room_id)
        stored = self._replay(buyer_id, key, fingerprint)
        if stored is not None:
            return stored
        _check_quantity(quantity)
        if not 0 < ttl <= MAX_HOLD_SECONDS:
            raise InvalidRequest(f"ttl must be 0..{MAX_HOLD_SECONDS:.0f} seconds")
        deal = self._take(buyer_id, quantity, now, room_id)
        rid = f"{self.sku}~r{self._seq()}"
        # Milliseconds: the answer must read back from PostgreSQL exactly as it was given.
        hold = Reservation(
            rid, buyer_id, quantity, round(now + ttl, 3),
            price_minor=deal.price_minor if deal else self.price_minor,
            deal_id=deal.deal_id if deal else None, key=key, ttl=float(ttl), room_id=room_id,
        )  # fmt: skip
        self.reservations[rid] = hold
        heapq.heappush(self._expiries, (hold.expires_at, rid))
        self._count_hold(hold, +1)
        self.changes.holds.append(hold)
        self._log("reserve", 0, quantity, 0, rid, now)
        return self._store(buyer_id, key, fingerprint, hold.answer(), now)

    def buy(
        self, key: str, buyer_id: str, quantity: int, now: float, *, room_id: str | None = None
    ) -> dict[str, Any]:
        """First-paid-first-served: take ``quantity`` available units straight into ``sold``
        and place the order."""
        _storable(buyer_id, room_id)
        fingerprint = buy_fingerprint(quantity, room_id)
        stored = self._replay(buyer_id, key, fingerprint)
        if stored is not None:
            return stored
        _check_quantity(quantity)
        deal = self._take(buyer_id, quantity, now, room_id)
        order = OrderPlaced(
            order_id=f"{self.sku}~o{self._seq()}", buyer_id=buyer_id, key=key, sku=self.sku,
            product_id=self.product_id, quantity=quantity,
            price_minor=deal.price_minor if deal else self.price_minor, currency=self.currency,
            deal_id=deal.deal_id if deal else None, room_id=room_id, at=now,
        )  # fmt: skip
        self._count_bought(buyer_id, quantity, order.deal_id)
        self.on_hand -= quantity
        self.sold += quantity
        self.changes.orders.append(order)
        self._log("buy", -quantity, 0, quantity, order.order_id, now)
        return self._store(buyer_id, key, fingerprint, order.answer(), now)

    def commit(self, rid: str, order_id: str, now: float) -> dict[str, Any]:
        """A hold still in time becomes sold (its order was paid)."""
        _storable(order_id)
        hold = self._reservation(rid)
        if hold.expires_at <= now:  # not yet swept by expire(): it is gone all the same
            raise ReservationNotFound(f"reservation {rid!r} expired")
        self._close(hold, "committed", now, order_id)
        self._count_bought(hold.buyer_id, hold.quantity, hold.deal_id)
        self.on_hand -= hold.quantity
        self.sold += hold.quantity
        self._log("commit", -hold.quantity, -hold.quantity, hold.quantity, order_id, now)
        return {"reservation": rid, "order": order_id, "sold": hold.quantity}

    def release(self, rid: str, now: float, *, buyer_id: str | None = None) -> dict[str, Any]:
        """The buyer gave the hold back (removed from cart, payment failed)."""
        hold = self._reservation(rid)
        if buyer_id is not None and hold.buyer_id != buyer_id:
            raise ReservationNotFound(f"no reservation {rid!r} of yours")
        self._close(hold, "released", now)
        self._log("release", 0, -hold.quantity, 0, rid, now)
        return {"reservation": rid, "released": hold.quantity}

    def expire(self, now: float) -> list[str]:
        """Holds past their time go back to available; returns their ids."""
        gone: list[str] = []
        while (head := self.next_expiry()) is not None and head <= now:
            _, rid = heapq.heappop(self._expiries)
            hold = self.reservations[rid]
            self._close(hold, "expired", now)
            self._log("expire", 0, -hold.quantity, 0, rid, now)
            gone.append(rid)
        return gone

    def next_expiry(self) -> float | None:
        """When the earliest open hold lapses (None: no holds)."""
        expiries = self._expiries
        while expiries and expiries[0][1] not in self.reservations:
            heapq.heappop(expiries)  # released or committed since
        return expiries[0][0] if expiries else None

    def next_due(self, now: float) -> float | None:
        """When the SKU's clock next has work: the earliest hold lapsing, or the deal
        starting or ending (None: nothing is timed). A SKU at rest sleeps until then."""
        times = [t for t in (self.next_expiry(),) if t is not None]
        deal = self.deal
        if deal is not None:
            if now < deal.starts_at:
                times.append(deal.starts_at)
            elif now < deal.ends_at:
                times.append(deal.ends_at)
        return min(times) if times else None

    def prune_answers(self, now: float) -> int:
        """Forget answers older than :data:`ANSWER_TTL` (bounded memory for a 24/7 SKU)."""
        old = [k for k, (_, _, at) in self.answers.items() if at <= now - ANSWER_TTL]
        for k in old:
            del self.answers[k]
        return len(old)

    def take_back(self, cmd: ReturnStock, now: float) -> dict[str, Any]:
        """Sold units come back on hand (an order cancelled or returned). The actor applies
        each return once: its row is marked applied in the same commit."""
        _storable(cmd.ref, cmd.buyer_id, cmd.deal_id)
        _check_quantity(cmd.quantity)
        if cmd.quantity > self.sold:
            raise Conflict(f"only {self.sold} units are sold; cannot take {cmd.quantity} back")
        if self.on_hand + cmd.quantity > MAX_QUANTITY:
            raise InvalidRequest(f"on hand would exceed {MAX_QUANTITY}")
        self.on_hand += cmd.quantity
        self.sold -= cmd.quantity
        _bump(self.bought, cmd.buyer_id, -min(cmd.quantity, self.bought.get(cmd.buyer_id, 0)))
        if self._in_deal(cmd.deal_id):
            self.deal_sold -= min(cmd.quantity, self.deal_sold)
            mine = self.deal_bought.get(cmd.buyer_id, 0)
            _bump(self.deal_bought, cmd.buyer_id, -min(cmd.quantity, mine))
        self.changes.returned.append(cmd.ref)
        self._log("return", cmd.quantity, 0, -cmd.quantity, cmd.ref, now)
        return self.counts()

    # -- operators ----------------------------------------------------------------------------

    def restock(self, quantity: int, ref: str, now: float) -> dict[str, Any]:
        _storable(ref)
        _check_quantity(quantity)
        if self.on_hand + quantity > MAX_QUANTITY:
            raise InvalidRequest(f"on hand would exceed {MAX_QUANTITY}")
        self.on_hand += quantity
        self._log("restock", quantity, 0, 0, ref, now)
        return self.counts()

    def adjust(self, expected: int, on_hand: int, ref: str, now: float) -> dict[str, Any]:
        """Compare-and-set the on-hand count (a stock take): refused if ``expected`` is stale
        or if fewer units than are reserved would remain."""
        _storable(ref)
        if expected != self.on_hand:
            raise StaleQuantity(
                f"on hand is {self.on_hand}, not {expected}", details={"on_hand": self.on_hand}
            )
        if not 0 <= on_hand <= MAX_QUANTITY:
            raise InvalidRequest(f"on_hand must be 0..{MAX_QUANTITY}")
        if on_hand < self.reserved:
            raise Conflict(f"{self.reserved} units are reserved; on hand cannot go below")
        self._log("adjust", on_hand - self.on_hand, 0, 0, ref, now)
        self.on_hand = on_hand
        return self.counts()

    def start_deal(self, deal: FlashDeal, now: float) -> dict[str, Any]:
        current = self.deal
        if current is not None and current.phase(now) == "live":
            raise Conflict(f"deal {current.deal_id!r} is live; end it first")
        if (
            current is not None
            and current.phase(now) == "upcoming"
            and current.room_id is not None
            and current.room_id != deal.room_id
        ):
            raise Conflict(f"deal {current.deal_id!r} is coming up in another room")
        _storable(deal.deal_id, deal.room_id)
        _check_price(deal.price_minor)
        _check_quantity(deal.quantity)
        if deal.ends_at <= deal.starts_at or deal.ends_at <= now:
            raise InvalidRequest("a deal must end after it starts, in the future")
        if deal.limit_per_buyer is not None:
            _check_quantity(deal.limit_per_buyer)
        self.deal = deal
        self.deal_sold = 0
        self.deal_bought = {}
        # Holds from an earlier deal keep their price but no longer count against this one.
        self._recount_deal_holds()
        self.changes.state = True
        return self.snapshot(now)

    def end_deal(self, now: float, *, room_id: str | None = None) -> dict[str, Any]:
        deal = self.deal
        if deal is None or deal.phase(now) == "ended":
            raise Conflict("no deal is upcoming or live")
        if room_id is not None and deal.room_id is not None and deal.room_id != room_id:
            raise Forbidden("this deal runs in another room; only that room ends it")
        self.deal = dataclasses.replace(deal, starts_at=min(deal.starts_at, now), ends_at=now)
        self.changes.state = True
        return self.snapshot(now)

    def configure(self, cmd: Configure, now: float) -> dict[str, Any]:
        if cmd.price_minor is not None:
            _check_price(cmd.price_minor)
        if cmd.limit_per_buyer is not None:
            _check_quantity(cmd.limit_per_buyer)
        if cmd.price_minor is not None:
            self.price_minor = cmd.price_minor
        if cmd.clear_limit:
            self.limit_per_buyer = None
        elif cmd.limit_per_buyer is not None:
            self.limit_per_buyer = cmd.limit_per_buyer
        self.changes.state = True
        return self.snapshot(now)

    # -- persistence --------------------------------------------------------------------------

    def drain(self) -> Changes:
        """What was decided since the last drain (for the actor's commit)."""
        changes, self.changes = self.changes, Changes()
        return changes

    def row(self) -> dict[str, Any]:
        """The SKU's own row (counts, settings, deal); holds and orders are rows of their own."""
        return {
            "sku": self.sku,
            "product_id": self.product_id,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "sold": self.sold,
            "limit_per_buyer": self.limit_per_buyer,
            "deal": self.deal.to_wire() if self.deal else None,
            "deal_sold": self.deal_sold,
            "next_seq": self.next_seq,
        }

    def copy(self) -> Inventory:
        """An independent copy, to go back to when a commit is refused for its data: far
        cheaper than loading the SKU again (the values it shares are never mutated)."""
        twin = copy.copy(self)
        twin.reservations = dict(self.reservations)
        twin.bought = dict(self.bought)
        twin.deal_bought = dict(self.deal_bought)
        twin.answers = dict(self.answers)
        twin.changes = Changes(
            list(self.changes.ledger), list(self.changes.orders), list(self.changes.holds),
            list(self.changes.closed), list(self.changes.returned), self.changes.state,
        )  # fmt: skip
        twin._holding = dict(self._holding)
        twin._deal_holding = dict(self._deal_holding)
        twin._expiries = list(self._expiries)
        return twin

    @classmethod
    def restore(cls, stored: Stored) -> Inventory:
        state = stored.state
        deal = state.get("deal")
        return cls(
            sku=state["sku"],
            product_id=state.get("product_id", ""),
            price_minor=state.get("price_minor", 0),
            currency=state.get("currency", "USD"),
            on_hand=state["on_hand"],
            sold=state["sold"],
            limit_per_buyer=state.get("limit_per_buyer"),
            deal=FlashDeal(**deal) if deal else None,
            deal_sold=state.get("deal_sold", 0),
            reservations={h.rid: h for h in stored.holds},
            bought=dict(stored.bought),
            deal_bought=dict(stored.deal_bought),
            answers={(b, k): (tuple(fp), a, at) for b, k, fp, a, at in stored.answers},
            next_seq=state.get("next_seq", 1),
        )

    # -- internals ----------------------------------------------------------------------------

    def _seq(self) -> int:
        # Ids are "<sku>~r<n>" and "<sku>~o<n>": "~" is URL-safe and never in a SKU id.
        seq = self.next_seq
        self.next_seq += 1
        self.changes.state = True
        return seq

    def _take(
        self, buyer_id: str, quantity: int, now: float, room_id: str | None
    ) -> FlashDeal | None:
        """Refuse (changing nothing) unless ``quantity`` more units may go to this buyer;
        return the live deal they are taken under, if any (a deal of another room is not
        this buy's: it pays the regular price)."""
        if quantity > self.available:
            raise OutOfStock(
                f"only {self.available} available", details={"available": self.available}
            )
        held = self.held(buyer_id)
        if self.limit_per_buyer is not None and held + quantity > self.limit_per_buyer:
            raise LimitExceeded(f"at most {self.limit_per_buyer} per buyer; you hold {held}")
        deal = self.live_deal(now)
        if deal is not None and deal.room_id is not None and deal.room_id != room_id:
            deal = None
        if deal is not None:
            left = self.deal_remaining()
            if quantity > left:
                raise OutOfStock(f"only {left} left in this deal", details={"available": left})
            mine = self.deal_bought.get(buyer_id, 0) + self._deal_holding.get(buyer_id, 0)
            if deal.limit_per_buyer is not None and mine + quantity > deal.limit_per_buyer:
                raise LimitExceeded(
                    f"at most {deal.limit_per_buyer} per buyer in this deal; you hold {mine}"
                )
        return deal

    def _in_deal(self, deal_id: str | None) -> bool:
        return deal_id is not None and self.deal is not None and deal_id == self.deal.deal_id

    def _count_hold(self, hold: Reservation, sign: int) -> None:
        self.reserved += sign * hold.quantity
        _bump(self._holding, hold.buyer_id, sign * hold.quantity)
        if self._in_deal(hold.deal_id):
            self.deal_reserved += sign * hold.quantity
            _bump(self._deal_holding, hold.buyer_id, sign * hold.quantity)

    def _recount_deal_holds(self) -> None:
        self.deal_reserved = 0
        self._deal_holding = {}
        for hold in self.reservations.values():
            if self._in_deal(hold.deal_id):
                self.deal_reserved += hold.quantity
                _bump(self._deal_holding, hold.buyer_id, hold.quantity)

    def _count_bought(self, buyer_id: str, quantity: int, deal_id: str | None) -> None:
        _bump(self.bought, buyer_id, quantity)
        if self._in_deal(deal_id):
            self.deal_sold += quantity
            _bump(self.deal_bought, buyer_id, quantity)

    def _close(
        self, hold: Reservation, status: str, now: float, order_id: str | None = None
    ) -> None:
        del self.reservations[hold.rid]
        self._count_hold(hold, -1)
        self.changes.closed.append(ClosedHold(hold.rid, status, order_id, now))

    def _reservation(self, rid: str) -> Reservation:
        hold = self.reservations.get(rid)
        if hold is None:
            raise ReservationNotFound(f"no reservation {rid!r} (expired, released or committed)")
        return hold

    def _replay(
        self, buyer_id: str, key: str, fingerprint: tuple[Any, ...]
    ) -> dict[str, Any] | None:
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            raise InvalidRequest(f"an idempotency key of 1-{MAX_KEY_CHARS} characters is required")
        problem = text_problem(key)
        if problem is not None:
            raise InvalidRequest(f"idempotency key: {problem}")
        stored = self.answers.get((buyer_id, key))
        if stored is None:
            return None
        if stored[0] != fingerprint:
            raise IdempotencyMismatch(f"key {key!r} was used for a different request")
        return {**stored[1], "replayed": True}

    def _store(
        self,
        buyer_id: str,
        key: str,
        fingerprint: tuple[Any, ...],
        answer: dict[str, Any],
        now: float,
    ) -> dict[str, Any]:
        self.answers[(buyer_id, key)] = (fingerprint, answer, now)
        return answer

    def _log(self, kind: str, on_hand: int, reserved: int, sold: int, ref: str, at: float) -> None:
        self.changes.ledger.append(LedgerEntry(self.sku, kind, on_hand, reserved, sold, ref, at))
        self.changes.state = True


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    left = counts.get(key, 0) + delta
    if left:
        counts[key] = left
    else:
        counts.pop(key, None)


def _storable(*values: str | None) -> None:
    """Ids, keys and references that reach PostgreSQL with the decision: one it cannot
    store would fail the whole group commit and cost a bisection (the edge refuses such
    text; this holds past it, cheaply, for every text a command writes)."""
    for value in values:
        if value is not None and text_problem(value) is not None:
            raise InvalidRequest(f"an id PostgreSQL cannot store: {ascii(value)[:80]}")


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidRequest("quantity must be an integer")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity must be 1..{MAX_QUANTITY}")


def _check_price(price_minor: int) -> None:
    if isinstance(price_minor, bool) or not isinstance(price_minor, int):
        raise InvalidRequest("price_minor must be an integer number of minor units")
    if not 0 <= price_minor <= MAX_PRICE_MINOR:
        raise InvalidRequest(f"price_minor must be 0..{MAX_PRICE_MINOR}")
