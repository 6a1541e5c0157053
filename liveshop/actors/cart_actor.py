"""The cart actor: owns one user's :class:`~liveshop.commerce.cart.Cart` and checks it out.

Cart changes are saved before they are answered (a cart is human-paced: one small write per
change). With a room's ``hold`` policy, adding reserves the units at the SKU for the room's
hold time. Nobody touching a cart for ``cart_abandon_after`` seconds emits one
``cart_abandoned`` event (GET /events) per idle spell: the API finds such carts in PostgreSQL
and wakes them (a cart left memory minutes after its last use, and has no clock of its own).

Checkout, step by step (each durable before the next):

1. ``(buyer, key)`` already placed an order: answer with it (a retried checkout).
2. Validate the address for its country.
3. Per line, in one SKU batch: release the cart's holds and reserve the line for the payment
   window. The reservation's price is the SKU's price now (a live deal's included): prices
   are recomputed on the server, never taken from the client. Any line out of stock: give
   back what was reserved and refuse, saying which.
4. Quote: subtotal, shipping per seller and region, tax per region.
5. Place the order (pending) on those holds, and take the lines out of the cart.
6. Charge the payment method; on success the holds become sold (``Commit``). A decline leaves
   the order pending (pay again); a provider timeout leaves it pending until reconciled; the
   API's sweeper commits or releases holds of orders paid or cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from liveshop import clock
from liveshop.actors.resources import Resources
from liveshop.commerce.checkout import QuoteLine, quote, validate_address
from liveshop.commerce.inventory import Commit, Release, Reserve, SkuCommand
from liveshop.commerce.product import Product
from liveshop.errors import ClientError, LiveshopError, OutOfStock
from liveshop.storage.carts import CartStore
from liveshop.storage.orders import OrderStore
from liveshop.storage.owners import Fence
from liveshop.storage.products import ProductStore

log = logging.getLogger(__name__)

#: Checkout holds outlive the payment window so a slow payment never loses its units.
CHECKOUT_HOLD_MARGIN = 300.0


class CartActor:
    def __repr__(self) -> str:
        # The dashboard's "repr name" and the log prefix (see RoomActor.__repr__).
        return f"CartActor(user={self.user_id})"

    # A cart is the most numerous entity (one per shopper): it keeps only its own state and
    # shares every connection, client and store helper with its host.
    __slots__ = (
        "_lock",
        "_stale",
        "cart",
        "cashier",
        "pool",
        "settings",
        "skus",
        "store",
        "user_id",
    )  # fmt: skip

    def __init__(self, user_id: str, res: Resources, fence: Fence) -> None:
        self.user_id = user_id
        self.settings = res.settings
        self.pool = res.pool
        self.store = CartStore(self.pool, fence=fence, submit=res.cart_saves.submit)
        self.skus = res.skus
        self.cashier = res.cashier
        self._lock = asyncio.Lock()
        #: A change failed midway (its save, say): memory may hold what PostgreSQL does not.
        self._stale = False

    @property
    def orders(self) -> OrderStore:
        return self.cashier.orders

    @property
    def products(self) -> ProductStore:
        return ProductStore(self.pool)

    async def start(self) -> None:
        self.cart = await self.store.load(self.user_id)

    async def stop(self) -> None:
        """Every change is saved before it is answered: wait for the one in progress."""
        async with self._lock:
            pass

    def idle(self) -> bool:
        """Always, once nobody is using it: a cart has no clock of its own (the API finds
        abandoned carts in PostgreSQL and wakes them: ``report_abandoned``)."""
        return not self._lock.locked()

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[None]:
        """One change at a time, made on what PostgreSQL has: a change that failed (its save
        among it) marks memory stale, and the next change or view reads the cart again."""
        async with self._lock:
            if self._stale:
                self.cart = await self.store.load(self.user_id)
                self._stale = False
            try:
                yield
            except BaseException:
                self._stale = True
                raise

    # -- the cart -----------------------------------------------------------------------------

    async def view(self) -> dict[str, Any]:
        if self._stale:
            async with self._changing():
                pass
        return self.cart.view()

    async def add(
        self, sku: str, quantity: int, room_id: str | None, *, counted: bool = True
    ) -> dict[str, Any]:
        """``counted``: an add to cart for the room's show analytics (not a quantity change)."""
        async with self._changing():
            policy, hold_seconds = await self._policy(room_id)
            creator = await self.store.room_host(room_id)
            hold = expires = None
            if policy == "hold":
                key = f"cart:{secrets.token_hex(6)}"
                [held] = await self._sku(
                    sku, [Reserve(self.user_id, quantity, key, hold_seconds, room_id)]
                )
                hold, expires = held["reservation"], held["expires_at"]
            else:
                await self.skus.check(sku)  # sku_not_found if there is no such SKU
            try:
                now = clock.now()
                self.cart.add(
                    sku, quantity, now, room_id=room_id, creator_id=creator, hold=hold,
                    hold_expires_at=expires,
                )  # fmt: skip
                added = (room_id, sku, quantity, now) if room_id and counted else None
                await self.store.save(self.cart, added=added)
            except BaseException:
                if hold is not None:
                    await self._release(sku, [hold])
                raise
            return {**self.cart.view(), "policy": policy}

    async def remove(self, sku: str) -> dict[str, Any]:
        async with self._changing():
            line = self.cart.remove(sku, clock.now())
            await self.store.save(self.cart)
            await self._release(sku, line.holds)
            return self.cart.view()

    async def set_quantity(self, sku: str, quantity: int) -> dict[str, Any]:
        """0 removes the line; otherwise the line is replaced (holds taken anew)."""
        if quantity == 0:
            return await self.remove(sku)
        async with self._changing():
            line = self.cart.lines.get(sku)
            room_id = line.room_id if line is not None else None
            if line is not None and not line.holds:
                policy, _ = await self._policy(room_id)
                if policy != "hold":
                    # Nothing held at the SKU, nothing to hold: one change and one write.
                    self.cart.set_quantity(sku, quantity, clock.now())
                    await self.store.save(self.cart)
                    return {**self.cart.view(), "policy": policy}
            if line is not None:
                self.cart.remove(sku, clock.now())
                await self.store.save(self.cart)
                await self._release(sku, line.holds)
        return await self.add(sku, quantity, room_id, counted=False)

    async def _policy(self, room_id: str | None) -> tuple[str, float]:
        """How adding from ``room_id`` reserves (``hold`` at the SKU, or ``first_paid``) and
        for how long: never longer than the platform's hold window, whatever a room set."""
        if room_id is None:
            return "first_paid", 0.0
        policy, hold_seconds = await self.store.room_policy(room_id, self.settings.hold_seconds)
        return policy, min(hold_seconds, self.settings.hold_seconds)

    # -- checkout -----------------------------------------------------------------------------

    async def quote(self, address: dict[str, Any], skus: list[str] | None) -> dict[str, Any]:
        """What checkout would charge now (nothing is held or placed)."""
        where = validate_address(address)
        lines = [await self._priced(sku, q) for sku, q in self._chosen(skus)]
        return quote(lines, where, shipping=await self.store.shipping_rules()).to_wire()

    async def checkout(
        self,
        *,
        address: dict[str, Any],
        key: str,
        email: str | None = None,
        method_id: str | None = None,
        pay: bool = True,
        skus: list[str] | None = None,
    ) -> dict[str, Any]:
        async with self._changing():
            placed = await self.orders.checkout_order(self.user_id, key)
            if placed is not None:
                return await self._answer(placed, key, method_id, pay, replayed=True)
            where = validate_address(address)
            chosen = self._chosen(skus)
            holds, lines = await self._hold_for_checkout(chosen, key)
            try:
                priced = quote(lines, where, shipping=await self.store.shipping_rules())
                room = next((self.cart.lines[s].room_id for s, _ in chosen), None)
                order_id = await self.orders.place_checkout(
                    buyer_id=self.user_id, key=key, quote=priced, holds=holds, address=where,
                    email=email, room_id=room, at=clock.now(),
                )  # fmt: skip
            except BaseException:
                for sku, rid in holds.items():
                    await self._release(sku, [rid])
                raise
            for sku, _ in chosen:
                self.cart.lines.pop(sku, None)
            self.cart.touched_at = clock.now()
            await self.store.save(self.cart)
            return await self._answer(order_id, key, method_id, pay, replayed=False)

    def _chosen(self, skus: list[str] | None) -> list[tuple[str, int]]:
        lines = self.cart.lines
        wanted = list(lines) if skus is None else skus
        missing = [s for s in wanted if s not in lines]
        if missing:
            raise ClientError(f"not in the cart: {', '.join(missing)}")
        if not wanted:
            raise ClientError("the cart is empty")
        return [(s, lines[s].quantity) for s in wanted]

    async def _hold_for_checkout(
        self, chosen: list[tuple[str, int]], key: str
    ) -> tuple[dict[str, str], list[QuoteLine]]:
        ttl = self.settings.payment_window + CHECKOUT_HOLD_MARGIN
        holds: dict[str, str] = {}
        lines: list[QuoteLine] = []
        short: dict[str, int] = {}
        for sku, quantity in chosen:
            line = self.cart.lines[sku]
            commands: list[SkuCommand] = [Release(h, self.user_id) for h in line.holds]
            commands.append(
                Reserve(self.user_id, quantity, f"checkout:{key}:{sku}", ttl, line.room_id)
            )
            results = await self._sku(sku, commands, raise_errors=False)
            self.cart.drop_holds(sku)  # released, whatever came next
            held = results[-1]
            if isinstance(held, OutOfStock):
                short[sku] = (held.details or {}).get("available", 0)
                continue
            if isinstance(held, LiveshopError):
                short[sku] = 0
                continue
            holds[sku] = held["reservation"]
            product = await self._product_of(sku)
            lines.append(
                QuoteLine(sku, product.product_id, product.seller_id, quantity,
                          held["price_minor"], product.currency, held["deal_id"])
            )  # fmt: skip
        if short:
            for sku, rid in holds.items():
                await self._release(sku, [rid])
            await self.store.save(self.cart)
            raise OutOfStock(
                f"not enough stock for {', '.join(sorted(short))}", details={"available": short}
            )
        return holds, lines

    async def _answer(
        self, order_id: str, key: str, method_id: str | None, pay: bool, *, replayed: bool
    ) -> dict[str, Any]:
        order = await self.orders.get(order_id)
        answer: dict[str, Any] = {"order": order, "replayed": replayed}
        if pay and order["status"] == "pending":
            try:
                payment = await self.cashier.pay(order_id, self.user_id, method_id, f"co:{key}")
            except ClientError as exc:
                payment = {"status": "failed", "error": exc.to_dict()}
            answer["payment"] = payment
            if payment.get("status") == "succeeded":
                await self._commit(order)
                answer["order"] = await self.orders.get(order_id)
        return answer

    async def _commit(self, order: dict[str, Any]) -> None:
        """A paid order's holds become sold (the sweeper retries what fails here)."""
        rids = await self.pool.fetch(
            "SELECT sku, reservation_id FROM order_lines WHERE order_id = $1", order["id"]
        )
        for row in rids:
            with contextlib.suppress(LiveshopError):
                await self._sku(row["sku"], [Commit(row["reservation_id"], order["id"])])

    # -- helpers ------------------------------------------------------------------------------

    async def _priced(self, sku: str, quantity: int) -> QuoteLine:
        view = await self.skus.view(sku)
        deal = view.get("deal") or {}
        live = deal.get("phase") == "live"
        product = await self.products.get(view["product_id"])
        price = deal["price_minor"] if live else view["price_minor"]
        return QuoteLine(sku, product.product_id, product.seller_id, quantity, price,
                         view["currency"], deal.get("deal_id") if live else None)  # fmt: skip

    async def _product_of(self, sku: str) -> Product:
        product_id = await self.pool.fetchval("SELECT product_id FROM skus WHERE id = $1", sku)
        return await self.products.get(product_id)

    async def _sku(
        self, sku: str, commands: list[SkuCommand], *, raise_errors: bool = True
    ) -> list[Any]:
        """One batch to the SKU's actor; the first refusal is raised unless asked not to."""
        results = await self.skus.batch(sku, commands)
        if raise_errors:
            for result in results:
                if isinstance(result, LiveshopError):
                    raise result
        return results

    async def _release(self, sku: str, holds: list[str]) -> None:
        if holds:
            with contextlib.suppress(LiveshopError):
                await self._sku(sku, [Release(h) for h in holds], raise_errors=False)

    # -- abandonment --------------------------------------------------------------------------

    async def report_abandoned(self) -> dict[str, Any]:
        """Emit ``cart_abandoned`` if the cart is abandoned now and was not reported yet
        (the API wakes passivated carts for this)."""
        async with self._changing():
            if self.cart.is_abandoned(clock.now(), self.settings.cart_abandon_after):
                event = {"lines": self.cart.view()["lines"], "since": self.cart.touched_at}
                await self.store.save(self.cart, event=("cart_abandoned", event))
            return self.cart.view()
