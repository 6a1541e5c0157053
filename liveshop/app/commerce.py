"""Commerce operations for a caller, shared by the gateway (WebSocket) and the API (HTTP):
buys, holds and deals go to SKU actors; payments to the cashier; cancellations owe stock
back and poke the SKUs to take it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import asyncpg

from liveshop import clock, metrics
from liveshop.app.ops import require_host, sku_command_for
from liveshop.commerce.auction import AuctionTerms
from liveshop.commerce.inventory import Commit, EndDeal, Release, Reserve
from liveshop.commerce.listing import PROMOTIONS, acts_for_seller
from liveshop.commerce.order import ShipmentLine
from liveshop.config import Settings
from liveshop.errors import (
    ClientError,
    Forbidden,
    InvalidRequest,
    LiveshopError,
    OrderNotFound,
    Unavailable,
)
from liveshop.mesh.auction_client import AuctionClient
from liveshop.mesh.batcher import Batcher
from liveshop.mesh.cart_client import CartClient
from liveshop.mesh.sku_client import SkuClient
from liveshop.payments.cashier import Cashier
from liveshop.storage.auctions import AuctionStore
from liveshop.storage.carts import CartStore
from liveshop.storage.pool import TRANSIENT_DB_ERRORS
from liveshop.storage.products import ProductStore
from liveshop.storage.skus import SkuStore
from liveshop.tokens import Identity

log = logging.getLogger(__name__)

#: A stock return not applied this long after it was made lost its poke: poke again (s).
RETURNS_WAIT = 30.0


class Commerce:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.sku_store = SkuStore(pool)
        self.skus = SkuClient(settings, self.sku_store)
        self.auction_store = AuctionStore(pool)
        self.auctions = AuctionClient(settings, self.auction_store)
        self.cart_store = CartStore(pool)
        self.products = ProductStore(pool)
        self.carts = CartClient(settings, pool)
        self.cashier = Cashier.using(settings, pool)
        self.payments = self.cashier.payments
        self.orders = self.cashier.orders
        #: Buy answers' order numbers, read in batches: one query for the buys answered
        #: meanwhile, however many there are.
        self._numbers: Batcher[str] = Batcher(self._numbers_of, window=0.0, max_batch=1000)

    async def run(self, op: str, who: Identity, params: Any) -> dict[str, Any]:
        """One validated commerce op (protocol.COMMERCE_OPS) for ``who``, timed for the
        ``liveshop_commerce_seconds`` metric by op and outcome (an error's code)."""
        started = time.perf_counter()
        outcome = "internal"
        try:
            result = await self._run(op, who, params)
            outcome = "ok"
            return result
        except LiveshopError as exc:
            outcome = exc.code
            raise
        finally:
            with contextlib.suppress(Exception):  # never instead of the op's own outcome
                metrics.commerce(op, outcome, time.perf_counter() - started)

    async def _run(self, op: str, who: Identity, params: Any) -> dict[str, Any]:
        if op == "end_deal":
            return await self.end_deal(who, params)
        if not who.roles_in(params.room):
            raise Forbidden(f"your token grants no role in room {params.room!r}")
        what = PROMOTIONS.get(op)
        if what is not None:
            # Deals and auctions: the seller must allow this room (commerce/listing.py),
            # whoever asks; a service too (a cue, for one, runs as its channel).
            require_host(who, params.room, what)
            (await self.products.sku_listing(params.sku, params.room)).require(what)
        match op:
            case "stock":
                return await self.skus.view(params.sku)
            case "pay":
                return await self.cashier.pay(params.order, who.user_id, params.method, params.key)
            case "confirm_payment":
                return await self.cashier.confirm(params.payment, who.user_id, params.code)
            case "bid":
                return await self.auctions.bid(
                    params.auction, who.user_id, params.amount, params.max_amount, params.key,
                    params.room,
                )  # fmt: skip
            case "auction":
                return await self.auctions.view(params.auction)
            case "start_auction":
                return await self.start_auction(who, params)
            case "add_to_cart":
                return await self.carts.run(
                    who.user_id, "add", params.sku, params.quantity, params.room
                )
            case "update_cart":
                return await self.carts.run(
                    who.user_id, "set_quantity", params.sku, params.quantity
                )
            case "remove_from_cart":
                return await self.carts.run(who.user_id, "remove", params.sku)
            case "cart":
                return await self.carts.run(who.user_id, "view")
            case "quote":
                return await self.carts.run(who.user_id, "quote", params.address, params.skus)
            case "checkout":
                return await self.checkout(who.user_id, params.address, params.key,
                                           email=params.email, method_id=params.method,
                                           pay=params.pay, skus=params.skus)  # fmt: skip
            case "orders":
                found = await self.orders.search(
                    buyer_id=who.user_id, status=params.status, before=params.before,
                    limit=params.limit,
                )  # fmt: skip
                return {"orders": found}
            case "order":
                order = await self.orders.get(params.order)
                if order["buyer_id"] != who.user_id:
                    # The same answer as for no order at all: numbers leak no volume.
                    raise OrderNotFound(f"no order {params.order!r}")
                return order
            case "cancel_order":
                return await self.cancel_for(params.order, who.user_id, service=False)
            case "request_return":
                return await self.request_return(
                    params.order, who.user_id, params.lines, params.reason, params.key
                )
            case "commerce_settings":
                require_host(who, params.room, "the room's commerce settings")
                hold = params.hold_seconds or self.settings.hold_seconds
                if hold > self.settings.hold_seconds:
                    # Holds keep stock from every other buyer: a room cannot hold longer.
                    raise InvalidRequest(f"hold_seconds: at most {self.settings.hold_seconds:g} s")
                await self.cart_store.set_room_policy(params.room, params.stock_policy, hold)
                return {"room": params.room, "stock_policy": params.stock_policy,
                        "hold_seconds": hold}  # fmt: skip
        command = sku_command_for(
            op, who, params, hold_seconds=self.settings.hold_seconds, now=clock.now()
        )
        answer = await self.skus.send(params.sku, command)
        if op == "buy":
            # The readable number PostgreSQL gave the order when the SKU actor inserted it.
            answer = {**answer, "number": await self._numbers.submit(answer["order"])}
        if op == "buy" and params.pay:
            # 1-tap: the purchase stands whatever the payment does; the answer says both.
            try:
                answer = {
                    **answer,
                    "payment": await self.cashier.pay(
                        answer["order"], who.user_id, params.method, params.key
                    ),
                }
            except ClientError as exc:
                answer = {**answer, "payment": {"status": "failed", "error": exc.to_dict()}}
        return answer

    async def _numbers_of(self, order_ids: list[str]) -> list[str | None]:
        try:
            return await self.orders.numbers_of(order_ids)
        except TRANSIENT_DB_ERRORS as exc:
            raise Unavailable("the order is placed; retry with the same key to see it") from exc

    async def end_deal(self, who: Identity, p: Any) -> dict[str, Any]:
        """End the SKU's deal. Ending only takes a price away, so no listing is needed: the
        seller (their own token) or a service ends any deal on the seller's stock, a room's
        host or co-host the deal their room runs (``Inventory.end_deal`` checks the room),
        even once the seller has unlisted the room."""
        listing = await self.products.sku_listing(p.sku, p.room)
        if acts_for_seller(who, listing.seller_id):
            return await self.skus.send(p.sku, EndDeal(None))
        require_host(who, p.room, "flash deals")
        return await self.skus.send(p.sku, EndDeal(p.room))

    async def start_auction(self, who: Identity, p: Any) -> dict[str, Any]:
        """Hold one unit of the SKU for the auction's whole life, record the auction, start
        its actor (which pushes the auction to the room)."""
        now = clock.now()
        auction_id = f"auc-{secrets.token_hex(5)}"
        terms = AuctionTerms(
            auction_id=auction_id, start_price=p.start_price, min_increment=p.min_increment,
            starts_at=now + p.starts_in, ends_at=now + p.starts_in + p.duration,
            currency=(await self.skus.view(p.sku))["currency"], reserve_price=p.reserve_price,
            mode=p.mode, extend_window=p.extend_window,
        )  # fmt: skip
        terms.check()
        # Long enough for any number of extensions; the auction releases it when it ends.
        ttl = p.starts_in + p.duration + 86400
        hold = await self.skus.send(p.sku, Reserve(f"auction:{auction_id}", 1, auction_id, ttl))
        try:
            await self.auction_store.create(
                terms, room_id=p.room, sku=p.sku, reservation_id=hold["reservation"],
                by=who.user_id,
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                await self.skus.send(p.sku, Release(hold["reservation"]))
            raise
        return await self.auctions.view(auction_id)

    async def checkout(
        self, user_id: str, address: dict[str, Any], key: str, **options: Any
    ) -> dict[str, Any]:
        """Check the user's cart out (see CartActor.checkout)."""
        result: dict[str, Any] = await self.carts.run(
            user_id, "checkout", address=address, key=key, **options
        )
        return result

    async def request_return(
        self, order_id: str, user_id: str, lines: list[Any], reason: str, key: str
    ) -> dict[str, Any]:
        """A buyer's return of some delivered units (``lines`` of ``line``/``quantity``)."""
        wanted = [ShipmentLine(item.line, item.quantity) for item in lines]
        return await self.orders.request_return(
            order_id, user_id, wanted, reason, key, now=clock.now()
        )

    async def cancel_for(
        self, order_id: str, user_id: str, *, service: bool, note: str = "by the buyer"
    ) -> dict[str, Any]:
        """A cancellation asked for by a buyer (their own unpaid orders) or a service."""
        order = await self.orders.get(order_id)
        if not service and order["buyer_id"] != user_id:
            raise OrderNotFound(f"no order {order_id!r}")  # as for a missing one
        if not service and order["status"] != "pending":
            raise Forbidden("buyers can cancel their own unpaid orders; ask the seller")
        return await self.cancel(order_id, by=user_id, note=note)

    async def cancel(self, order_id: str, *, by: str, note: str) -> dict[str, Any]:
        """Cancel an order: its sold units are owed back (and taken back now), units still
        on hold are released, a paid order is refunded."""
        order, before = await self.orders.cancel(order_id, by=by, note=note)
        await self.settle_holds()
        await self.return_stock(order_id)
        if before == "paid":
            order["refunded_minor"] = await self.cashier.refund(order_id)
        return order

    async def return_stock(self, order_id: str) -> None:
        """Poke the order's SKUs to take their units back (``reconcile_forever`` pokes again
        the ones whose returns wait too long: a poke lost to a restart)."""
        for sku in await self.orders.skus_of(order_id):
            with contextlib.suppress(LiveshopError):
                await self.skus.call(sku, "take_returns")

    async def settle_holds(self) -> int:
        """Holds of orders paid meanwhile become sold; holds of cancelled orders go back."""
        sends = [
            self.skus.send(sku, Release(rid) if status == "cancelled" else Commit(rid, order_id))
            for order_id, status, sku, rid in await self.orders.unsettled_holds()
        ]
        # Sent together, they share one actor call and one commit per SKU. A refusal (an
        # expired hold) is left to the audit.
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        return sum(not isinstance(o, BaseException) for o in outcomes)

    async def approve_return(self, return_id: str, *, approve: bool) -> dict[str, Any]:
        """Approve: the units go back to stock and the buyer is refunded (idempotent)."""
        decided = await self.orders.decide_return(return_id, approve)
        if not approve or decided["status"] == "refunded":
            return decided
        await self.return_stock(decided["order"])
        decided["refunded_minor"] = await self.cashier.refund(
            decided["order"], amount_minor=decided["refund_minor"], key=f"return:{return_id}"
        )
        return {
            **await self.orders.mark_refunded(return_id),
            "refunded_minor": decided["refunded_minor"],
        }

    async def reconcile_forever(self) -> None:
        """Settle payments left pending; settle holds; cancel orders unpaid past the payment
        window."""
        while True:
            await asyncio.sleep(self.settings.reconcile_interval)
            try:
                now = clock.now()
                await self.cashier.reconcile(now - self.settings.payment_timeout * 2)
                await self.settle_holds()
                for order_id in await self.orders.unpaid(now - self.settings.payment_window):
                    with contextlib.suppress(ClientError):  # paid or cancelled meanwhile
                        await self.cancel(order_id, by="liveshop", note="not paid in time")
                await self.wake_abandoned(now)
                for sku in await self.sku_store.returns_waiting(RETURNS_WAIT):
                    with contextlib.suppress(LiveshopError):
                        await self.skus.call(sku, "take_returns")
            except Exception:
                log.exception("reconciling payments failed")

    async def wake_abandoned(self, now: float) -> None:
        """Carts are passivated minutes after their last use; one nobody came back to is
        woken once when it becomes abandoned, and its own check reports it (one
        ``cart_abandoned`` per idle spell, as for a resident cart)."""
        due = await self.cart_store.abandonable(now - self.settings.cart_abandon_after)
        for user_id in due:
            with contextlib.suppress(LiveshopError):  # the next round tries again
                await self.carts.run(user_id, "report_abandoned")

    async def close(self) -> None:
        await self.skus.close()
        await self.auctions.close()
        await self.carts.close()
