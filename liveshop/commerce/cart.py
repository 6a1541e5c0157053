"""One user's universal cart: lines from any room, show or seller, each remembering where it
was added (for commissions and analytics). No I/O.

Stock is not the cart's business: with a room's ``hold`` policy the cart actor reserves
units at the SKU and records the hold on the line; with ``first_paid`` nothing is held and
checkout takes what is still there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import CartItemNotFound, InvalidRequest

MAX_LINES = 100
MAX_LINE_QUANTITY = 1000


@dataclass
class CartLine:
    sku: str
    quantity: int
    added_at: float
    #: Where it was added: the room (the show), and the creator hosting it.
    room_id: str | None = None
    creator_id: str | None = None
    #: The SKU reservations holding its units (hold policy), with when they lapse.
    holds: list[str] = field(default_factory=list)
    hold_expires_at: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """Every field, as ``dataclasses.asdict`` would give them (several times faster: a
        cart is viewed and saved on every change)."""
        return {
            "sku": self.sku, "quantity": self.quantity, "added_at": self.added_at,
            "room_id": self.room_id, "creator_id": self.creator_id, "holds": list(self.holds),
            "hold_expires_at": self.hold_expires_at,
        }  # fmt: skip


@dataclass
class Cart:
    user_id: str
    lines: dict[str, CartLine] = field(default_factory=dict)
    touched_at: float = 0.0
    #: Set when an abandonment event went out; cleared by the next change.
    abandoned: bool = False

    def add(
        self,
        sku: str,
        quantity: int,
        now: float,
        *,
        room_id: str | None = None,
        creator_id: str | None = None,
        hold: str | None = None,
        hold_expires_at: float | None = None,
    ) -> CartLine:
        _check_quantity(quantity)
        line = self.lines.get(sku)
        if line is None:
            if len(self.lines) >= MAX_LINES:
                raise InvalidRequest(f"a cart holds at most {MAX_LINES} lines")
            line = self.lines[sku] = CartLine(sku, 0, now, room_id, creator_id)
        if line.quantity + quantity > MAX_LINE_QUANTITY:
            raise InvalidRequest(f"at most {MAX_LINE_QUANTITY} of one SKU")
        line.quantity += quantity
        if room_id is not None:  # attribution follows the latest room it was added from
            line.room_id, line.creator_id = room_id, creator_id
        if hold is not None:
            line.holds.append(hold)
            line.hold_expires_at = hold_expires_at
        self._touch(now)
        return line

    def set_quantity(self, sku: str, quantity: int, now: float) -> CartLine:
        """A line's new quantity (1..MAX_LINE_QUANTITY), where it came from kept."""
        _check_quantity(quantity)
        line = self.lines.get(sku)
        if line is None:
            raise CartItemNotFound(f"{sku!r} is not in the cart")
        line.quantity = quantity
        self._touch(now)
        return line

    def remove(self, sku: str, now: float) -> CartLine:
        line = self.lines.pop(sku, None)
        if line is None:
            raise CartItemNotFound(f"{sku!r} is not in the cart")
        self._touch(now)
        return line

    def drop_holds(self, sku: str) -> list[str]:
        """Forget a line's holds (released, or taken over by checkout)."""
        line = self.lines.get(sku)
        if line is None:
            return []
        holds, line.holds, line.hold_expires_at = line.holds, [], None
        return holds

    def is_abandoned(self, now: float, after: float) -> bool:
        """True once per idle spell: the cart has lines and nobody touched it for ``after``
        seconds."""
        if self.abandoned or not self.lines or now - self.touched_at < after:
            return False
        self.abandoned = True
        return True

    def view(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "lines": [line.to_wire() for line in self.lines.values()],
            "units": sum(line.quantity for line in self.lines.values()),
            "touched_at": self.touched_at,
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.view(), "abandoned": self.abandoned}

    @classmethod
    def from_state(cls, user_id: str, state: dict[str, Any]) -> Cart:
        lines = {ln["sku"]: CartLine(**ln) for ln in state.get("lines", [])}
        return cls(user_id, lines, state.get("touched_at", 0.0), state.get("abandoned", False))

    def _touch(self, now: float) -> None:
        self.touched_at = now
        self.abandoned = False


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidRequest("quantity must be an integer")
    if not 1 <= quantity <= MAX_LINE_QUANTITY:
        raise InvalidRequest(f"quantity must be 1..{MAX_LINE_QUANTITY}")
