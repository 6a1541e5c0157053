"""SKU stock decisions: never oversold, stock conserved, the ledger explains every number."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.commerce.inventory import MAX_QUANTITY, Inventory, LedgerEntry
from liveshop.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidRequest,
    LimitExceeded,
    LiveshopError,
    OutOfStock,
    ReservationNotFound,
    StaleQuantity,
)

T0 = 1_800_000_000.0


def stocked(units: int = 10, limit: int | None = None) -> Inventory:
    inv = Inventory("sku-1", limit_per_buyer=limit)
    inv.restock(units, "initial", T0)
    return inv


def test_an_expired_hold_cannot_be_committed() -> None:
    inv = stocked(5)
    hold = inv.reserve("k1", "ann", 2, ttl=5, now=T0)
    with pytest.raises(ReservationNotFound, match="expired"):
        inv.commit(hold["reservation"], "order-1", T0 + 5)
    assert inv.sold == 0
    assert inv.expire(T0 + 5) == [hold["reservation"]]
    assert inv.available == 5


def test_restock_cannot_pass_the_quantity_limit() -> None:
    inv = stocked(MAX_QUANTITY)
    with pytest.raises(InvalidRequest):
        inv.restock(1, "more", T0)
    assert inv.on_hand == MAX_QUANTITY


def test_reserve_commit_release_and_expire_move_units_between_the_counts() -> None:
    inv = stocked(10)
    a = inv.reserve("k1", "ann", 3, ttl=60, now=T0)
    b = inv.reserve("k2", "bob", 2, ttl=30, now=T0)
    assert inv.counts() == {"on_hand": 10, "reserved": 5, "available": 5, "sold": 0}
    inv.commit(a["reservation"], "order-1", T0 + 1)
    assert inv.counts() == {"on_hand": 7, "reserved": 2, "available": 5, "sold": 3}
    assert inv.expire(T0 + 29) == []
    assert inv.expire(T0 + 30) == [b["reservation"]]
    assert inv.counts() == {"on_hand": 7, "reserved": 0, "available": 7, "sold": 3}
    with pytest.raises(ReservationNotFound):
        inv.release(b["reservation"], T0 + 31)  # already expired: nothing to give back
    c = inv.reserve("k3", "cat", 7, ttl=60, now=T0 + 2)
    inv.release(c["reservation"], T0 + 3)
    assert inv.available == 7


def test_an_out_of_stock_buy_changes_nothing_and_says_how_many_are_left() -> None:
    inv = stocked(2)
    inv.buy("k1", "ann", 1, T0)
    before = (inv.counts(), len(inv.pending))
    with pytest.raises(OutOfStock, match="only 1 available"):
        inv.buy("k2", "bob", 2, T0)
    assert (inv.counts(), len(inv.pending)) == before


def test_idempotency_same_key_same_answer_different_request_refused() -> None:
    inv = stocked(5)
    first = inv.buy("key-1", "ann", 2, T0)
    assert inv.buy("key-1", "ann", 2, T0 + 5) == first
    assert inv.sold == 2  # the retry changed nothing
    with pytest.raises(IdempotencyMismatch):
        inv.buy("key-1", "ann", 3, T0)
    with pytest.raises(IdempotencyMismatch):
        inv.reserve("key-1", "ann", 2, ttl=60, now=T0)
    with pytest.raises(InvalidRequest):
        inv.buy("", "ann", 1, T0)


def test_per_buyer_limit_counts_holds_and_buys_and_frees_released_holds() -> None:
    inv = stocked(10, limit=2)
    hold = inv.reserve("k1", "ann", 1, ttl=60, now=T0)
    inv.buy("k2", "ann", 1, T0)
    with pytest.raises(LimitExceeded):
        inv.buy("k3", "ann", 1, T0)
    inv.release(hold["reservation"], T0)
    inv.buy("k4", "ann", 1, T0)  # the released unit no longer counts
    inv.buy("k5", "bob", 2, T0)  # limits are per buyer


def test_adjust_is_compare_and_set_and_keeps_reserved_units() -> None:
    inv = stocked(10)
    inv.reserve("k1", "ann", 4, ttl=60, now=T0)
    with pytest.raises(StaleQuantity):
        inv.adjust(expected=9, on_hand=20, ref="count", now=T0)
    with pytest.raises(Conflict):
        inv.adjust(expected=10, on_hand=3, ref="count", now=T0)
    assert inv.on_hand == 10
    inv.adjust(expected=10, on_hand=6, ref="count", now=T0)
    assert inv.counts() == {"on_hand": 6, "reserved": 4, "available": 2, "sold": 0}


@pytest.mark.parametrize("quantity", [0, -1, True, 1.5, 10**7])
def test_bad_quantities_are_refused(quantity: object) -> None:
    with pytest.raises(InvalidRequest):
        stocked(5).buy("k", "ann", quantity, T0)  # type: ignore[arg-type]


def test_state_survives_a_restart() -> None:
    inv = stocked(10, limit=5)
    hold = inv.reserve("k1", "ann", 3, ttl=60, now=T0)
    inv.buy("k2", "bob", 1, T0)
    back = Inventory.restore(inv.durable_state())
    assert back.counts() == inv.counts()
    back.commit(hold["reservation"], "order-1", T0 + 1)
    assert back.reserve("k3", "cat", 1, ttl=5, now=T0)["reservation"] != hold["reservation"]
    assert {b: back.held(b) for b in ("ann", "bob", "cat")} == {"ann": 3, "bob": 1, "cat": 1}
    assert back.buy("k2", "bob", 1, T0 + 2) == inv.answers["k2"][1]  # a retry after restart
    assert back.sold == 4


ops = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from("abc"), st.integers(1, 4), st.integers(1, 50)),
    st.tuples(st.just("buy"), st.sampled_from("abc"), st.integers(1, 4)),
    st.tuples(st.just("commit"), st.integers(0, 20)),
    st.tuples(st.just("release"), st.integers(0, 20)),
    st.tuples(st.just("restock"), st.integers(1, 5)),
    st.tuples(st.just("adjust"), st.integers(-1, 1), st.integers(0, 30)),
    st.tuples(st.just("retry"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(0, 30)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 20), limit=st.none() | st.integers(1, 6), program=st.lists(ops))
def test_never_oversold_stock_conserved_ledger_explains_everything(
    start: int, limit: int | None, program: list[tuple[Any, ...]]
) -> None:
    inv = Inventory("sku-p", limit_per_buyer=limit)
    if start:
        inv.restock(start, "initial", T0)
    now = T0
    added = start  # units that entered or left by restock and adjustment
    keys: list[tuple[str, tuple[Any, ...]]] = []
    rids: list[str] = []
    ledger: list[LedgerEntry] = []
    for step, op in enumerate(program):
        key = f"key-{step}"
        try:
            match op:
                case ("reserve", buyer, qty, ttl):
                    rids.append(
                        inv.reserve(key, str(buyer), int(qty), float(ttl), now)["reservation"]
                    )
                    keys.append((key, op))
                case ("buy", buyer, qty):
                    inv.buy(key, str(buyer), int(qty), now)
                    keys.append((key, op))
                case ("commit", i) if rids:
                    inv.commit(rids[int(i) % len(rids)], f"order-{step}", now)
                case ("release", i) if rids:
                    inv.release(rids[int(i) % len(rids)], now)
                case ("restock", qty):
                    inv.restock(int(qty), "restock", now)
                    added += int(qty)
                case ("adjust", skew, target):
                    before = inv.on_hand
                    inv.adjust(before + int(skew), int(target), "count", now)
                    added += int(target) - before
                case ("retry", i) if keys:
                    k, original = keys[int(i) % len(keys)]
                    snapshot = (inv.counts(), len(inv.pending))
                    if original[0] == "buy":
                        inv.buy(k, str(original[1]), int(original[2]), now)
                    else:
                        inv.reserve(k, str(original[1]), int(original[2]), float(original[3]), now)
                    assert (inv.counts(), len(inv.pending)) == snapshot  # a retry changes nothing
                case ("restart",):  # the actor commits its ledger, dies and reloads
                    ledger += inv.drain()
                    state = json.loads(json.dumps(inv.durable_state()))
                    back = Inventory.restore(state)
                    assert back.counts() == inv.counts()
                    assert all(back.held(b) == inv.held(b) for b in "abc")
                    inv = back
                case ("tick", seconds):
                    now += int(seconds)
                    inv.expire(now)
        except LiveshopError:
            pass
        # Never oversold, never negative.
        assert inv.available >= 0 and inv.reserved >= 0 and inv.sold >= 0
        # Reserved is exactly the open holds; per-buyer holdings within the limit.
        assert inv.reserved == sum(r.quantity for r in inv.reservations.values())
        if limit is not None:
            assert all(inv.held(b) <= limit for b in "abc")
        # Stock is conserved: what came in is on hand or sold.
        assert inv.on_hand + inv.sold == added
    # The ledger alone rebuilds the numbers.
    ledger += inv.drain()
    assert sum(e.on_hand for e in ledger) == inv.on_hand
    assert sum(e.reserved for e in ledger) == inv.reserved
    assert sum(e.sold for e in ledger) == inv.sold
