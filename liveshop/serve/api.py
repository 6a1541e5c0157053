"""The HTTP API for services (Ray Serve + FastAPI). OpenAPI docs at /docs.

Services authenticate with ``Authorization: Bearer <token>`` (the same signed tokens
viewers use, with host/moderator/service roles); the dev token endpoint takes the admin key
in ``X-Admin-Key``. Errors are JSON: ``{"error": {"code", "message", "temporary"}}``.
"""

import asyncio
import hmac
import logging
import secrets
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve

from liveshop import __version__, clock
from liveshop.commerce import inventory as inv
from liveshop.commerce.checkout import ShippingRule
from liveshop.commerce.order import STATUSES, ShipmentLine
from liveshop.commerce.product import Product
from liveshop.config import Settings
from liveshop.errors import (
    AuctionNotFound,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
    UnknownOp,
)
from liveshop.protocol import COMMERCE_OPS, ROOM_OPS, RoomId, validate_params
from liveshop.rooms.commands import Actor
from liveshop.rooms.gift import Gift
from liveshop.rooms.room import MAX_CHAT_CHARS, RoomInfo
from liveshop.serve import overview_api, programming_api, web
from liveshop.serve.auth import (
    Authorization,
    bearer_identity,
    is_service,
    require_self_or_service,
    require_service,
)
from liveshop.serve.commerce import Commerce
from liveshop.serve.http_errors import install_error_handlers
from liveshop.serve.ops import command_for
from liveshop.serve.programming import Programming
from liveshop.serve.room_client import RoomClient
from liveshop.storage.broker import RedisPublisher
from liveshop.storage.gateways import GatewayStore
from liveshop.storage.overview import OverviewStore
from liveshop.storage.pool import create_pool
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.storage.wallets import WalletStore
from liveshop.tokens import Identity, Role, issue_token

log = logging.getLogger(__name__)

app = FastAPI(
    title="liveshop",
    version=__version__,
    description="Service API of liveshop, the real-time engine for live commerce.",
)


install_error_handlers(app)
# Large JSON answers and the pages travel compressed (static files come compressed already,
# once per file: see web.static_files); level 6: less CPU per answer than the default 9.
app.add_middleware(GZipMiddleware, minimum_size=1400, compresslevel=6)
app.include_router(programming_api.router)
app.include_router(overview_api.router)
app.include_router(web.router)
app.mount("/app/static", web.static_files(), name="static")


class RoomCreate(BaseModel):
    id: RoomId | None = None
    title: str = Field(min_length=1, max_length=200)
    channel_id: RoomId | None = None
    status: str = Field(default="live", pattern="^(scheduled|live|ended)$")
    host_id: str | None = Field(default=None, min_length=1, max_length=64)


class RoomOut(BaseModel):
    id: str
    title: str
    channel_id: str | None
    status: str
    host_id: str | None


class GiftIn(BaseModel):
    id: RoomId
    name: str = Field(min_length=1, max_length=80)
    price_coins: int = Field(ge=1, le=10**9, strict=True)
    image_url: str | None = Field(default=None, max_length=2000)


class CreditIn(BaseModel):
    coins: int = Field(ge=1, le=10**9, strict=True)
    #: Idempotency: a credit with the same ref is applied once.
    ref: str = Field(min_length=1, max_length=64)


class PinIn(BaseModel):
    product_id: RoomId


class MessageIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_CHAT_CHARS)


class ProductIn(BaseModel):
    id: RoomId
    title: str = Field(min_length=1, max_length=200)
    price_minor: int = Field(ge=0, le=10**12, strict=True)
    currency: str = Field(pattern="^[A-Z]{3}$")
    image_url: str | None = Field(default=None, max_length=2000)
    seller_id: RoomId = "liveshop"


Quantity = Annotated[int, Field(ge=1, le=inv.MAX_QUANTITY, strict=True)]
Ref = Annotated[str, Field(min_length=1, max_length=64)]


class SkuIn(BaseModel):
    id: RoomId
    product_id: RoomId
    on_hand: int = Field(ge=0, le=inv.MAX_QUANTITY, strict=True)
    limit_per_buyer: Quantity | None = None


class RestockIn(BaseModel):
    quantity: Quantity
    #: Names the delivery in the ledger.
    ref: Ref


class AdjustIn(BaseModel):
    #: Compare-and-set: the on-hand count the caller last saw.
    expected: int = Field(ge=0, le=inv.MAX_QUANTITY, strict=True)
    on_hand: int = Field(ge=0, le=inv.MAX_QUANTITY, strict=True)
    ref: Ref


class ConfigureIn(BaseModel):
    price_minor: int | None = Field(default=None, ge=0, le=inv.MAX_PRICE_MINOR, strict=True)
    limit_per_buyer: Quantity | None = None
    clear_limit: bool = False


class CommitIn(BaseModel):
    order_id: str = Field(min_length=1, max_length=140)


class CardIn(BaseModel):
    #: Goes to the provider to be tokenized; liveshop keeps only the token and last four.
    number: str = Field(min_length=12, max_length=23)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)


class PayIn(BaseModel):
    method_id: str | None = Field(default=None, min_length=1, max_length=64)
    key: str = Field(min_length=1, max_length=64)


class ConfirmIn(BaseModel):
    code: str = Field(min_length=1, max_length=32)


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=500)


class ShipmentLineIn(BaseModel):
    line: int = Field(ge=1, le=1000)
    quantity: int = Field(ge=1, le=1_000_000)


class ShipmentIn(BaseModel):
    carrier: str = Field(min_length=1, max_length=64)
    tracking: str = Field(min_length=1, max_length=128)
    lines: list[ShipmentLineIn] = Field(min_length=1, max_length=1000)


UserId = Annotated[str, Path(min_length=1, max_length=64)]
#: Ids liveshop hands out (returns, auctions, payments) in a path.
IssuedId = Annotated[str, Path(min_length=1, max_length=64)]
OrderId = Annotated[str, Path(min_length=1, max_length=140)]


class CartItemIn(BaseModel):
    sku: RoomId
    quantity: int = Field(default=1, ge=1, le=1000)
    room_id: RoomId | None = None


class QuantityIn(BaseModel):
    quantity: int = Field(ge=0, le=1000)


class CheckoutIn(BaseModel):
    address: dict[str, Any]
    key: str = Field(min_length=1, max_length=64)
    email: str | None = Field(
        default=None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
    )
    method_id: str | None = Field(default=None, min_length=1, max_length=64)
    #: Guest checkout: a card used for this order (tokenized; liveshop keeps the token only).
    card: CardIn | None = None
    skus: list[RoomId] | None = Field(default=None, min_length=1, max_length=100)
    pay: bool = True


class QuoteIn(BaseModel):
    address: dict[str, Any]
    skus: list[RoomId] | None = Field(default=None, min_length=1, max_length=100)


class ShippingRuleIn(BaseModel):
    seller_id: RoomId
    country: str = Field(pattern=r"^([A-Z]{2}|\*)$")
    base_minor: int = Field(ge=0, le=10**9, strict=True)
    per_item_minor: int = Field(default=0, ge=0, le=10**9, strict=True)
    free_over_minor: int | None = Field(default=None, ge=0, le=10**12, strict=True)


class ReturnIn(BaseModel):
    lines: list[ShipmentLineIn] = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=500)
    key: str = Field(min_length=1, max_length=64)


class TokenIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=64)
    rooms: dict[str, list[Role]] = Field(default_factory=dict)
    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600)


def _room_out(info: RoomInfo) -> dict[str, Any]:
    return info.to_wire()


@serve.deployment(name="api", health_check_period_s=5)
@serve.ingress(app)
class Api:
    async def __init__(self, settings: Settings) -> None:  # type: ignore[misc]
        assert settings.database_url and settings.redis_url
        self.settings = settings
        self.pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        self.room_store = RoomStore(self.pool)
        self.products = ProductStore(self.pool)
        self.wallets = WalletStore(self.pool)
        self.commerce = Commerce(settings, self.pool)
        self.sku_store = self.commerce.sku_store
        self.gateways = GatewayStore(self.pool)
        self.skus = self.commerce.skus
        self.orders = self.commerce.orders
        self._reconciler = asyncio.get_running_loop().create_task(self.commerce.reconcile_forever())
        self.rooms = RoomClient(settings, self.room_store)
        overview_api.use(OverviewStore(self.pool), settings, self.rooms.join)
        self.redis = RedisPublisher(settings.redis_url)
        self.programming = Programming(settings, self.pool)
        programming_api.use(self.programming, settings)
        web.use(settings)
        # Channels run 24/7: start any channel actor that is missing (after a restart).
        self._channels = asyncio.get_running_loop().create_task(
            self.programming.keep_actors_running()
        )

    def _identity(self, authorization: str | None) -> Identity:
        return bearer_identity(self.settings.secret, authorization)

    _is_service = staticmethod(is_service)

    def _service(self, authorization: str | None) -> Identity:
        return require_service(self._identity(authorization))

    def _own(self, authorization: str | None, user_id: str) -> Identity:
        identity = self._identity(authorization)
        if identity.user_id != user_id:
            raise Forbidden("only the user themself may do this")
        return identity

    def _self_or_service(self, authorization: str | None, user_id: str) -> Identity:
        return require_self_or_service(self._identity(authorization), user_id)

    # -- health ----------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        checks: dict[str, bool] = {}
        try:
            checks["postgres"] = await self.pool.fetchval("SELECT 1") == 1
        except Exception:
            checks["postgres"] = False
        try:
            checks["redis"] = await self.redis.ping()
        except Exception:
            checks["redis"] = False
        ok = all(checks.values())
        body = {"status": "ok" if ok else "degraded", "version": __version__, **checks}
        return JSONResponse(status_code=200 if ok else 503, content=body)

    # -- rooms -----------------------------------------------------------------------------

    @app.post("/rooms", status_code=201, response_model=RoomOut)
    async def create_room(
        self, body: RoomCreate, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        room_id = body.id or f"room-{secrets.token_hex(6)}"
        info = RoomInfo(room_id, body.title, body.channel_id, body.status, body.host_id)
        created = await self.room_store.create_room(info, epoch=secrets.token_hex(4))
        return _room_out(created)

    @app.get("/rooms", response_model=list[RoomOut])
    async def list_rooms(
        self,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[dict[str, Any]]:
        return [_room_out(r) for r in await self.room_store.list_rooms(limit=limit, after=after)]

    @app.get("/rooms/{room_id}")
    async def get_room(self, room_id: RoomId) -> dict[str, Any]:
        """The room and its live snapshot (pinned product, recent chat, viewers)."""
        return await self.rooms.join(room_id)  # room_not_found from the actor lookup

    @app.post("/rooms/{room_id}/actions/{op}")
    async def action(
        self,
        room_id: RoomId,
        op: str,
        body: Annotated[dict[str, Any], Body()],
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Any room operation of the WebSocket protocol (docs/protocol.md), with the same
        body minus ``id``, ``op`` and ``room``, the same rules and the same result."""
        return await self._act(room_id, op, body, authorization)

    async def _act(
        self, room_id: str, op: str, fields: dict[str, Any], authorization: str | None
    ) -> dict[str, Any]:
        """One room operation, as the gateway runs it: the room decides who may do what."""
        model = ROOM_OPS.get(op)
        if model is None:
            raise UnknownOp(f"unknown room op {op!r}; see docs/protocol.md")
        params = validate_params(model, {**fields, "room": room_id}, op)
        by = Actor.for_room(self._identity(authorization), room_id)
        await self.rooms.actor(room_id)  # room_not_found before the op's own lookups
        return await self.rooms.send(room_id, await command_for(op, by, params, self.products))

    @app.post("/rooms/{room_id}/pin")
    async def pin(
        self, room_id: RoomId, body: PinIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        return await self._act(
            room_id, "pin_product", {"product_id": body.product_id}, authorization
        )

    @app.delete("/rooms/{room_id}/pin")
    async def unpin(self, room_id: RoomId, authorization: Authorization = None) -> dict[str, Any]:
        return await self._act(room_id, "unpin_product", {}, authorization)

    @app.post("/rooms/{room_id}/messages", status_code=201)
    async def system_message(
        self,
        room_id: RoomId,
        body: MessageIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        return await self._act(room_id, "system_message", {"text": body.text}, authorization)

    # -- products --------------------------------------------------------------------------

    @app.post("/products", status_code=201)
    async def create_product(
        self, body: ProductIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        product = Product(
            body.id, body.title, body.price_minor, body.currency, body.image_url, body.seller_id
        )
        return (await self.products.create(product)).card()

    @app.get("/products")
    async def list_products(
        self,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[dict[str, Any]]:
        return [p.card() for p in await self.products.list(limit=limit, after=after)]

    @app.get("/products/{product_id}")
    async def get_product(self, product_id: RoomId) -> dict[str, Any]:
        return (await self.products.get(product_id)).card()

    # -- SKUs: stock, holds, buys, flash deals -----------------------------------------------

    @app.post("/skus", status_code=201)
    async def create_sku(self, body: SkuIn, authorization: Authorization = None) -> dict[str, Any]:
        """A SKU of a product (its price copied from the product) with ``on_hand`` units."""
        self._service(authorization)
        product = await self.products.get(body.product_id)
        await self.sku_store.create(
            body.id,
            product,
            on_hand=body.on_hand,
            limit_per_buyer=body.limit_per_buyer,
            now=clock.now(),
        )
        return await self.skus.view(body.id)

    @app.get("/skus")
    async def list_skus(
        self,
        product_id: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[str]:
        return await self.sku_store.ids(product_id=product_id, limit=limit, after=after)

    @app.get("/skus/{sku}")
    async def get_sku(self, sku: RoomId) -> dict[str, Any]:
        """Committed counts, price, the flash deal and the rooms it is pushed to."""
        return await self.skus.view(sku)

    @app.get("/gateways")
    async def list_gateways(self, authorization: Authorization = None) -> dict[str, Any]:
        """The gateway registry: every gateway process serving now, where, and its load."""
        self._service(authorization)
        return {"gateways": await self.gateways.live()}

    @app.get("/skus/{sku}/audit")
    async def audit_sku(self, sku: RoomId, authorization: Authorization = None) -> dict[str, Any]:
        """Check the SKU's books in PostgreSQL; ``problems`` is empty when they are sound."""
        self._service(authorization)
        return await self.sku_store.audit(sku)

    @app.post("/skus/{sku}/restock")
    async def restock(
        self, sku: RoomId, body: RestockIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        return await self.skus.send(sku, inv.Restock(body.quantity, body.ref))

    @app.post("/skus/{sku}/adjust")
    async def adjust(
        self, sku: RoomId, body: AdjustIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        """Set the on-hand count after a stock take, if it still is ``expected``."""
        self._service(authorization)
        return await self.skus.send(sku, inv.Adjust(body.expected, body.on_hand, body.ref))

    @app.post("/skus/{sku}/configure")
    async def configure(
        self, sku: RoomId, body: ConfigureIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        command = inv.Configure(body.price_minor, body.limit_per_buyer, body.clear_limit)
        return await self.skus.send(sku, command)

    @app.post("/skus/{sku}/reservations/{reservation}/commit")
    async def commit(
        self,
        sku: RoomId,
        reservation: Annotated[str, Path(min_length=1, max_length=140)],
        body: CommitIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """A paid order takes its held units (services: checkout)."""
        self._service(authorization)
        return await self.skus.send(sku, inv.Commit(reservation, body.order_id))

    @app.post("/rooms/{room_id}/commerce/{op}")
    async def commerce_op(
        self,
        room_id: RoomId,
        op: str,
        body: Annotated[dict[str, Any], Body()],
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Any commerce operation of the WebSocket protocol (buy, reserve, release, stock,
        start_deal, end_deal) with the same body minus ``id``, ``op`` and ``room``, for the
        token's user: the same rules and the same result."""
        model = COMMERCE_OPS.get(op)
        if model is None:
            raise UnknownOp(f"unknown commerce op {op!r}; see docs/protocol.md")
        params = validate_params(model, {**body, "room": room_id}, op)
        return await self.commerce.run(op, self._identity(authorization), params)

    # -- carts, checkout, returns, events ------------------------------------------------------

    @app.get("/users/{user_id}/cart")
    async def get_cart(
        self, user_id: UserId, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._self_or_service(authorization, user_id)
        return await self.commerce.carts.run(user_id, "view")

    @app.post("/users/{user_id}/cart/items")
    async def add_to_cart(
        self, user_id: UserId, body: CartItemIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Add units; from a room, the room's stock policy applies (and it is remembered)."""
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "add", body.sku, body.quantity, body.room_id)

    @app.put("/users/{user_id}/cart/items/{sku}")
    async def update_cart(
        self, user_id: UserId, sku: RoomId, body: QuantityIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "set_quantity", sku, body.quantity)

    @app.delete("/users/{user_id}/cart/items/{sku}")
    async def remove_from_cart(
        self, user_id: UserId, sku: RoomId, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "remove", sku)

    @app.post("/users/{user_id}/checkout/quote")
    async def quote(
        self, user_id: UserId, body: QuoteIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """What checkout would charge now: lines at today's prices, shipping, tax."""
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "quote", body.address, body.skus)

    @app.post("/users/{user_id}/checkout", status_code=201)
    async def checkout(
        self, user_id: UserId, body: CheckoutIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Check the cart out: as a guest (``email`` and a ``card``) or with a saved method."""
        self._own(authorization, user_id)
        method_id = body.method_id
        if body.card is not None:
            method_id = (await self._save_card(user_id, body.card))["id"]
        return await self.commerce.checkout(
            user_id, body.address, body.key, email=body.email, method_id=method_id, pay=body.pay,
            skus=body.skus,
        )  # fmt: skip

    @app.post("/orders/{order_id}/returns", status_code=201)
    async def request_return(
        self, order_id: OrderId, body: ReturnIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Ask to return delivered units within the return window (the buyer)."""
        identity = self._identity(authorization)
        return await self.commerce.request_return(
            order_id, identity.user_id, body.lines, body.reason, body.key
        )

    @app.post("/returns/{return_id}/approve")
    async def approve_return(
        self, return_id: IssuedId,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Approve a return (service): the units go back to stock, the buyer is refunded."""
        self._service(authorization)
        return await self.commerce.approve_return(return_id, approve=True)

    @app.post("/returns/{return_id}/reject")
    async def reject_return(
        self, return_id: IssuedId,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        self._service(authorization)
        return await self.commerce.approve_return(return_id, approve=False)

    @app.put("/shipping-rules")
    async def set_shipping_rule(
        self, body: ShippingRuleIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        """A seller's shipping cost to a country ("*": anywhere else)."""
        self._service(authorization)
        rule = ShippingRule(body.seller_id, body.country, body.base_minor, body.per_item_minor,
                            body.free_over_minor)  # fmt: skip
        await self.commerce.cart_store.set_shipping_rule(rule)
        return body.model_dump()

    @app.get("/events")
    async def events(
        self,
        authorization: Authorization = None,
        after: Annotated[int | None, Query(ge=0)] = None,
        kind: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Commerce events for other services (cart_abandoned, order_placed,
        return_requested), oldest first; poll with ``after`` = the last id."""
        self._service(authorization)
        return await self.commerce.cart_store.events(after=after, kind=kind, limit=limit)

    # -- auctions -----------------------------------------------------------------------------

    @app.get("/auctions/{auction_id}")
    async def get_auction(self, auction_id: IssuedId) -> dict[str, Any]:
        """The live view: phase, price, leader, clock, recent bids; the result once ended."""
        return await self.commerce.auctions.view(auction_id)

    @app.get("/auctions/{auction_id}/bids")
    async def auction_bids(
        self,
        auction_id: IssuedId,
        after: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        """Every accepted bid as placed, oldest first (page with ``after`` = the last id)."""
        if not await self.commerce.auction_store.exists(auction_id):
            raise AuctionNotFound(f"no auction {auction_id!r}")
        return await self.commerce.auction_store.bids(auction_id, limit=limit, after=after)

    # -- orders and payments -----------------------------------------------------------------

    @app.get("/orders")
    async def search_orders(
        self,
        authorization: Authorization = None,
        buyer_id: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
        room_id: Annotated[str | None, Query(max_length=64)] = None,
        sku: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[float | None, Query(description="epoch seconds")] = None,
        until: Annotated[float | None, Query(description="epoch seconds")] = None,
        before: Annotated[str | None, Query(max_length=140)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        """Search orders (service): newest first, page with ``before`` = the last id."""
        self._service(authorization)
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
        return await self.orders.search(
            buyer_id=buyer_id, status=status, room_id=room_id, sku=sku, since=since,
            until=until, before=before, limit=limit,
        )  # fmt: skip

    @app.get("/users/{user_id}/orders")
    async def order_history(
        self,
        user_id: UserId,
        authorization: Authorization = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
        before: Annotated[str | None, Query(max_length=140)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> list[dict[str, Any]]:
        """A customer's order history (their own token, or a service)."""
        self._self_or_service(authorization, user_id)
        return await self.orders.search(buyer_id=user_id, status=status, before=before, limit=limit)

    @app.get("/orders/{order_id}")
    async def get_order(
        self, order_id: OrderId, authorization: Authorization = None
    ) -> dict[str, Any]:
        """One order with its lines, shipments, status history and payments."""
        order = await self.orders.get(order_id)
        self._self_or_service(authorization, order["buyer_id"])
        return order

    @app.post("/orders/{order_id}/pay")
    async def pay(
        self,
        order_id: OrderId,
        body: PayIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Charge the order with a saved method (the newest when none is named)."""
        identity = self._identity(authorization)
        return await self.commerce.cashier.pay(order_id, identity.user_id, body.method_id, body.key)

    @app.post("/orders/{order_id}/cancel")
    async def cancel_order(
        self,
        order_id: OrderId,
        body: NoteIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Cancel (the buyer, while unpaid; a service, also once paid: refunded)."""
        identity = self._identity(authorization)
        return await self.commerce.cancel_for(
            order_id, identity.user_id, service=self._is_service(identity),
            note=body.note or "cancelled",
        )  # fmt: skip

    @app.post("/orders/{order_id}/fulfil")
    async def fulfil(
        self,
        order_id: OrderId,
        body: NoteIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        return await self._advance(order_id, "fulfilled", body, authorization)

    @app.post("/orders/{order_id}/shipments", status_code=201)
    async def ship(
        self,
        order_id: OrderId,
        body: ShipmentIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Ship some or all units (split shipments); the order is shipped once all are."""
        identity = self._service(authorization)
        lines = [ShipmentLine(item.line, item.quantity) for item in body.lines]
        return await self.orders.ship(
            order_id, carrier=body.carrier, tracking=body.tracking, lines=lines,
            by=identity.user_id,
        )  # fmt: skip

    @app.post("/orders/{order_id}/deliver")
    async def deliver(
        self,
        order_id: OrderId,
        body: NoteIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        return await self._advance(order_id, "delivered", body, authorization)

    async def _advance(
        self, order_id: str, target: str, body: NoteIn, authorization: str | None
    ) -> dict[str, Any]:
        """A service moves an order along its lifecycle (compare-and-set, logged)."""
        identity = self._service(authorization)
        return await self.orders.transition(order_id, target, by=identity.user_id, note=body.note)

    @app.post("/payments/{payment_id}/confirm")
    async def confirm_payment(
        self,
        payment_id: IssuedId,
        body: ConfirmIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Complete a payment's challenge (3-D Secure) with the buyer's code."""
        identity = self._identity(authorization)
        return await self.commerce.cashier.confirm(payment_id, identity.user_id, body.code)

    @app.post("/users/{user_id}/payment-methods", status_code=201)
    async def add_payment_method(
        self,
        user_id: UserId,
        body: CardIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Save a card for 1-tap checkout (the user's own token)."""
        identity = self._identity(authorization)
        if identity.user_id != user_id:
            raise Forbidden("you can only save your own payment methods")
        return await self._save_card(user_id, body)

    async def _save_card(self, user_id: str, body: CardIn) -> dict[str, Any]:
        provider = self.commerce.cashier.provider
        card = await provider.tokenize(body.number, body.exp_month, body.exp_year)
        return await self.commerce.payments.save_method(user_id, provider.name, card)

    @app.get("/users/{user_id}/payment-methods")
    async def payment_methods(
        self, user_id: UserId, authorization: Authorization = None
    ) -> list[dict[str, Any]]:
        self._self_or_service(authorization, user_id)
        return await self.commerce.payments.methods(user_id)

    # -- gifts and coins --------------------------------------------------------------------

    @app.post("/gifts", status_code=201)
    async def create_gift(
        self, body: GiftIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        """Add or change a gift of the catalog (service role)."""
        self._service(authorization)
        gift = Gift(body.id, body.name, body.price_coins, body.image_url)
        return (await self.wallets.create_gift(gift)).card()

    @app.get("/gifts")
    async def list_gifts(self) -> list[dict[str, Any]]:
        return [g.card() for g in await self.wallets.gifts()]

    @app.post("/wallets/{user_id}/credit")
    async def credit(
        self,
        user_id: UserId,
        body: CreditIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Add coins (a purchase of coins, a promotion); idempotent per ``ref``."""
        self._service(authorization)
        balance = await self.wallets.credit(user_id, body.coins, ref=body.ref)
        return {"user_id": user_id, "coins": balance}

    @app.get("/wallets/{user_id}")
    async def wallet(
        self,
        user_id: UserId,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """A balance: for the user themself or a service."""
        self._self_or_service(authorization, user_id)
        return {"user_id": user_id, "coins": await self.wallets.balance(user_id)}

    # -- development -----------------------------------------------------------------------

    @app.post("/dev/tokens", status_code=201)
    async def dev_token(self, body: TokenIn, x_admin_key: Authorization = None) -> dict[str, Any]:
        """Mint a token. Development only: guarded by the admin key (X-Admin-Key)."""
        if not self.settings.dev_tokens:
            raise NotFound("dev tokens are disabled (LIVESHOP_DEV_TOKENS=off)")
        if not x_admin_key or not hmac.compare_digest(x_admin_key, self.settings.admin_key):
            raise Unauthenticated("a valid X-Admin-Key header is required")
        now = clock.now()
        token = issue_token(
            self.settings.secret,
            user_id=body.user_id,
            name=body.name or body.user_id,
            rooms=body.rooms,
            now=now,
            ttl=body.ttl_seconds,
        )
        return {"token": token, "expires_at": int(now + body.ttl_seconds)}
