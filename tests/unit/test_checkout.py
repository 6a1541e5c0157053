"""Checkout rules: addresses per country, tax per region, shipping per seller, the quote,
return windows; and the universal cart."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveshop.commerce.cart import MAX_LINE_QUANTITY, MAX_LINES, Cart, CartLine
from liveshop.commerce.checkout import (
    QuoteLine,
    ShippingRule,
    quote,
    return_window_days,
    tax_on,
    tax_rate,
    validate_address,
)
from liveshop.errors import CartItemNotFound, InvalidRequest, NotFound

T0 = 1_800_000_000.0
US = {"name": "Ann Lee", "line1": "1 Main St", "city": "Austin", "region": "tx",
      "postcode": "78701", "country": "us"}  # fmt: skip
DE = {"name": "Bo", "line1": "Hauptstr. 1", "city": "Berlin", "postcode": "10115",
      "country": "DE"}  # fmt: skip


def test_addresses_are_checked_per_country() -> None:
    us = validate_address(US)
    assert (us.country, us.region, us.postcode) == ("US", "TX", "78701")
    assert validate_address({**US, "postcode": "78701-1234"}).postcode == "78701-1234"
    assert validate_address(DE).country == "DE"
    assert validate_address({**DE, "country": "HK", "postcode": ""}).country == "HK"
    with pytest.raises(InvalidRequest) as bad:
        validate_address({**US, "postcode": "7870", "region": "", "city": " "})
    fields = {d["field"] for d in bad.value.details}
    assert fields == {"postcode", "region", "city"}
    for wrong in ({**US, "region": "ZZ"}, {**DE, "postcode": "1011"}, {**DE, "country": "XX"},
                  {**US, "name": 5}, {**DE, "line1": "x" * 201}):  # fmt: skip
        with pytest.raises(InvalidRequest):
            validate_address(wrong)
    assert validate_address({**DE, "country": "GB", "postcode": "sw1a 1aa"}).postcode == "SW1A 1AA"


def test_tax_is_per_region_in_basis_points_rounded_half_up() -> None:
    assert tax_rate(validate_address(US)) == 625  # Texas
    assert tax_rate(validate_address({**US, "region": "OR"})) == 0
    assert tax_rate(validate_address({**US, "region": "KS"})) == 0  # not in the table
    assert tax_rate(validate_address(DE)) == 1900
    canada = {**US, "country": "CA", "postcode": "M5V 2T6"}
    assert tax_rate(validate_address({**canada, "region": "ON"})) == 1300  # HST
    assert tax_rate(validate_address({**canada, "region": "AB"})) == 500  # GST only
    assert tax_on(1000, 1900) == 190
    assert tax_on(5, 1000) == 1  # 0.5 rounds up
    assert tax_on(4, 1000) == 0


def line(sku: str, seller: str, qty: int, price: int, currency: str = "USD") -> QuoteLine:
    return QuoteLine(sku, sku, seller, qty, price, currency)


def test_the_quote_prices_goods_shipping_per_seller_and_tax() -> None:
    rules = [ShippingRule("*", "*", 1000, 200), ShippingRule("acme", "US", 500, 100, 10_000)]
    q = quote(
        [line("a", "acme", 2, 2000), line("b", "bolt", 3, 1000)], validate_address(US),
        shipping=rules,
    )  # fmt: skip
    assert q.subtotal_minor == 7000
    assert q.shipping_by_seller == {"acme": 600, "bolt": 1400}
    assert q.shipping_minor == 2000
    assert q.tax_minor == tax_on(4000, 625) + tax_on(3000, 625) + tax_on(600, 625) + tax_on(
        1400, 625
    )
    assert q.total_minor == 7000 + 2000 + q.tax_minor
    free = quote([line("a", "acme", 5, 2000)], validate_address(US), shipping=rules)
    assert free.shipping_minor == 0  # over the seller's free-shipping threshold
    with pytest.raises(InvalidRequest, match="one currency"):
        quote([line("a", "x", 1, 1), line("b", "x", 1, 1, "EUR")], validate_address(US))
    with pytest.raises(InvalidRequest):
        quote([], validate_address(US))


@given(
    st.lists(st.tuples(st.integers(1, 20), st.integers(0, 10**7)), min_size=1, max_size=8),
    st.sampled_from(["US", "DE", "GB", "AU"]),
)
def test_a_quote_adds_up_in_integers(items: list[tuple[int, int]], country: str) -> None:
    address = {**DE, "country": country, "postcode": {"US": "10001", "DE": "10115",
               "GB": "SW1A 1AA", "AU": "2000"}[country],
               "region": {"US": "NY", "AU": "NSW"}.get(country, "")}  # fmt: skip
    q = quote([line(f"s{i}", f"seller{i % 3}", n, p) for i, (n, p) in enumerate(items)],
              validate_address(address))  # fmt: skip
    assert q.subtotal_minor == sum(n * p for n, p in items)
    assert q.total_minor == q.subtotal_minor + q.shipping_minor + q.tax_minor
    assert all(isinstance(v, int) and v >= 0 for v in (q.tax_minor, q.shipping_minor))


def test_return_windows_respect_the_buyers_law() -> None:
    assert return_window_days("US") == 30
    assert return_window_days("DE", seller_days=7) == 14  # never below the legal minimum
    assert return_window_days("US", seller_days=60) == 60


def test_a_cart_remembers_where_each_line_came_from_and_when_it_was_left() -> None:
    cart = Cart("ann")
    cart.add(
        "sku-1", 2, T0, room_id="show-1", creator_id="host-1", hold="r1", hold_expires_at=T0 + 60
    )
    cart.add("sku-1", 1, T0 + 1, room_id="show-2", creator_id="host-2")
    line = cart.lines["sku-1"]
    assert (line.quantity, line.room_id, line.creator_id, line.holds) == (
        3,
        "show-2",
        "host-2",
        ["r1"],
    )
    assert not cart.is_abandoned(T0 + 100, after=100)
    assert cart.is_abandoned(T0 + 101, after=100)
    assert not cart.is_abandoned(T0 + 500, after=100)  # once per idle spell
    cart.add("sku-2", 1, T0 + 600)
    assert cart.is_abandoned(T0 + 700, after=100)
    back = Cart.from_state("ann", cart.to_state())
    assert back.view() == cart.view() and back.abandoned
    assert cart.drop_holds("sku-1") == ["r1"] and cart.lines["sku-1"].holds == []
    cart.remove("sku-1", T0 + 800)
    with pytest.raises(NotFound):
        cart.remove("sku-1", T0 + 800)
    for bad in (0, 1001, True):
        with pytest.raises(InvalidRequest):
            cart.add("sku-3", bad, T0)  # type: ignore[arg-type]
    full = Cart("bob")
    for i in range(MAX_LINES):
        full.add(f"s{i}", 1, T0)
    with pytest.raises(InvalidRequest):
        full.add("one-more", 1, T0)
    assert not Cart("cat").is_abandoned(T0 + 10**6, after=1)  # empty carts are not abandoned


@given(st.lists(st.integers(-3, MAX_LINE_QUANTITY + 3), min_size=1, max_size=10))
def test_setting_a_quantity_keeps_the_line_and_its_origin_or_refuses(
    quantities: list[int],
) -> None:
    """``Cart.set_quantity`` (one write per change on an entity host): in bounds the line
    takes the quantity and keeps where it came from; out of bounds nothing changes."""
    cart = Cart("ann")
    cart.add("sku-1", 1, 1.0, room_id="show", creator_id="host")
    for n, quantity in enumerate(quantities, start=2):
        before = dataclasses.replace(cart.lines["sku-1"])
        try:
            cart.set_quantity("sku-1", quantity, float(n))
        except InvalidRequest:
            assert not 1 <= quantity <= MAX_LINE_QUANTITY
            assert cart.lines["sku-1"] == before
            continue
        line = cart.lines["sku-1"]
        assert line.quantity == quantity and (line.room_id, line.creator_id) == ("show", "host")
        assert cart.touched_at == float(n) and not cart.abandoned
    with pytest.raises(CartItemNotFound):
        cart.set_quantity("sku-2", 1, 99.0)


_text = st.text(max_size=12)
_maybe_text = st.none() | _text


@given(
    st.builds(
        CartLine,
        sku=_text,
        quantity=st.integers(1, MAX_LINE_QUANTITY),
        added_at=st.floats(allow_nan=False),
        room_id=_maybe_text,
        creator_id=_maybe_text,
        holds=st.lists(_text, max_size=3),
        hold_expires_at=st.none() | st.floats(allow_nan=False),
    )
)
def test_a_line_on_the_wire_is_every_field_of_it(line: CartLine) -> None:
    """What a cart shows and saves per line (CartLine.to_wire) is every field, as asdict
    gives them, with its own copy of the holds."""
    wire = line.to_wire()
    assert wire == dataclasses.asdict(line)
    assert wire["holds"] is not line.holds
