"""SKU stock decisions: never oversold, stock conserved, the ledger explains every number."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.commerce.inventory import (
    ANSWER_TTL,
    MAX_QUANTITY,
    Changes,
    FlashDeal,
    Inventory,
    LedgerEntry,
    Reservation,
    Stored,
    buy_fingerprint,
    reserve_fingerprint,
)
from liveshop.errors import (
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InvalidRequest,
    LimitExceeded,
    LiveshopError,
    OutOfStock,
    ReservationNotFound,
    StaleQuantity,
)

T0 = 1_800_000_000.0


def stocked(units: int = 10, limit: int | None = None, price: int = 1999) -> Inventory:
    inv = Inventory("sku-1", product_id="p-1", price_minor=price, limit_per_buyer=limit)
    inv.restock(units, "initial", T0)
    return inv


class Persisted:
    """What SkuStore keeps, modelled in memory: the row, the holds, the orders. The real
    store is tested against PostgreSQL (tests/integration/test_sku_store.py); this lets the
    property test restart the domain object after every commit."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}
        self.holds: dict[str, tuple[Reservation, str]] = {}
        self.orders: list[Any] = []
        self.commits: list[tuple[str, str]] = []  # (rid, order) of committed holds
        self.ledger: list[LedgerEntry] = []

    def commit(self, inv: Inventory) -> None:
        changes: Changes = inv.drain()
        self.row = json.loads(json.dumps(inv.row()))
        self.ledger += changes.ledger
        self.orders += changes.orders
        for hold in changes.holds:
            self.holds[hold.rid] = (dataclasses.replace(hold), "held")
        for closed in changes.closed:
            self.holds[closed.rid] = (self.holds[closed.rid][0], closed.status)

    def load(self) -> Stored:
        deal = (self.row.get("deal") or {}).get("deal_id")
        bought: dict[str, int] = {}
        deal_bought: dict[str, int] = {}
        answers = []
        for o in self.orders:
            answers.append(
                (o.buyer_id, o.key, buy_fingerprint(o.quantity, o.room_id), o.answer(), o.at)
            )
            bought[o.buyer_id] = bought.get(o.buyer_id, 0) + o.quantity
            if deal and o.deal_id == deal:
                deal_bought[o.buyer_id] = deal_bought.get(o.buyer_id, 0) + o.quantity
        for hold, status in self.holds.values():
            fp = reserve_fingerprint(hold.quantity, hold.ttl, hold.room_id)
            answers.append((hold.buyer_id, hold.key, fp, hold.answer(), hold.expires_at - hold.ttl))
            if status == "committed":
                bought[hold.buyer_id] = bought.get(hold.buyer_id, 0) + hold.quantity
                if deal and hold.deal_id == deal:
                    deal_bought[hold.buyer_id] = deal_bought.get(hold.buyer_id, 0) + hold.quantity
        return Stored(
            state=self.row,
            holds=[dataclasses.replace(h) for h, s in self.holds.values() if s == "held"],
            answers=answers,
            bought=bought,
            deal_bought=deal_bought,
        )


def restarted(inv: Inventory, db: Persisted) -> Inventory:
    db.commit(inv)
    return Inventory.restore(db.load())


def test_a_buy_places_an_order_at_the_price_and_moves_stock_to_sold() -> None:
    inv = stocked(5, price=1999)
    answer = inv.buy("k1", "ann", 2, T0, room_id="show-1")
    assert answer == {
        "order": "sku-1~o1", "sku": "sku-1", "quantity": 2, "price_minor": 1999,
        "total_minor": 3998, "currency": "USD", "deal_id": None,
    }  # fmt: skip
    changes = inv.drain()
    assert [o.order_id for o in changes.orders] == ["sku-1~o1"]
    assert changes.orders[0].room_id == "show-1"
    assert [e.kind for e in changes.ledger] == ["restock", "buy"]
    assert inv.counts() == {"on_hand": 3, "reserved": 0, "available": 3, "sold": 2}


def test_an_expired_hold_cannot_be_committed() -> None:
    inv = stocked(5)
    hold = inv.reserve("k1", "ann", 2, ttl=5, now=T0)
    with pytest.raises(ReservationNotFound, match="expired"):
        inv.commit(hold["reservation"], "order-1", T0 + 5)
    assert inv.sold == 0
    assert inv.next_expiry() == T0 + 5
    assert inv.expire(T0 + 5) == [hold["reservation"]]
    assert inv.available == 5
    assert inv.next_expiry() is None


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
    with pytest.raises(ReservationNotFound):
        inv.release(c["reservation"], T0 + 3, buyer_id="bob")  # not bob's to release
    inv.release(c["reservation"], T0 + 3, buyer_id="cat")
    assert inv.available == 7
    closed = [(h.rid, h.status) for h in inv.drain().closed]
    assert closed == [
        (a["reservation"], "committed"), (b["reservation"], "expired"),
        (c["reservation"], "released"),
    ]  # fmt: skip


def test_an_out_of_stock_buy_changes_nothing_and_says_how_many_are_left() -> None:
    inv = stocked(2)
    inv.buy("k1", "ann", 1, T0)
    inv.drain()
    with pytest.raises(OutOfStock, match="only 1 available") as refused:
        inv.buy("k2", "bob", 2, T0)
    assert refused.value.details == {"available": 1}
    assert inv.counts()["available"] == 1
    assert not inv.drain()
    inv.buy("k2", "bob", 1, T0)  # a refused key may be tried again


def test_idempotency_same_key_same_answer_different_request_refused() -> None:
    inv = stocked(5)
    first = inv.buy("key-1", "ann", 2, T0)
    assert inv.buy("key-1", "ann", 2, T0 + 5) == {**first, "replayed": True}
    assert inv.sold == 2  # the retry changed nothing
    with pytest.raises(IdempotencyMismatch):
        inv.buy("key-1", "ann", 3, T0)
    with pytest.raises(IdempotencyMismatch):
        inv.buy("key-1", "ann", 2, T0, room_id="another-room")
    with pytest.raises(IdempotencyMismatch):
        inv.reserve("key-1", "ann", 2, ttl=60, now=T0)
    assert inv.buy("key-1", "bob", 2, T0)["order"] != first["order"]  # keys are per buyer
    with pytest.raises(InvalidRequest):
        inv.buy("", "ann", 1, T0)
    with pytest.raises(InvalidRequest):
        inv.buy("k" * 65, "ann", 1, T0)


def test_answers_are_forgotten_after_a_day() -> None:
    inv = stocked(5)
    inv.buy("key-1", "ann", 1, T0)
    assert inv.prune_answers(T0 + ANSWER_TTL - 1) == 0
    assert inv.prune_answers(T0 + ANSWER_TTL) == 1
    assert not inv.answers


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
    with pytest.raises(StaleQuantity) as stale:
        inv.adjust(expected=9, on_hand=20, ref="count", now=T0)
    assert stale.value.details == {"on_hand": 10}
    with pytest.raises(Conflict):
        inv.adjust(expected=10, on_hand=3, ref="count", now=T0)
    assert inv.on_hand == 10
    inv.adjust(expected=10, on_hand=6, ref="count", now=T0)
    assert inv.counts() == {"on_hand": 6, "reserved": 4, "available": 2, "sold": 0}


@pytest.mark.parametrize("quantity", [0, -1, True, 1.5, 10**7])
def test_bad_quantities_are_refused(quantity: object) -> None:
    with pytest.raises(InvalidRequest):
        stocked(5).buy("k", "ann", quantity, T0)  # type: ignore[arg-type]


def test_a_flash_deal_has_its_price_quantity_and_limit_only_while_live() -> None:
    inv = stocked(100, price=5000)
    deal = FlashDeal("d1", 2500, T0 + 10, T0 + 70, quantity=3, limit_per_buyer=2)
    assert inv.start_deal(deal, T0)["deal"]["phase"] == "upcoming"
    assert inv.buy("k1", "ann", 1, T0 + 5)["price_minor"] == 5000  # not yet
    assert inv.buy("k2", "ann", 2, T0 + 10)["price_minor"] == 2500
    with pytest.raises(LimitExceeded, match="in this deal"):
        inv.buy("k3", "ann", 1, T0 + 11)
    hold = inv.reserve("k4", "bob", 1, ttl=60, now=T0 + 12)
    assert hold["price_minor"] == 2500 and hold["deal_id"] == "d1"
    with pytest.raises(OutOfStock, match="only 0 left in this deal"):
        inv.buy("k5", "cat", 1, T0 + 13)
    view = inv.snapshot(T0 + 13)["deal"]
    assert (view["phase"], view["sold"], view["remaining"]) == ("live", 2, 0)
    inv.release(hold["reservation"], T0 + 14)
    assert inv.buy("k5", "cat", 1, T0 + 15)["deal_id"] == "d1"
    with pytest.raises(Conflict):
        inv.start_deal(FlashDeal("d2", 1, T0 + 20, T0 + 30, 5), T0 + 16)
    inv.end_deal(T0 + 16)
    assert inv.snapshot(T0 + 16)["deal"]["phase"] == "ended"
    assert inv.buy("k6", "ann", 1, T0 + 17)["price_minor"] == 5000  # over: regular price
    with pytest.raises(Conflict):
        inv.end_deal(T0 + 18)
    with pytest.raises(InvalidRequest):
        inv.start_deal(FlashDeal("d3", 1, T0 + 20, T0 + 19, 5), T0 + 18)


def test_state_survives_a_restart() -> None:
    db = Persisted()
    inv = stocked(10, limit=5)
    inv.start_deal(FlashDeal("d1", 100, T0, T0 + 60, quantity=10, limit_per_buyer=3), T0)
    hold = inv.reserve("k1", "ann", 3, ttl=60, now=T0)
    first = inv.buy("k2", "bob", 1, T0)
    back = restarted(inv, db)
    assert back.snapshot(T0) == inv.snapshot(T0)
    back.commit(hold["reservation"], "order-1", T0 + 1)
    assert back.reserve("k3", "cat", 1, ttl=5, now=T0)["reservation"] != hold["reservation"]
    assert {b: back.held(b) for b in ("ann", "bob", "cat")} == {"ann": 3, "bob": 1, "cat": 1}
    assert back.buy("k2", "bob", 1, T0 + 2) == {**first, "replayed": True}  # after a restart
    assert back.sold == 4
    again = restarted(back, db)
    assert again.deal_bought == {"ann": 3, "bob": 1} and again.deal_reserved == 1
    with pytest.raises(LimitExceeded):
        again.buy("k4", "ann", 1, T0 + 3)
    assert again.buy("k5", "bob", 1, T0 + 3)["order"] not in {first["order"]}


ops = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from("abc"), st.integers(1, 4), st.integers(1, 50)),
    st.tuples(st.just("buy"), st.sampled_from("abc"), st.integers(1, 4)),
    st.tuples(st.just("commit"), st.integers(0, 20)),
    st.tuples(st.just("release"), st.integers(0, 20)),
    st.tuples(st.just("restock"), st.integers(1, 5)),
    st.tuples(st.just("adjust"), st.integers(-1, 1), st.integers(0, 30)),
    st.tuples(st.just("deal"), st.integers(1, 6), st.none() | st.integers(1, 3)),
    st.tuples(st.just("retry"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(0, 30)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 20), limit=st.none() | st.integers(1, 6), program=st.lists(ops))
def test_never_oversold_stock_conserved_ledger_explains_everything(
    start: int, limit: int | None, program: list[tuple[Any, ...]]
) -> None:
    db = Persisted()
    inv = Inventory("sku-p", product_id="p", price_minor=100, limit_per_buyer=limit)
    if start:
        inv.restock(start, "initial", T0)
    now = T0
    added = start  # units that entered or left by restock and adjustment
    keys: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    rids: list[str] = []
    for step, op in enumerate(program):
        key = f"key-{step}"
        try:
            match op:
                case ("reserve", buyer, qty, ttl):
                    answer = inv.reserve(key, str(buyer), int(qty), float(ttl), now)
                    rids.append(answer["reservation"])
                    keys.append((key, op, answer))
                case ("buy", buyer, qty):
                    keys.append((key, op, inv.buy(key, str(buyer), int(qty), now)))
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
                case ("deal", qty, per_buyer):
                    deal = FlashDeal(f"d{step}", 50, now, now + 20, int(qty), per_buyer)
                    inv.start_deal(deal, now)
                case ("retry", i) if keys:
                    k, original, first = keys[int(i) % len(keys)]
                    snapshot = inv.counts()
                    if original[0] == "buy":
                        again = inv.buy(k, str(original[1]), int(original[2]), now)
                    else:
                        again = inv.reserve(
                            k, str(original[1]), int(original[2]), float(original[3]), now
                        )
                    assert again == {**first, "replayed": True}  # the same stored answer
                    assert inv.counts() == snapshot  # and a retry changes nothing
                case ("restart",):  # the actor commits, dies and reloads
                    before = inv
                    inv = restarted(inv, db)
                    assert inv.snapshot(now) == before.snapshot(now)
                    assert all(inv.held(b) == before.held(b) for b in "abc")
                    assert inv.deal_bought == before.deal_bought
                case ("tick", seconds):
                    now += int(seconds)
                    inv.expire(now)
        except LiveshopError:
            pass
        # Never oversold, never negative.
        assert inv.available >= 0 and inv.reserved >= 0 and inv.sold >= 0
        # Reserved is exactly the open holds; per-buyer holdings within the limits.
        assert inv.reserved == sum(r.quantity for r in inv.reservations.values())
        if limit is not None:
            assert all(inv.held(b) <= limit for b in "abc")
        deal = inv.deal
        if deal is not None:
            assert inv.deal_sold + inv.deal_reserved <= deal.quantity
            if deal.limit_per_buyer is not None:
                for b in "abc":
                    mine = inv.deal_bought.get(b, 0) + inv._deal_holding.get(b, 0)
                    assert mine <= deal.limit_per_buyer
        # Stock is conserved: what came in is on hand or sold.
        assert inv.on_hand + inv.sold == added
    # The ledger alone rebuilds the numbers.
    db.commit(inv)
    assert sum(e.on_hand for e in db.ledger) == inv.on_hand
    assert sum(e.reserved for e in db.ledger) == inv.reserved
    assert sum(e.sold for e in db.ledger) == inv.sold
    # Every unit sold by a buy has its order; no two orders share a buyer's key.
    assert len({(o.buyer_id, o.key) for o in db.orders}) == len(db.orders)


def test_a_deal_belongs_to_its_room() -> None:
    """Only buys made in the deal's room get its price; only that room ends it; another
    room cannot replace a deal coming up there."""
    inv = stocked(10)
    inv.start_deal(FlashDeal("d1", 100, T0, T0 + 60, quantity=5, room_id="show"), T0)
    assert inv.buy("k1", "ann", 1, T0 + 1, room_id="show")["price_minor"] == 100
    assert inv.buy("k2", "bob", 1, T0 + 1, room_id="elsewhere")["price_minor"] == 1999
    assert inv.buy("k3", "cat", 1, T0 + 1)["price_minor"] == 1999  # no room: a service
    assert inv.deal_sold == 1
    with pytest.raises(Forbidden):
        inv.end_deal(T0 + 2, room_id="elsewhere")
    assert inv.live_deal(T0 + 2) is not None
    inv.end_deal(T0 + 2, room_id="show")
    assert inv.live_deal(T0 + 3) is None and inv.deal is not None
    assert inv.deal.room_id == "show" and inv.deal.ends_at == T0 + 2
    inv.start_deal(FlashDeal("d2", 50, T0 + 100, T0 + 200, quantity=1, room_id="show"), T0 + 3)
    with pytest.raises(Conflict):
        inv.start_deal(FlashDeal("d3", 0, T0 + 10, T0 + 20, quantity=5, room_id="other"), T0 + 4)
    # The room running the upcoming deal may replace it.
    inv.start_deal(FlashDeal("d4", 60, T0 + 10, T0 + 20, quantity=1, room_id="show"), T0 + 4)
    assert inv.deal.deal_id == "d4"


@pytest.mark.parametrize("key", ["nul\x00", "lone\ud800", "ctl\x1b"])
def test_keys_postgresql_cannot_store_are_refused(key: str) -> None:
    inv = stocked(3)
    inv.drain()
    with pytest.raises(InvalidRequest, match="idempotency key"):
        inv.buy(key, "ann", 1, T0)
    assert inv.available == 3 and not inv.drain()


def _run(inv: Inventory, program: list[tuple[Any, ...]], start: float) -> list[Any]:
    """Apply a program (the ``ops`` above, restarts aside); the answers or error codes."""
    now, out = start, []
    for step, op in enumerate(program):
        key = f"key-{step}"
        rids = sorted(inv.reservations)
        try:
            match op:
                case ("reserve", buyer, qty, ttl):
                    out.append(inv.reserve(key, str(buyer), int(qty), float(ttl), now))
                case ("buy", buyer, qty):
                    out.append(inv.buy(key, str(buyer), int(qty), now))
                case ("commit", i) if rids:
                    out.append(inv.commit(rids[int(i) % len(rids)], f"order-{step}", now))
                case ("release", i) if rids:
                    out.append(inv.release(rids[int(i) % len(rids)], now))
                case ("restock", qty):
                    out.append(inv.restock(int(qty), "restock", now))
                case ("adjust", skew, target):
                    out.append(inv.adjust(inv.on_hand + int(skew), int(target), "count", now))
                case ("deal", qty, per_buyer):
                    deal = FlashDeal(f"d{step}", 50, now, now + 20, int(qty), per_buyer)
                    out.append(inv.start_deal(deal, now))
                case ("tick", seconds):
                    now += int(seconds)
                    out.append(inv.expire(now))
        except LiveshopError as exc:
            out.append(exc.code)
    return out


@settings(max_examples=200, deadline=None)
@given(before=st.lists(ops, max_size=30), after=st.lists(ops, max_size=30))
def test_a_copy_is_a_checkpoint_the_original_cannot_touch(
    before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    """The SKU actor goes back to a copy when a commit is refused (instead of reloading):
    nothing done to the original after the copy may show in it, and the copy decides the
    same as the original would have."""
    import copy

    inv = stocked(8, limit=5)
    _run(inv, before, T0)
    twin, frozen = inv.copy(), copy.deepcopy(inv)
    assert twin == frozen
    answers = _run(inv, after, T0 + 100)
    assert twin == frozen  # untouched by what the original did
    assert _run(twin, after, T0 + 100) == answers
    assert twin.snapshot(T0 + 200) == inv.snapshot(T0 + 200) and twin.drain() == inv.drain()


@pytest.mark.parametrize(
    "command",
    [
        lambda inv: inv.restock(1, "ref\x00", T0),
        lambda inv: inv.adjust(inv.on_hand, 1, "count\ud800", T0),
        lambda inv: inv.start_deal(FlashDeal("d\x00", 1, T0, T0 + 9, 1, room_id="r"), T0),
        lambda inv: inv.commit(inv.reserve("k", "ann", 1, 60, T0)["reservation"], "o\x00", T0),
    ],
)
def test_every_text_a_command_writes_is_checked_before_it_is_decided(command: Any) -> None:
    """What PostgreSQL cannot store never reaches a group commit (it would cost a bisection)."""
    inv = stocked(3)
    inv.drain()
    with pytest.raises(InvalidRequest, match="cannot store"):
        command(inv)
    assert inv.on_hand == 3 and inv.deal is None


@settings(max_examples=100)
@given(
    holds=st.lists(st.tuples(st.floats(1, 600), st.booleans()), max_size=8),
    deal=st.one_of(st.none(), st.tuples(st.floats(-100, 100), st.floats(1, 300))),
    at=st.floats(0, 900),
)
def test_a_sku_clock_never_sleeps_past_its_next_timed_change(
    holds: list[tuple[float, bool]], deal: tuple[float, float] | None, at: float
) -> None:
    """``next_due`` is when a SKU at rest wakes (its clock sleeps until then): nothing may
    lapse, start or end before it, and it is None only when nothing is timed."""
    inv = stocked(100)
    if deal is not None:
        starts, length = deal
        inv.start_deal(
            FlashDeal("d", 50, T0 + starts, T0 + starts + length, 10), T0 + min(0, starts)
        )
    for n, (ttl, released) in enumerate(holds):
        rid = inv.reserve(f"k{n}", f"b{n}", 1, ttl=ttl, now=T0)["reservation"]
        if released:
            inv.release(rid, T0)
    now = T0 + at
    due = inv.next_due(now)
    timed = [r.expires_at for r in inv.reservations.values()]
    if inv.deal is not None and now < inv.deal.ends_at:
        timed.append(inv.deal.starts_at if now < inv.deal.starts_at else inv.deal.ends_at)
    assert due == (min(timed) if timed else None)
    if due is not None:  # nothing lapses before it
        assert inv.copy().expire(due - 1e-6) == []
    else:
        assert inv.copy().expire(T0 + 10_000) == []
