"""Orders and payments against real PostgreSQL with the built-in test provider: nothing is
charged twice, a timeout leaves the order pending until it is reconciled, a cancellation
owes its stock back and refunds what was paid."""

from __future__ import annotations

import asyncpg
import pytest

from liveshop.commerce.inventory import Inventory, ReturnStock
from liveshop.commerce.order import ShipmentLine
from liveshop.commerce.product import Product
from liveshop.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidRequest,
    InvalidTransition,
    PaymentDeclined,
    PaymentMethodNotFound,
)
from liveshop.payments.cashier import Cashier
from liveshop.payments.test_provider import (
    CHALLENGE,
    CHALLENGE_CODE,
    DECLINE,
    TIMEOUT,
    TestProvider,
)
from liveshop.storage.orders import OrderStore
from liveshop.storage.payments import PaymentStore
from liveshop.storage.products import ProductStore
from liveshop.storage.skus import ReturnAlreadyApplied, SkuStore

T0 = 1_800_000_000.0
VISA = "4242424242424242"


async def _shop(pool: asyncpg.Pool) -> tuple[SkuStore, Inventory, Cashier, OrderStore]:
    await pool.execute("TRUNCATE payments, payment_methods, test_provider_charges CASCADE")
    product = await ProductStore(pool).create(Product("p1", "Mug", 1500, "EUR"))
    skus = SkuStore(pool)
    await skus.create("p1", product, on_hand=10, limit_per_buyer=None, now=T0)
    inv = Inventory.restore(await skus.load("p1", now=T0))
    orders = OrderStore(pool)
    cashier = Cashier(TestProvider(pool), PaymentStore(pool), orders, timeout=0.3)
    return skus, inv, cashier, orders


async def _save(skus: SkuStore, inv: Inventory) -> None:
    version = await skus.pool.fetchval("SELECT version FROM skus WHERE id = $1", inv.sku)
    await skus.save(inv.row(), inv.drain(), version=(version, version + 1))


async def _order(skus: SkuStore, inv: Inventory, buyer: str, key: str, qty: int = 1) -> str:
    order_id: str = inv.buy(key, buyer, qty, T0)["order"]
    await _save(skus, inv)
    return order_id


async def _card(cashier: Cashier, user: str, number: str) -> str:
    card = await cashier.provider.tokenize(number, 12, 2035)
    method: str = (await cashier.payments.save_method(user, "test", card))["id"]
    return method


async def test_a_payment_is_made_once_and_marks_the_order_paid(pool: asyncpg.Pool) -> None:
    skus, inv, cashier, orders = await _shop(pool)
    order_id = await _order(skus, inv, "ann", "k1", qty=2)
    with pytest.raises(PaymentMethodNotFound):
        await cashier.pay(order_id, "ann", None, "pay-1")
    method = await _card(cashier, "ann", VISA)
    paid = await cashier.pay(order_id, "ann", None, "pay-1")  # 1-tap: the newest method
    assert (paid["status"], paid["amount_minor"], paid["order_status"]) == (
        "succeeded",
        3000,
        "paid",
    )
    again = await cashier.pay(order_id, "ann", method, "pay-1")
    assert again["payment"] == paid["payment"] and again["status"] == "succeeded"
    with pytest.raises(InvalidTransition):
        await cashier.pay(order_id, "ann", method, "pay-2")  # a second charge is refused
    assert await pool.fetchval("SELECT count(*) FROM test_provider_charges") == 1
    order = await orders.get(order_id)
    assert order["status"] == "paid" and [h["status"] for h in order["history"]] == ["paid"]
    saved = await cashier.payments.methods("ann")
    assert [(m["brand"], m["last4"]) for m in saved] == [("visa", "4242")]
    assert "4242424242424242" not in str(await pool.fetch("SELECT * FROM payment_methods"))


async def test_declines_challenges_and_a_key_reused_with_another_card(pool: asyncpg.Pool) -> None:
    skus, inv, cashier, orders = await _shop(pool)
    order_id = await _order(skus, inv, "ann", "k1")
    declining = await _card(cashier, "ann", DECLINE)
    with pytest.raises(PaymentDeclined, match="card_declined"):
        await cashier.pay(order_id, "ann", declining, "a1")
    assert (await orders.get(order_id))["status"] == "pending"  # another card may work
    challenged = await _card(cashier, "ann", CHALLENGE)
    with pytest.raises(IdempotencyMismatch):
        await cashier.pay(order_id, "ann", challenged, "a1")
    step = await cashier.pay(order_id, "ann", challenged, "a2")
    assert step["status"] == "requires_action"
    with pytest.raises(Conflict):  # one payment in flight at a time
        await cashier.pay(order_id, "ann", declining, "a3")
    done = await cashier.confirm(step["payment"], "ann", CHALLENGE_CODE)
    assert (done["status"], done["order_status"]) == ("succeeded", "paid")


async def test_a_timeout_leaves_the_order_pending_until_reconciled(pool: asyncpg.Pool) -> None:
    skus, inv, cashier, orders = await _shop(pool)
    order_id = await _order(skus, inv, "ann", "k1")
    slow = await _card(cashier, "ann", TIMEOUT)
    answer = await cashier.pay(order_id, "ann", slow, "t1")
    assert answer["status"] == "pending"
    assert (await orders.get(order_id))["status"] == "pending"  # no half-order
    assert await orders.unpaid(T0 + 10**9) == []  # a payment is under way: not expired
    assert await cashier.reconcile(older_than=T0 + 10**9) == 1
    order = await orders.get(order_id)
    assert order["status"] == "paid" and order["payments"][0]["status"] == "succeeded"
    # A payment the provider never received is failed, not left hanging.
    other = await _order(skus, inv, "bob", "k2")
    visa = await _card(cashier, "bob", VISA)
    started, _ = await cashier.payments.start(other, "bob", visa, "lost")
    assert await cashier.reconcile(older_than=T0 + 10**9) == 1
    assert (await cashier.payments.get(started["payment"]))["status"] == "failed"
    assert (await orders.get(other))["status"] == "pending"


async def test_cancelling_owes_stock_back_once_and_refunds_a_paid_order(
    pool: asyncpg.Pool,
) -> None:
    skus, inv, cashier, orders = await _shop(pool)
    order_id = await _order(skus, inv, "ann", "k1", qty=3)
    await _card(cashier, "ann", VISA)
    await cashier.pay(order_id, "ann", None, "p1")
    order, before = await orders.cancel(order_id, by="svc", note="out of season")
    assert (order["status"], before) == ("cancelled", "paid")
    assert await cashier.refund(order_id) == 4500
    assert await cashier.refund(order_id) == 4500  # idempotent
    with pytest.raises(InvalidTransition):
        await orders.cancel(order_id, by="svc")
    due = await skus.returns_due("p1")
    assert due == [(f"cancel:{order_id}", "ann", 3, None)]
    zombie = Inventory.restore(await skus.load("p1", now=T0 + 1))  # an older incarnation
    for ref, buyer, qty, deal in due:
        inv.apply(ReturnStock(ref, buyer, qty, deal), T0 + 1)
        zombie.apply(ReturnStock(ref, buyer, qty, deal), T0 + 1)
    await _save(skus, inv)
    with pytest.raises(ReturnAlreadyApplied):  # the same return twice: rolled back whole
        await _save(skus, zombie)
    assert await skus.returns_due("p1") == []
    audit = await skus.audit("p1")
    assert (audit["problems"], audit["on_hand"], audit["returned"]) == ([], 10, 3)
    back = Inventory.restore(await skus.load("p1", now=T0 + 2))
    assert back.bought == {} and back.counts() == inv.counts()


async def test_split_shipments_and_delivery(pool: asyncpg.Pool) -> None:
    skus, inv, cashier, orders = await _shop(pool)
    order_id = await _order(skus, inv, "ann", "k1", qty=3)
    with pytest.raises(InvalidTransition):
        await orders.ship(order_id, carrier="dhl", tracking="1", lines=[ShipmentLine(1, 1)], by="s")
    await _card(cashier, "ann", VISA)
    await cashier.pay(order_id, "ann", None, "p1")
    first = await orders.ship(
        order_id, carrier="dhl", tracking="A1", lines=[ShipmentLine(1, 2)], by="svc"
    )
    assert first["status"] == "fulfilled" and len(first["shipments"]) == 1
    with pytest.raises(InvalidRequest):
        await orders.ship(
            order_id, carrier="dhl", tracking="A2", lines=[ShipmentLine(1, 2)], by="s"
        )
    done = await orders.ship(
        order_id, carrier="ups", tracking="B1", lines=[ShipmentLine(1, 1)], by="svc"
    )
    assert done["status"] == "shipped"
    assert [s["lines"] for s in done["shipments"]] == [
        [{"line": 1, "quantity": 2}],
        [{"line": 1, "quantity": 1}],
    ]
    delivered = await orders.transition(order_id, "delivered", by="svc")
    assert delivered["status"] == "delivered"
    history = [h["status"] for h in (await orders.get(order_id))["history"]]
    assert history == ["paid", "fulfilled", "shipped", "delivered"]
    found = await orders.search(buyer_id="ann", status="delivered")
    assert [o["id"] for o in found] == [order_id]
    assert await orders.search(buyer_id="bob") == []


async def test_returns_within_the_window_only_and_never_more_than_delivered(
    pool: asyncpg.Pool,
) -> None:
    skus, inv, cashier, orders = await _shop(pool)
    order_id = await _order(skus, inv, "ann", "k1", qty=2)
    await _card(cashier, "ann", VISA)
    await cashier.pay(order_id, "ann", None, "p1")
    await orders.ship(order_id, carrier="dhl", tracking="A", lines=[ShipmentLine(1, 2)], by="s")
    await orders.transition(order_id, "delivered", by="svc")
    delivered = (await orders.get(order_id))["updated_at"]
    one = [ShipmentLine(1, 1)]
    with pytest.raises(InvalidTransition, match="30-day return window"):
        await orders.request_return(order_id, "ann", one, "late", "r0", now=delivered + 31 * 86400)
    from liveshop.errors import OrderNotFound

    with pytest.raises(OrderNotFound):
        await orders.request_return(order_id, "bob", one, "not mine", "r0", now=delivered)
    first = await orders.request_return(order_id, "ann", one, "too big", "r1", now=delivered)
    assert first["refund_minor"] == 1500  # no tax on an order without an address
    assert (await orders.request_return(order_id, "ann", one, "x", "r1", now=delivered)) == first
    second = await orders.request_return(order_id, "ann", one, "too", "r2", now=delivered)
    with pytest.raises(InvalidRequest, match="0 units left"):
        await orders.request_return(order_id, "ann", one, "and", "r3", now=delivered)
    rejected = await orders.decide_return(second["return"], approve=False)
    assert rejected["status"] == "rejected"
    with pytest.raises(InvalidTransition):
        await orders.decide_return(second["return"], approve=True)
    approved = await orders.decide_return(first["return"], approve=True)
    assert approved["status"] == "approved"
    assert await skus.returns_due("p1") == [(f"return:{first['return']}", "ann", 1, None)]
    assert (
        await cashier.refund(order_id, amount_minor=1500, key=f"return:{first['return']}") == 1500
    )
    assert (await orders.mark_refunded(first["return"]))["status"] == "refunded"
