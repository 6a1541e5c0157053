"""An order's lifecycle and shipments: the rules, without I/O.

pending → paid → fulfilled → shipped → delivered; pending or paid → cancelled. An order is
``shipped`` once every unit is in a shipment (split shipments: each carries some lines'
units); until then it stays ``fulfilled`` with the shipments so far. A new order of any kind
(a direct buy, an auction's win, a checkout) is a :class:`NewOrder`, written by one store;
a return is decided by :func:`refund_for_return`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from liveshop.commerce.checkout import tax_on
from liveshop.errors import InvalidRequest, InvalidTransition, OrderNotFound

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


# -- new orders: what every writer of `orders` hands the one store that writes them -----------


@dataclass(frozen=True)
class NewLine:
    sku: str
    product_id: str
    quantity: int
    price_minor: int  # per unit, net
    deal_id: str | None = None
    #: The hold the line's units are on (checkout, an auction's unit); None: sold already.
    reservation_id: str | None = None


@dataclass(frozen=True)
class NewOrder:
    """An order as it is placed (``pending``): a direct buy, an auction's win or a checkout.
    Amounts are integers in minor units and add up, checked here once for every kind, so
    the store that writes orders (storage/orders.py ``insert_orders``) trusts what it gets."""

    order_id: str
    buyer_id: str
    currency: str
    lines: tuple[NewLine, ...]
    #: The idempotency scope and key: ``sku:<id>`` for direct buys, ``auction``,
    #: ``checkout``; one order per (buyer, scope, key).
    idem_scope: str
    idem_key: str
    at: float
    room_id: str | None = None
    tax_minor: int = 0
    shipping_minor: int = 0
    tax_basis_points: int | None = None
    address: Mapping[str, str] | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if not self.lines:
            raise InvalidRequest("an order needs at least one line")
        for line in self.lines:
            if line.quantity < 1 or line.price_minor < 0:
                raise InvalidRequest("an order line needs a unit or more at a price of 0 or more")
        if self.tax_minor < 0 or self.shipping_minor < 0:
            raise InvalidRequest("tax and shipping cannot be negative")

    @property
    def subtotal_minor(self) -> int:
        return sum(line.quantity * line.price_minor for line in self.lines)

    @property
    def total_minor(self) -> int:
        return self.subtotal_minor + self.tax_minor + self.shipping_minor


# -- returns ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Returnable:
    """What deciding a return needs of its order, read from storage."""

    buyer_id: str
    status: str
    delivered_at: float | None
    return_days: int
    tax_basis_points: int
    #: line -> (units ordered, unit price)
    ordered: Mapping[int, tuple[int, int]]
    #: line -> units already in returns not rejected
    returned: Mapping[int, int]


def refund_for_return(
    order: Returnable, buyer_id: str, lines: Iterable[ShipmentLine], now: float
) -> int:
    """Whether ``buyer_id`` may return ``lines`` of the order now, and the refund: the
    units' price and their share of tax (shipping is not refunded). Only the buyer, only a
    delivered order, only within its return window, never more units than were ordered
    and not returned already."""
    if order.buyer_id != buyer_id:
        raise OrderNotFound("no such order of yours")
    if order.status != "delivered" or order.delivered_at is None:
        raise InvalidTransition(f"an order that is {order.status} cannot be returned")
    if now - order.delivered_at > order.return_days * 86400:
        raise InvalidTransition(f"the {order.return_days}-day return window has closed")
    lines = list(lines)
    check_shipment({k: q for k, (q, _) in order.ordered.items()}, order.returned, lines)
    goods = sum(order.ordered[item.line][1] * item.quantity for item in lines)
    return goods + tax_on(goods, order.tax_basis_points)
