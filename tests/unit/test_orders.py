"""Order lifecycle rules, split shipments, stock coming back, card checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveshop.commerce.checkout import tax_on
from liveshop.commerce.inventory import Inventory, ReturnStock
from liveshop.commerce.order import (
    NewLine,
    NewOrder,
    Returnable,
    ShipmentLine,
    check_shipment,
    check_transition,
    refund_for_return,
    sources_of,
)
from liveshop.errors import Conflict, InvalidRequest, InvalidTransition, OrderNotFound
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


# -- new orders and returns (commerce/order.py: the rules every writer of orders shares) -------

prices = st.integers(0, 10**9)
units = st.integers(1, 1000)
new_lines = st.lists(
    st.builds(NewLine, sku=st.just("s"), product_id=st.just("p"), quantity=units,
              price_minor=prices),
    min_size=1, max_size=6,
)  # fmt: skip


@given(new_lines, st.integers(0, 10**8), st.integers(0, 10**8))
def test_a_new_orders_amounts_add_up_in_integers(
    lines: list[NewLine], tax: int, shipping: int
) -> None:
    order = NewOrder("o", "ann", "USD", tuple(lines), "checkout", "k", 0.0, tax_minor=tax,
                     shipping_minor=shipping)  # fmt: skip
    assert order.subtotal_minor == sum(ln.quantity * ln.price_minor for ln in lines)
    assert order.total_minor == order.subtotal_minor + tax + shipping
    assert all(isinstance(v, int) for v in (order.subtotal_minor, order.total_minor))


@pytest.mark.parametrize(
    ("lines", "tax", "shipping"),
    [((), 0, 0), ((NewLine("s", "p", 0, 1),), 0, 0), ((NewLine("s", "p", 1, -1),), 0, 0),
     ((NewLine("s", "p", 1, 1),), -1, 0), ((NewLine("s", "p", 1, 1),), 0, -5)],
)  # fmt: skip
def test_an_order_that_does_not_add_up_is_refused(
    lines: tuple[NewLine, ...], tax: int, shipping: int
) -> None:
    with pytest.raises(InvalidRequest):
        NewOrder("o", "ann", "USD", lines, "sku:s", "k", 0.0, tax_minor=tax,
                 shipping_minor=shipping)  # fmt: skip


DAY = 86400.0


@given(
    ordered=st.dictionaries(st.integers(1, 5), st.tuples(st.integers(1, 9), prices), min_size=1),
    asked=st.lists(st.tuples(st.integers(0, 6), st.integers(-1, 12)), min_size=1, max_size=4),
    returned=st.integers(0, 9),
    days=st.integers(0, 60),
    after=st.floats(0, 70),
    bps=st.integers(0, 3000),
)
def test_a_return_is_the_buyers_within_the_window_and_never_refunds_more_than_was_paid(
    ordered: dict[int, tuple[int, int]], asked: list[tuple[int, int]], returned: int,
    days: int, after: float, bps: int,
) -> None:  # fmt: skip
    first = min(ordered)
    already = {first: min(returned, ordered[first][0])}
    order = Returnable("ann", "delivered", 1000.0, days, bps, ordered, already)
    lines = [ShipmentLine(line, q) for line, q in asked]
    now = 1000.0 + after * DAY
    with pytest.raises(OrderNotFound):
        refund_for_return(order, "bob", lines, now)  # only the buyer, and nobody learns more
    try:
        refund = refund_for_return(order, "ann", lines, now)
    except InvalidTransition:
        assert after * DAY > days * DAY  # only a closed window refuses a delivered order
        return
    except InvalidRequest:
        # a line it does not have, no units, or more than are left to return
        wanted: dict[int, int] = {}
        for line, q in asked:
            wanted[line] = wanted.get(line, 0) + q
        assert any(line not in ordered or q < 1 for line, q in asked) or any(
            q > ordered[line][0] - already.get(line, 0) for line, q in wanted.items()
        )
        return
    goods = sum(ordered[line][1] * q for line, q in asked)
    assert after * DAY <= days * DAY
    assert refund == goods + tax_on(goods, bps)
    paid = sum(q * p for q, p in ordered.values())
    assert refund <= paid + tax_on(paid, bps)


@pytest.mark.parametrize("status", ["pending", "paid", "fulfilled", "shipped", "cancelled"])
def test_only_a_delivered_order_can_be_returned(status: str) -> None:
    order = Returnable("ann", status, None, 30, 0, {1: (1, 100)}, {})
    with pytest.raises(InvalidTransition):
        refund_for_return(order, "ann", [ShipmentLine(1, 1)], 0.0)
