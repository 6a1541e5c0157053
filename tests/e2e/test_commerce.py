"""Buying inside the stream, over real sockets and HTTP: the pinned product's stock counter
reaches every viewer, buys are idempotent and survive a SKU actor kill, deals are pushed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from liveshop.commerce.inventory import Buy
from liveshop.errors import OutOfStock, Unavailable
from liveshop.mesh.sku_client import SkuClient
from liveshop.storage.pool import create_pool
from liveshop.storage.skus import SkuStore, buy_scope
from tests.e2e.client import Client
from tests.e2e.conftest import Running


def _stock(client: Client, sku: str) -> dict[str, Any] | None:
    """The latest counter of ``sku`` this client was pushed."""
    for push in reversed(client.pushes):
        stock = push.get("state", {}).get("stock")
        if stock is not None:
            return stock.get(sku)  # type: ignore[no-any-return]
    return None


async def _sees(client: Client, sku: str, **expected: Any) -> dict[str, Any]:
    def match() -> dict[str, Any] | None:
        view = _stock(client, sku)
        if view and all(view.get(k) == v for k, v in expected.items()):
            return view
        return None

    view: dict[str, Any] = await client.wait_for(match)
    return view


async def test_viewers_buy_the_pinned_product_and_everyone_sees_the_counter(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room, sku = new_id("shop"), new_id("sku")
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Drop"})).status_code == 201
        product = {"id": sku, "title": "Sneaker", "price_minor": 12000, "currency": "USD"}
        assert (await http.post("/products", json=product)).status_code == 201
        created = await http.post(
            "/skus", json={"id": sku, "product_id": sku, "on_hand": 3, "limit_per_buyer": 2}
        )
        assert created.status_code == 201, created.text
        assert created.json()["available"] == 3
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {room: ["host"]}))
    ann = await Client.open(url, running.token("ann", {room: ["viewer"]}))
    bob = await Client.open(url, running.token("bob", {room: ["viewer"]}), binary=True)
    try:
        for client in (host, ann, bob):
            await client.result("subscribe", room=room)
        await running.list_product(sku, room)
        await host.result("pin_product", room=room, product_id=sku)
        for client in (host, ann, bob):
            await _sees(client, sku, available=3, sold=0, price_minor=12000)
        # The pin and its stock counter arrive in the same push: no "stock: {}" moment.
        pinned = next(p for p in ann.pushes if any(e["kind"] == "pin" for e in p.get("events", ())))
        assert pinned["state"]["stock"][sku]["available"] == 3
        late = await Client.open(url, running.token("late", {room: ["viewer"]}))
        assert (await late.result("subscribe", room=room))["stock"][sku]["available"] == 3
        await late.close()

        first = await ann.result("buy", room=room, sku=sku, quantity=1, key="ann-1")
        assert (first["quantity"], first["total_minor"], first["currency"]) == (1, 12000, "USD")
        for client in (host, ann, bob):
            await _sees(client, sku, available=2, sold=1)
        # A retry gets the stored answer; the same key for another request is refused.
        again = await ann.result("buy", room=room, sku=sku, quantity=1, key="ann-1")
        assert again == {**first, "replayed": True}
        mismatch = await ann.request("buy", room=room, sku=sku, quantity=2, key="ann-1")
        assert mismatch["error"]["code"] == "idempotency_mismatch"
        await bob.result("buy", room=room, sku=sku, quantity=2, key="bob-1")
        sold_out = await ann.request("buy", room=room, sku=sku, quantity=1, key="ann-2")
        assert sold_out["error"]["code"] == "out_of_stock"
        assert sold_out["error"]["details"] == {"available": 0}
        over = await bob.request("buy", room=room, sku=sku, quantity=1, key="bob-2")
        assert over["error"]["code"] in ("out_of_stock", "limit_exceeded")

        async with running.http() as http:
            restocked = await http.post(f"/skus/{sku}/restock", json={"quantity": 10, "ref": "d1"})
            assert restocked.json()["available"] == 10, restocked.text
            stale = await http.post(
                f"/skus/{sku}/adjust", json={"expected": 3, "on_hand": 0, "ref": "count"}
            )
            assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_quantity"
        await _sees(bob, sku, available=10, sold=3)

        # A flash deal: only hosts run it; everyone is told it started, with its clock.
        refused = await bob.request(
            "start_deal", room=room, sku=sku, price_minor=5000, duration=60, quantity=2
        )
        assert refused["error"]["code"] == "forbidden"
        deal = await host.result(
            "start_deal", room=room, sku=sku, price_minor=5000, duration=60, quantity=2,
            limit_per_buyer=1,
        )  # fmt: skip
        assert deal["deal"]["phase"] == "live"
        for client in (ann, bob):
            started = await client.wait_event("deal_started", sku=sku)
            assert started["deal"]["price_minor"] == 5000
        limited = await ann.request("buy", room=room, sku=sku, quantity=2, key="ann-3")
        assert limited["error"]["code"] in ("limit_exceeded",)
        cheap = await ann.result("buy", room=room, sku=sku, quantity=1, key="ann-4")
        assert cheap["price_minor"] == 5000 and cheap["deal_id"] == deal["deal"]["deal_id"]
        await _sees(bob, sku, available=9)

        # Killed mid-show, the SKU comes back from PostgreSQL: the retry gets the same order.
        await running.kill_host_of("sku", sku)
        for _attempt in range(50):
            retry = await ann.request("buy", room=room, sku=sku, quantity=1, key="ann-4")
            if "result" in retry:
                break
            assert retry["error"]["code"] == "unavailable", retry
            await asyncio.sleep(0.2)
        assert retry["result"] == {**cheap, "replayed": True}
        await host.result("end_deal", room=room, sku=sku)
        for client in (ann, bob):
            await client.wait_event("deal_ended", sku=sku)

        # The same operations over HTTP for a user's own token.
        async with running.http() as http:
            token = running.token("cat", {room: ["viewer"]})
            as_cat = {"Authorization": f"Bearer {token}"}
            bought = await http.post(
                f"/rooms/{room}/commerce/buy", json={"sku": sku, "key": "c1"}, headers=as_cat
            )
            assert bought.status_code == 200 and bought.json()["price_minor"] == 12000
            missing = await http.post(
                f"/rooms/{room}/commerce/buy", json={"sku": "nope", "key": "c2"}, headers=as_cat
            )
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "sku_not_found"
            bad = await http.post(
                f"/rooms/{room}/commerce/buy",
                json={"sku": sku, "key": "c3", "quantity": 0},
                headers=as_cat,
            )
            assert bad.status_code == 422
            view = (await http.get(f"/skus/{sku}")).json()
            assert (view["sold"], view["available"], view["watchers"]) == (5, 8, [room])
        # Every acknowledged buy has its order row.
        assert running.settings.database_url
        conn = await asyncpg.connect(running.settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT o.buyer_id, l.quantity FROM orders o JOIN order_lines l "
                "ON l.order_id = o.id WHERE l.sku = $1 ORDER BY o.created_at",
                sku,
            )
        finally:
            await conn.close()
        assert [(r["buyer_id"], r["quantity"]) for r in rows] == [
            ("ann", 1), ("bob", 2), ("ann", 1), ("cat", 1),
        ]  # fmt: skip
    finally:
        for client in (host, ann, bob):
            await client.close()


async def test_holds_are_released_and_commerce_ops_need_a_role(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room, sku = new_id("hold"), new_id("sku")
    async with running.http() as http:
        await http.post("/rooms", json={"id": room, "title": "Holds"})
        product = {"id": sku, "title": "Lamp", "price_minor": 4500, "currency": "EUR"}
        await http.post("/products", json=product)
        await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 2})
    url = running.settings.ws_url
    ann = await Client.open(url, running.token("ann", {room: ["viewer"]}))
    eve = await Client.open(url, running.token("eve", {"elsewhere": ["viewer"]}))
    try:
        hold = await ann.result("reserve", room=room, sku=sku, quantity=2, key="h1", ttl=120)
        assert hold["price_minor"] == 4500
        assert (await ann.result("stock", room=room, sku=sku))["available"] == 0
        no_role = await eve.request("buy", room=room, sku=sku, key="e1")
        assert no_role["error"]["code"] == "forbidden"
        not_hers = await eve.request(
            "release", room="elsewhere", sku=sku, reservation=hold["reservation"]
        )
        assert not_hers["error"]["code"] == "reservation_not_found"
        await ann.result("release", room=room, sku=sku, reservation=hold["reservation"])
        assert (await ann.result("stock", room=room, sku=sku))["available"] == 2
        unknown = await ann.request("buy", room=room, sku=sku, key="x" * 65)
        assert unknown["error"]["code"] == "invalid_request"
    finally:
        for client in (ann, eve):
            await client.close()


async def test_killing_the_sku_actor_during_a_sale_loses_nothing(
    running: Running, new_id: Callable[[str], str]
) -> None:
    """The kill drill in small (loadtest/bench_flash.py --kill runs it at full size)."""
    sku = new_id("drill")
    async with running.http() as http:
        product = {"id": sku, "title": "Drill", "price_minor": 100, "currency": "USD"}
        await http.post("/products", json=product)
        await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 400})
    settings = running.settings
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    client = SkuClient(settings, SkuStore(pool))
    acknowledged: dict[tuple[str, str], str] = {}
    done = asyncio.Event()

    async def buyer(b: int) -> None:
        for n in range(10_000):
            key = f"k{n}"
            while True:  # an unanswered buy is retried with the same key
                try:
                    answer = await client.send(sku, Buy(f"b{b}", 1, key, "drill-room"))
                    break
                except Unavailable:
                    await asyncio.sleep(0.05)
                except OutOfStock:
                    return
            acknowledged[(f"b{b}", key)] = answer["order"]
            await asyncio.sleep(random.uniform(0.02, 0.2))  # buyers pace themselves

    async def killer() -> int:
        kills = 0
        while kills < 3 and not done.is_set():
            await asyncio.sleep(random.uniform(0.2, 0.5))
            if not done.is_set():
                await running.kill_host_of("sku", sku)
                kills += 1
        return kills

    try:
        kills = asyncio.ensure_future(killer())
        await asyncio.gather(*(buyer(b) for b in range(60)))
        done.set()
        assert await kills == 3
        audit = await SkuStore(pool).audit(sku)
        orders = await pool.fetch(
            "SELECT id, buyer_id, idem_key FROM orders WHERE idem_scope = $1", buy_scope(sku)
        )
    finally:
        await client.close()
        await pool.close()
    assert audit["problems"] == [] and audit["sold"] == 400 and audit["stock_in"] == 400
    assert {(o["buyer_id"], o["idem_key"]): o["id"] for o in orders} == acknowledged
    async with running.http() as http:
        assert (await http.get(f"/skus/{sku}/audit")).json()["problems"] == []


async def test_one_tap_buy_pay_cancel_ship_and_history(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room, sku = new_id("pay"), new_id("sku")
    async with running.http() as http:
        await http.post("/rooms", json={"id": room, "title": "Pay"})
        product = {"id": sku, "title": "Blender", "price_minor": 8900, "currency": "GBP"}
        await http.post("/products", json=product)
        await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 5})
        ann_auth = {"Authorization": f"Bearer {running.token('ann', {room: ['viewer']})}"}
        card = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2035}
        saved = await http.post("/users/ann/payment-methods", json=card, headers=ann_auth)
        assert saved.status_code == 201 and saved.json()["last4"] == "4242", saved.text
        bad = await http.post(
            "/users/ann/payment-methods", json={**card, "number": "4242424242424241"},
            headers=ann_auth,
        )  # fmt: skip
        assert bad.json()["error"]["code"] == "invalid_request"
        other = await http.post("/users/bob/payment-methods", json=card, headers=ann_auth)
        assert other.status_code == 403
    url = running.settings.ws_url
    ann = await Client.open(url, running.token("ann", {room: ["viewer"]}))
    bob = await Client.open(url, running.token("bob", {room: ["viewer"]}))
    try:
        # 1-tap: buy and pay with the saved card in one request.
        bought = await ann.result("buy", room=room, sku=sku, quantity=2, key="t1", pay=True)
        assert bought["payment"]["status"] == "succeeded"
        assert bought["payment"]["amount_minor"] == 17800
        # Without a saved card the purchase stands and the answer says why it is unpaid.
        unpaid = await bob.result("buy", room=room, sku=sku, key="b1", pay=True)
        assert unpaid["payment"]["error"]["code"] == "payment_method_not_found"
        refused = await bob.request("pay", room=room, order=bought["order"], key="x")
        assert refused["error"]["code"] == "order_not_found"  # not bob's order
        assert (await ann.result("stock", room=room, sku=sku))["available"] == 2

        async with running.http() as http:
            bob_auth = {"Authorization": f"Bearer {running.token('bob', {room: ['viewer']})}"}
            cancelled = await http.post(
                f"/orders/{unpaid['order']}/cancel", json={"note": "changed my mind"},
                headers=bob_auth,
            )  # fmt: skip
            assert cancelled.json()["status"] == "cancelled", cancelled.text
            view = (await http.get(f"/skus/{sku}")).json()
            assert view["available"] == 3  # the cancelled unit is back on sale
            not_yours = await http.post(
                f"/orders/{bought['order']}/cancel", json={}, headers=bob_auth
            )
            assert not_yours.status_code == 404  # as if it did not exist: no order volume
            assert not_yours.json()["error"]["code"] == "order_not_found"
            # The seller ships in two parcels; the buyer sees it all in their history.
            order = bought["order"]
            parcel = {"carrier": "royal-mail", "tracking": "RM1"}
            one = await http.post(
                f"/orders/{order}/shipments",
                json={**parcel, "lines": [{"line": 1, "quantity": 1}]},
            )
            assert one.status_code == 201 and one.json()["status"] == "fulfilled", one.text
            two = await http.post(
                f"/orders/{order}/shipments",
                json={"carrier": "dpd", "tracking": "D2", "lines": [{"line": 1, "quantity": 1}]},
            )
            assert two.json()["status"] == "shipped"
            delivered = await http.post(f"/orders/{order}/deliver", json={})
            assert delivered.json()["status"] == "delivered"
            # The viewer's own orders over the socket: history, details, a return.
            listed = await ann.result("orders", room=room, status="delivered")
            assert order in [o["id"] for o in listed["orders"]]
            theirs = await bob.request("order", room=room, order=order)
            assert theirs["error"]["code"] == "order_not_found"
            paid_already = await ann.request("cancel_order", room=room, order=order)
            assert paid_already["error"]["code"] == "forbidden"
            back = await ann.result(
                "request_return", room=room, order=order, lines=[{"line": 1, "quantity": 1}],
                reason="too big", key="r1",
            )  # fmt: skip
            assert (back["status"], back["refund_minor"]) == ("requested", 8900)
            mine = await http.get("/users/ann/orders", headers=ann_auth)
            mine_here = [(o["id"], o["status"]) for o in mine.json() if o["id"].startswith(sku)]
            assert mine_here == [(order, "delivered")]  # ann shopped in other tests too
            detail = (await http.get(f"/orders/{order}", headers=ann_auth)).json()
            assert [h["status"] for h in detail["history"]] == [
                "paid", "fulfilled", "shipped", "delivered",
            ]  # fmt: skip
            found = await http.get("/orders", params={"room_id": room, "status": "cancelled"})
            assert [o["id"] for o in found.json()] == [unpaid["order"]]
            assert (await http.get(f"/skus/{sku}/audit")).json()["problems"] == []

            # A provider that never answers: the order stays pending, then is reconciled.
            slow = {"number": "4000 0000 0000 0119", "exp_month": 1, "exp_year": 2035}
            await http.post("/users/ann/payment-methods", json=slow, headers=ann_auth)
        late = await ann.result("buy", room=room, sku=sku, key="t2", pay=True)
        assert late["payment"]["status"] == "pending"
        async with running.http() as http:
            for _ in range(100):
                status = (await http.get(f"/orders/{late['order']}")).json()["status"]
                if status == "paid":
                    break
                assert status == "pending"
                await asyncio.sleep(0.1)
            assert status == "paid"
    finally:
        for client in (ann, bob):
            await client.close()


async def test_a_live_auction_with_proxy_bids_a_snipe_and_a_paid_winner(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room, sku = new_id("auct"), new_id("sku")
    winner, rival = new_id("win"), new_id("riv")
    async with running.http() as http:
        await http.post("/rooms", json={"id": room, "title": "Collectibles"})
        product = {"id": sku, "title": "Signed card", "price_minor": 1, "currency": "USD"}
        await http.post("/products", json=product)
        await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 1})
        auth = {"Authorization": f"Bearer {running.token(winner, {room: ['viewer']})}"}
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035}
        assert (
            await http.post(f"/users/{winner}/payment-methods", json=card, headers=auth)
        ).status_code == 201
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {room: ["host"]}))
    ann = await Client.open(url, running.token(winner, {room: ["viewer"]}))
    bob = await Client.open(url, running.token(rival, {room: ["viewer"]}))
    try:
        for client in (host, ann, bob):
            await client.result("subscribe", room=room)
        await running.list_product(sku, room)
        refused = await bob.request(
            "start_auction", room=room, sku=sku, start_price=1000, min_increment=100, duration=3
        )
        assert refused["error"]["code"] == "forbidden"
        started = await host.result(
            "start_auction", room=room, sku=sku, start_price=1000, min_increment=100,
            duration=3, extend_window=2, reserve_price=1500,
        )  # fmt: skip
        auction = started["auction_id"]
        assert started["phase"] == "live" and started["minimum_bid"] == 1000
        for client in (ann, bob):
            await client.wait_event("auction_started")
        sold_out = await bob.request("buy", room=room, sku=sku, key="b0")
        assert sold_out["error"]["code"] == "out_of_stock"  # the unit is held for the auction

        first = await ann.result(
            "bid", room=room, auction=auction, amount=1000, max_amount=5000, key="a1"
        )
        assert (first["leading"], first["price"]) == (True, 1500)  # raised to the reserve
        low = await bob.request("bid", room=room, auction=auction, amount=1500, key="b1")
        assert low["error"]["code"] == "bid_too_low" and low["error"]["details"]["minimum"] == 1600
        outbid = await bob.result("bid", room=room, auction=auction, amount=2000, key="b2")
        assert (outbid["leading"], outbid["price"]) == (False, 2100)  # ann's proxy answered
        # A snipe in the last second extends the end.
        view = await bob.result("auction", room=room, auction=auction)
        await asyncio.sleep(max(0.0, view["ends_at"] - time.time() - 0.5))
        snipe = await bob.result("bid", room=room, auction=auction, amount=4000, key="b3")
        assert snipe["ends_at"] > view["ends_at"] and snipe["leading"] is False
        ended = await ann.wait_event("auction_ended", timeout=15)
        assert ended["result"] == {"winner": winner, "price": 4100, "reason": "sold"}
        late = await bob.request("bid", room=room, auction=auction, amount=9000, key="b4")
        assert late["error"]["code"] == "auction_not_live"

        async with running.http() as http:
            for _ in range(100):  # the winner's order is placed and paid with the saved card
                final = (await http.get(f"/auctions/{auction}")).json()
                if final.get("order"):
                    order = (await http.get(f"/orders/{final['order']}")).json()
                    if order["status"] == "paid":
                        break
                await asyncio.sleep(0.1)
            assert (order["buyer_id"], order["total_minor"], order["status"]) == (
                winner,
                4100,
                "paid",
            )
            bids = (await http.get(f"/auctions/{auction}/bids")).json()
            assert [(b["bidder"], b["amount"]) for b in bids] == [
                (winner, 1000), (rival, 2000), (rival, 4000),
            ]  # fmt: skip
            for _ in range(50):
                audit = (await http.get(f"/skus/{sku}/audit")).json()
                if audit["sold"] == 1:
                    break
                await asyncio.sleep(0.1)
            assert (audit["problems"], audit["sold"], audit["reserved"]) == ([], 1, 0)
    finally:
        for client in (host, ann, bob):
            await client.close()


async def test_cart_across_rooms_checkout_guest_and_returns(
    running: Running, new_id: Callable[[str], str]
) -> None:
    hold_room, open_room = new_id("hold"), new_id("open")
    mug, lamp = new_id("mug"), new_id("lamp")
    buyer, guest = new_id("buyer"), new_id("guest")
    async with running.http() as http:
        for room in (hold_room, open_room):
            await http.post("/rooms", json={"id": room, "title": room, "host_id": f"host-{room}"})
        for sku, price, seller in ((mug, 1200, "acme"), (lamp, 4500, "bolt")):
            product = {"id": sku, "title": sku, "price_minor": price, "currency": "USD",
                       "seller_id": seller}  # fmt: skip
            assert (await http.post("/products", json=product)).status_code == 201
            await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 3})
        rule = {"seller_id": "acme", "country": "US", "base_minor": 500, "per_item_minor": 100}
        assert (await http.put("/shipping-rules", json=rule)).status_code == 200
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {hold_room: ["host"], open_room: ["host"]}))
    me = await Client.open(
        url, running.token(buyer, {hold_room: ["viewer"], open_room: ["viewer"]})
    )
    address = {"name": "Ann Lee", "line1": "1 Main St", "city": "Austin", "region": "TX",
               "postcode": "78701", "country": "US"}  # fmt: skip
    try:
        # The hold room keeps units for carts; the other is first paid, first served.
        refused = await me.request("commerce_settings", room=hold_room, stock_policy="hold")
        assert refused["error"]["code"] == "forbidden"
        await host.result(
            "commerce_settings", room=hold_room, stock_policy="hold", hold_seconds=120
        )
        held = await me.result("add_to_cart", room=hold_room, sku=mug, quantity=2)
        assert held["policy"] == "hold" and held["lines"][0]["holds"]
        assert held["lines"][0]["room_id"] == hold_room
        assert held["lines"][0]["creator_id"] == f"host-{hold_room}"
        assert (await me.result("stock", room=hold_room, sku=mug))["available"] == 1
        loose = await me.result("add_to_cart", room=open_room, sku=lamp, quantity=1)
        assert loose["policy"] == "first_paid" and loose["units"] == 3
        assert (await me.result("stock", room=open_room, sku=lamp))["available"] == 3
        missing = await me.request("add_to_cart", room=open_room, sku="nope")
        assert missing["error"]["code"] == "sku_not_found"

        priced = await me.result("quote", room=open_room, address=address)
        assert priced["subtotal_minor"] == 2 * 1200 + 4500
        assert priced["shipping_by_seller"] == {"acme": 600, "bolt": 599}
        assert priced["tax_basis_points"] == 625
        bad = await me.request(
            "checkout", room=open_room, address={**address, "postcode": "1"}, key="c0"
        )
        assert bad["error"]["code"] == "invalid_request"
        assert bad["error"]["details"][0]["field"] == "postcode"

        # No saved card: the order is placed (units held for it) and waits for payment.
        done = await me.result("checkout", room=open_room, address=address, key="c1")
        order = done["order"]
        assert (order["status"], order["total_minor"]) == ("pending", priced["total_minor"])
        assert done["payment"]["error"]["code"] == "payment_method_not_found"
        assert (await me.result("cart", room=open_room))["lines"] == []
        again = await me.result("checkout", room=open_room, address=address, key="c1")
        assert again["order"]["id"] == order["id"] and again["replayed"] is True
        async with running.http() as http:
            auth = {"Authorization": f"Bearer {running.token(buyer, {})}"}
            card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035}
            await http.post(f"/users/{buyer}/payment-methods", json=card, headers=auth)
            paid = await http.post(f"/orders/{order['id']}/pay", json={"key": "p1"}, headers=auth)
            assert paid.json()["status"] == "succeeded", paid.text
            for _ in range(50):  # the sweeper turns the paid order's holds into sales
                views = [(await http.get(f"/skus/{s}")).json() for s in (mug, lamp)]
                if [v["sold"] for v in views] == [2, 1]:
                    break
                await asyncio.sleep(0.1)
            assert [(v["sold"], v["reserved"]) for v in views] == [(2, 0), (1, 0)]

            # Delivered, then one mug comes back: refunded with its tax, back on sale.
            oid = order["id"]
            mug_line = next(ln["line"] for ln in order["lines"] if ln["sku"] == mug)
            one_mug = {
                "lines": [{"line": mug_line, "quantity": 1}],
                "reason": "chipped",
                "key": "r1",
            }
            early = await http.post(f"/orders/{oid}/returns", headers=auth, json=one_mug)
            assert early.json()["error"]["code"] == "invalid_transition"  # not delivered yet
            everything = [{"line": ln["line"], "quantity": ln["quantity"]} for ln in order["lines"]]
            parcel = {"carrier": "ups", "tracking": "1Z", "lines": everything}
            assert (await http.post(f"/orders/{oid}/shipments", json=parcel)).status_code == 201
            assert (await http.post(f"/orders/{oid}/deliver", json={})).status_code == 200
            asked = await http.post(f"/orders/{oid}/returns", headers=auth, json=one_mug)
            assert asked.status_code == 201, asked.text
            refund = asked.json()["refund_minor"]
            assert refund == 1200 + tax_share(1200, 625)
            approved = await http.post(f"/returns/{asked.json()['return']}/approve")
            assert approved.json()["status"] == "refunded", approved.text
            assert approved.json()["refunded_minor"] == refund
            twice = await http.post(f"/returns/{asked.json()['return']}/approve")
            assert twice.json()["status"] == "refunded"
            for _ in range(50):
                audit = (await http.get(f"/skus/{mug}/audit")).json()
                if audit["returned"] == 1:
                    break
                await asyncio.sleep(0.1)
            assert (audit["problems"], audit["sold"], audit["available"]) == ([], 1, 2)

            # A guest checks out with a one-time card; an abandoned cart is an event.
            gauth = {"Authorization": f"Bearer {running.token(guest, {})}"}
            await http.post(
                f"/users/{guest}/cart/items", json={"sku": lamp, "quantity": 2}, headers=gauth
            )
            short = await http.post(
                f"/users/{guest}/checkout", headers=gauth,
                json={"address": address, "key": "g0", "skus": [lamp, mug]},
            )  # fmt: skip
            assert short.json()["error"]["message"].startswith("not in the cart")
            guest_order = await http.post(
                f"/users/{guest}/checkout", headers=gauth,
                json={"address": address, "key": "g1", "email": "g@example.com",
                      "card": {"number": "4242 4242 4242 4242", "exp_month": 1, "exp_year": 2036}},
            )  # fmt: skip
            assert guest_order.status_code == 201, guest_order.text
            assert guest_order.json()["payment"]["status"] == "succeeded"
            assert guest_order.json()["order"]["status"] == "paid"
            await http.post(
                f"/users/{guest}/cart/items", json={"sku": mug, "quantity": 1}, headers=gauth
            )
            for _ in range(60):
                abandoned = (await http.get("/events", params={"kind": "cart_abandoned"})).json()
                if any(e["user_id"] == guest for e in abandoned):
                    break
                await asyncio.sleep(0.1)
            assert any(
                e["user_id"] == guest and e["data"]["lines"][0]["sku"] == mug for e in abandoned
            )
            placed = (await http.get("/events", params={"kind": "order_placed"})).json()
            assert {order["id"], guest_order.json()["order"]["id"]} <= {
                e["data"]["order"] for e in placed
            }
            oversold = await http.post(
                f"/users/{guest}/cart/items", json={"sku": lamp, "quantity": 1}, headers=gauth
            )
            assert oversold.status_code == 200  # first paid: added; checkout finds none left
            gone = await http.post(
                f"/users/{guest}/checkout", headers=gauth,
                json={"address": address, "key": "g2", "skus": [lamp]},
            )  # fmt: skip
            assert gone.json()["error"]["code"] == "out_of_stock"
            assert gone.json()["error"]["details"]["available"] == {lamp: 0}
    finally:
        for client in (host, me):
            await client.close()


def tax_share(amount: int, basis_points: int) -> int:
    return (amount * basis_points + 5000) // 10000
