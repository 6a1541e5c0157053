"""One SKU's stock: what a SKU actor decides, without I/O or clock reads.

Quantities: ``on_hand`` units are in the warehouse and not yet sold; ``reserved`` of them are
held for carts; ``available = on_hand - reserved`` may be reserved or bought; ``sold`` counts
units committed to orders. Every change appends a :class:`LedgerEntry` (``pending``) that the
actor writes in the same transaction as the state, so the ledger always explains the numbers.

Buys and reservations carry idempotency keys with payment-API semantics: the same key with the
same request returns the stored answer (and changes nothing); the same key with a different
request is refused with ``idempotency_mismatch``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from liveshop.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidRequest,
    LimitExceeded,
    OutOfStock,
    ReservationNotFound,
    StaleQuantity,
)

MAX_QUANTITY = 1_000_000


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


@dataclass
class Reservation:
    rid: str
    buyer_id: str
    quantity: int
    expires_at: float


@dataclass
class Inventory:
    sku: str
    on_hand: int = 0
    sold: int = 0
    #: Units one buyer may hold (reserved + bought) at most; None: no limit.
    limit_per_buyer: int | None = None
    reservations: dict[str, Reservation] = field(default_factory=dict)
    #: Units bought per buyer (committed holds and direct buys), for the per-buyer limit.
    bought: dict[str, int] = field(default_factory=dict)
    #: Idempotency key -> (request fingerprint, stored answer). Durable: a retry after a
    #: restart must get the first answer, not a second sale.
    answers: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    pending: list[LedgerEntry] = field(default_factory=list)
    _next_rid: int = 1
    #: Derived from ``reservations`` (kept as running totals, rebuilt on restore).
    reserved: int = field(default=0, init=False)
    _holding: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.reserved = sum(r.quantity for r in self.reservations.values())
        for r in self.reservations.values():
            self._holding[r.buyer_id] = self._holding.get(r.buyer_id, 0) + r.quantity

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

    # -- buyers -----------------------------------------------------------------------------

    def reserve(
        self, key: str, buyer_id: str, quantity: int, ttl: float, now: float
    ) -> dict[str, Any]:
        """Hold ``quantity`` units for ``ttl`` seconds (a cart hold)."""
        fingerprint = ("reserve", buyer_id, quantity, ttl)
        stored = self._replay(key, fingerprint)
        if stored is not None:
            return stored
        _check_quantity(quantity)
        if ttl <= 0:
            raise InvalidRequest("ttl must be positive")
        self._take(buyer_id, quantity)
        rid = f"{self.sku}:r{self._next_rid}"
        self._next_rid += 1
        self.reservations[rid] = Reservation(rid, buyer_id, quantity, now + ttl)
        self.reserved += quantity
        self._holding[buyer_id] = self._holding.get(buyer_id, 0) + quantity
        self._log("reserve", 0, quantity, 0, rid, now)
        answer = {"reservation": rid, "quantity": quantity, "expires_at": now + ttl}
        return self._store(key, fingerprint, answer)

    def buy(self, key: str, buyer_id: str, quantity: int, now: float) -> dict[str, Any]:
        """First-paid-first-served: take ``quantity`` available units straight into ``sold``."""
        fingerprint = ("buy", buyer_id, quantity)
        stored = self._replay(key, fingerprint)
        if stored is not None:
            return stored
        _check_quantity(quantity)
        self._take(buyer_id, quantity)
        self.bought[buyer_id] = self.bought.get(buyer_id, 0) + quantity
        self.on_hand -= quantity
        self.sold += quantity
        self._log("buy", -quantity, 0, quantity, key, now)
        return self._store(key, fingerprint, {"bought": quantity, **self.counts()})

    def commit(self, rid: str, order_id: str, now: float) -> dict[str, Any]:
        """A hold still in time becomes sold (its order was paid)."""
        hold = self._reservation(rid)
        if hold.expires_at <= now:  # not yet swept by expire(): it is gone all the same
            raise ReservationNotFound(f"reservation {rid!r} expired")
        self._unhold(hold)
        self.bought[hold.buyer_id] = self.bought.get(hold.buyer_id, 0) + hold.quantity
        self.on_hand -= hold.quantity
        self.sold += hold.quantity
        self._log("commit", -hold.quantity, -hold.quantity, hold.quantity, order_id, now)
        return {"reservation": rid, "order": order_id, "sold": hold.quantity}

    def release(self, rid: str, now: float) -> dict[str, Any]:
        """The buyer gave the hold back (removed from cart, payment failed)."""
        hold = self._reservation(rid)
        self._drop(hold, "release", now)
        return {"reservation": rid, "released": hold.quantity}

    def expire(self, now: float) -> list[str]:
        """Holds past their time go back to available; returns their ids."""
        gone = [r for r in self.reservations.values() if r.expires_at <= now]
        for hold in gone:
            self._drop(hold, "expire", now)
        return [r.rid for r in gone]

    # -- operators --------------------------------------------------------------------------

    def restock(self, quantity: int, ref: str, now: float) -> dict[str, int]:
        _check_quantity(quantity)
        if self.on_hand + quantity > MAX_QUANTITY:
            raise InvalidRequest(f"on hand would exceed {MAX_QUANTITY}")
        self.on_hand += quantity
        self._log("restock", quantity, 0, 0, ref, now)
        return self.counts()

    def adjust(self, expected: int, on_hand: int, ref: str, now: float) -> dict[str, int]:
        """Compare-and-set the on-hand count (a stock take): refused if ``expected`` is stale
        or if fewer units than are reserved would remain."""
        if expected != self.on_hand:
            raise StaleQuantity(f"on hand is {self.on_hand}, not {expected}")
        if not 0 <= on_hand <= MAX_QUANTITY:
            raise InvalidRequest(f"on_hand must be 0..{MAX_QUANTITY}")
        if on_hand < self.reserved:
            raise Conflict(f"{self.reserved} units are reserved; on hand cannot go below")
        self._log("adjust", on_hand - self.on_hand, 0, 0, ref, now)
        self.on_hand = on_hand
        return self.counts()

    def drain(self) -> list[LedgerEntry]:
        """The ledger entries since the last drain (for the actor's commit)."""
        entries, self.pending = self.pending, []
        return entries

    def durable_state(self) -> dict[str, Any]:
        """What the actor saves (JSON-safe); ``reserved`` and holdings are derived."""
        return {
            "sku": self.sku,
            "on_hand": self.on_hand,
            "sold": self.sold,
            "limit_per_buyer": self.limit_per_buyer,
            "reservations": [asdict(r) for r in self.reservations.values()],
            "bought": dict(self.bought),
            "answers": [[k, list(fp), answer] for k, (fp, answer) in self.answers.items()],
            "next_rid": self._next_rid,
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Inventory:
        return cls(
            sku=state["sku"],
            on_hand=state["on_hand"],
            sold=state["sold"],
            limit_per_buyer=state.get("limit_per_buyer"),
            reservations={r["rid"]: Reservation(**r) for r in state.get("reservations", [])},
            bought=dict(state.get("bought", {})),
            answers={k: (tuple(fp), answer) for k, fp, answer in state.get("answers", [])},
            _next_rid=state.get("next_rid", 1),
        )

    # -- internals --------------------------------------------------------------------------

    def held(self, buyer_id: str) -> int:
        """Units a buyer holds or has bought: what the per-buyer limit counts."""
        return self.bought.get(buyer_id, 0) + self._holding.get(buyer_id, 0)

    def _take(self, buyer_id: str, quantity: int) -> None:
        """Refuse (changing nothing) unless ``quantity`` more units may go to this buyer."""
        if quantity > self.available:
            raise OutOfStock(f"only {self.available} available")
        held = self.held(buyer_id)
        if self.limit_per_buyer is not None and held + quantity > self.limit_per_buyer:
            raise LimitExceeded(f"at most {self.limit_per_buyer} per buyer; you hold {held}")

    def _unhold(self, hold: Reservation) -> None:
        del self.reservations[hold.rid]
        self.reserved -= hold.quantity
        left = self._holding[hold.buyer_id] - hold.quantity
        if left:
            self._holding[hold.buyer_id] = left
        else:
            del self._holding[hold.buyer_id]

    def _drop(self, hold: Reservation, kind: str, now: float) -> None:
        self._unhold(hold)
        self._log(kind, 0, -hold.quantity, 0, hold.rid, now)

    def _reservation(self, rid: str) -> Reservation:
        hold = self.reservations.get(rid)
        if hold is None:
            raise ReservationNotFound(f"no reservation {rid!r} (expired, released or committed)")
        return hold

    def _replay(self, key: str, fingerprint: tuple[Any, ...]) -> dict[str, Any] | None:
        if not key or len(key) > 200:
            raise InvalidRequest("an idempotency key of 1-200 characters is required")
        stored = self.answers.get(key)
        if stored is None:
            return None
        if stored[0] != fingerprint:
            raise IdempotencyMismatch(f"key {key!r} was used for a different request")
        return stored[1]

    def _store(
        self, key: str, fingerprint: tuple[Any, ...], answer: dict[str, Any]
    ) -> dict[str, Any]:
        self.answers[key] = (fingerprint, answer)
        return answer

    def _log(self, kind: str, on_hand: int, reserved: int, sold: int, ref: str, at: float) -> None:
        self.pending.append(LedgerEntry(self.sku, kind, on_hand, reserved, sold, ref, at))


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidRequest("quantity must be an integer")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity must be 1..{MAX_QUANTITY}")
