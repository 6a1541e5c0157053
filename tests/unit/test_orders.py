"""Order lifecycle rules, split shipments, stock coming back, card checks."""

from __future__ import annotations

import pytest

from liveshop.commerce.inventory import Inventory, ReturnStock
from liveshop.commerce.order import ShipmentLine, check_shipment, check_transition, sources_of
from liveshop.errors import Conflict, InvalidRequest, InvalidTransition
from liveshop.payments.provider import brand_of, check_card

T0 = 1_800_000_000.0


def test_the_lifecycle_moves_forward_only() -> None:
    for current, target in [
        ("pending", "paid"), ("paid", "fulfilled"), ("fulfilled", "shipped"),
        ("shipped", "delivered"), ("pending", "cancelled"), ("paid", "cancelled"),
    ]:  # fmt: skip
        check_transition(current, target)
    for current, target in [
        ("pending", "shipped"), ("shipped", "cancelled"), ("delivered", "paid"),
        ("cancelled", "paid"), ("paid", "pending"),
    ]:  # fmt: skip
        with pytest.raises(InvalidTransition, match=f"{current} cannot become {target}"):
            check_transition(current, target)
    with pytest.raises(InvalidRequest):
        check_transition("pending", "lost")
    assert sorted(sources_of("cancelled")) == ["paid", "pending"]


def test_split_shipments_complete_the_order_only_with_every_unit() -> None:
    ordered = {1: 3, 2: 1}
    assert not check_shipment(ordered, {}, [ShipmentLine(1, 2)])
    assert not check_shipment(ordered, {1: 2}, [ShipmentLine(2, 1)])
    assert check_shipment(ordered, {1: 2, 2: 1}, [ShipmentLine(1, 1)])
    with pytest.raises(InvalidRequest, match="1 units left"):
        check_shipment(ordered, {1: 2}, [ShipmentLine(1, 2)])
    with pytest.raises(InvalidRequest, match="no line 3"):
        check_shipment(ordered, {}, [ShipmentLine(3, 1)])
    with pytest.raises(InvalidRequest):
        check_shipment(ordered, {}, [])


def test_returned_units_go_back_on_hand_and_free_the_buyers_limit() -> None:
    inv = Inventory("s", product_id="p", price_minor=100, limit_per_buyer=2)
    inv.restock(5, "in", T0)
    order = inv.buy("k1", "ann", 2, T0)
    inv.drain()
    inv.apply(ReturnStock("cancel:" + order["order"], "ann", 2), T0 + 1)
    assert inv.counts() == {"on_hand": 5, "reserved": 0, "available": 5, "sold": 0}
    changes = inv.drain()
    assert changes.returned == ["cancel:" + order["order"]]
    assert [e.kind for e in changes.ledger] == ["return"]
    inv.buy("k2", "ann", 2, T0 + 2)  # the limit counts what she kept, not what came back
    with pytest.raises(Conflict):
        inv.apply(ReturnStock("bogus", "bob", 3), T0 + 3)  # more than was ever sold


def test_cards_are_checked_before_they_reach_the_provider() -> None:
    assert check_card("4242 4242 4242 4242", 12, 2030, 2026) == "4242424242424242"
    assert brand_of("5555555555554444") == "mastercard"
    for number in ("4242424242424241", "abcd", "4242"):
        with pytest.raises(InvalidRequest, match="card number"):
            check_card(number, 12, 2030, 2026)
    with pytest.raises(InvalidRequest, match="expired"):
        check_card("4242424242424242", 12, 2025, 2026)
