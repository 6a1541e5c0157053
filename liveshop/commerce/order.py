"""An order's lifecycle and shipments: the rules, without I/O.

pending → paid → fulfilled → shipped → delivered; pending or paid → cancelled. An order is
``shipped`` once every unit is in a shipment (split shipments: each carries some lines'
units); until then it stays ``fulfilled`` with the shipments so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from liveshop.errors import InvalidRequest, InvalidTransition

STATUSES = ("pending", "paid", "fulfilled", "shipped", "delivered", "cancelled")

#: status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"fulfilled", "cancelled"}),
    "fulfilled": frozenset({"shipped"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}


def check_transition(current: str, target: str) -> None:
    if target not in STATUSES:
        raise InvalidRequest(f"unknown order status {target!r}")
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"an order that is {current} cannot become {target}")


def sources_of(target: str) -> list[str]:
    """The statuses an order may be in to move to ``target`` (for a compare-and-set)."""
    return [s for s, nexts in TRANSITIONS.items() if target in nexts]


@dataclass(frozen=True)
class ShipmentLine:
    line: int
    quantity: int


def check_shipment(
    ordered: Mapping[int, int], shipped: Mapping[int, int], lines: Iterable[ShipmentLine]
) -> bool:
    """Validate a new shipment against the units ordered and already shipped per line;
    returns whether the order is then shipped in full."""
    adding: dict[int, int] = {}
    for item in lines:
        if item.line not in ordered:
            raise InvalidRequest(f"the order has no line {item.line}")
        if item.quantity < 1:
            raise InvalidRequest("a shipment line needs at least one unit")
        adding[item.line] = adding.get(item.line, 0) + item.quantity
    if not adding:
        raise InvalidRequest("a shipment needs at least one line")
    for line, quantity in adding.items():
        left = ordered[line] - shipped.get(line, 0)
        if quantity > left:
            raise InvalidRequest(f"line {line} has {left} units left to ship, not {quantity}")
    return all(shipped.get(line, 0) + adding.get(line, 0) >= q for line, q in ordered.items())
