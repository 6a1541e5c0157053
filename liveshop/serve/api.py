"""The HTTP API for services (Ray Serve + FastAPI). OpenAPI docs at /docs.

Services authenticate with ``Authorization: Bearer <token>`` (the same signed tokens
viewers use, with host/moderator/service roles); the dev token endpoint takes the admin key
in ``X-Admin-Key``. Errors are JSON: ``{"error": {"code", "message", "temporary"}}``.

Every body is a strict :class:`~liveshop.serve.schema.Body`, every text field follows
``liveshop/text.py`` and every number is bounded (``schema.py``); each route declares the
statuses it may answer (``answers``) and its response model (``views.py``), so the OpenAPI
document at /openapi.json tells the truth.
"""

import asyncio
import hmac
import logging
import secrets
from typing import Annotated, Any, Literal

from fastapi import Body as JsonBody
from fastapi import FastAPI, Path, Query
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from pydantic import Field
from ray import serve

from liveshop import __version__, clock
from liveshop.actors import hosting
from liveshop.app.commerce import Commerce
from liveshop.app.ops import command_for
from liveshop.app.programming import Programming
from liveshop.commerce import inventory as inv
from liveshop.commerce.checkout import ShippingRule
from liveshop.commerce.listing import require_seller
from liveshop.commerce.order import ShipmentLine
from liveshop.commerce.product import Product
from liveshop.config import Settings
from liveshop.errors import (
    AuctionNotFound,
    Forbidden,
    NotFound,
    OrderNotFound,
    Unauthenticated,
    UnknownOp,
)
from liveshop.mesh import hosts
from liveshop.mesh.room_client import RoomClient
from liveshop.protocol import COMMERCE_OPS, ROOM_OPS, RoomId, validate_params
from liveshop.rooms.commands import Actor
from liveshop.rooms.gift import Gift
from liveshop.rooms.room import MAX_CHAT_CHARS, RoomInfo
from liveshop.serve import overview_api, programming_api, views, web
from liveshop.serve.auth import (
    AdminKey,
    Authorization,
    bearer_identity,
    is_service,
    require_self_or_service,
    require_service,
)
from liveshop.serve.http_errors import BodyLimit, install_error_handlers, limit_bodies
from liveshop.serve.schema import (
    DECIMAL_INT,
    JSON,
    MAX_BIGINT,
    ROLE,
    TOKEN,
    Body,
    JsonObject,
    QueryEpoch,
    Route,
    answers,
    serve_docs,
)
from liveshop.storage.broker import RedisPublisher
from liveshop.storage.gateways import GatewayStore
from liveshop.storage.overview import OverviewStore
from liveshop.storage.pool import create_pool
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.storage.wallets import WalletStore
from liveshop.text import IdemKey, Key, Line, Name, Text
from liveshop.tokens import STAFF_ROLES, Identity, Role, issue_token

log = logging.getLogger(__name__)

app = FastAPI(
    title="liveshop",
    version=__version__,
    description="Service API of liveshop, the real-time engine for live commerce "
    '(docs/protocol.md, HTTP API). Errors: `{"error": {"code", "message", '
    '"temporary", "details"?}}` with the statuses each operation lists.',
    # Swagger UI from liveshop's own static files (schema.serve_docs), never a CDN.
    docs_url=None,
    redoc_url=None,
)
app.router.route_class = Route

install_error_handlers(app)
serve_docs(app)
# Large JSON answers and the pages travel compressed (static files come compressed already,
# once per file: see web.static_files); level 6: less CPU per answer than the default 9.
app.add_middleware(GZipMiddleware, minimum_size=1400, compresslevel=6)
# Bodies over Settings.max_body_bytes are refused before anything reads them (413).
app.add_middleware(BodyLimit, larger=programming_api.LARGE_BODIES)
app.include_router(programming_api.router)
app.include_router(overview_api.router)
app.include_router(web.router)
app.mount("/app/static", web.static_files(), name="static")


class RoomCreate(Body):
    id: RoomId | None = None
    title: Annotated[Line, Field(min_length=1, max_length=200)]
    channel_id: RoomId | None = None
    status: Literal["scheduled", "live", "ended"] = "live"
    host_id: Annotated[Key, Field(min_length=1, max_length=64)] | None = None


class GiftIn(Body):
    id: RoomId
    name: Annotated[Line, Field(min_length=1, max_length=80)]
    price_coins: int = Field(ge=1, le=10**9)
    image_url: Annotated[Line, Field(max_length=2000)] | None = None


class CreditIn(Body):
    coins: int = Field(ge=1, le=10**9)
    #: Idempotency: a credit with the same ref is applied once.
    ref: IdemKey


class PinIn(Body):
    product_id: RoomId


class MessageIn(Body):
    text: Annotated[Text, Field(min_length=1, max_length=MAX_CHAT_CHARS)]


class ProductIn(Body):
    id: RoomId
    title: Annotated[Line, Field(min_length=1, max_length=200)]
    price_minor: int = Field(ge=0, le=inv.MAX_PRICE_MINOR)
    currency: str = Field(pattern="^[A-Z]{3}$")
    image_url: Annotated[Line, Field(max_length=2000)] | None = None
    seller_id: RoomId = "liveshop"


Quantity = Annotated[int, Field(ge=1, le=inv.MAX_QUANTITY)]
#: Names a delivery or stock take in the ledger.
Ref = IdemKey


class SkuIn(Body):
    id: RoomId
    product_id: RoomId
    on_hand: int = Field(ge=0, le=inv.MAX_QUANTITY)
    limit_per_buyer: Quantity | None = None


class RestockIn(Body):
    quantity: Quantity
    #: Names the delivery in the ledger.
    ref: Ref


class AdjustIn(Body):
    #: Compare-and-set: the on-hand count the caller last saw.
    expected: int = Field(ge=0, le=inv.MAX_QUANTITY)
    on_hand: int = Field(ge=0, le=inv.MAX_QUANTITY)
    ref: Ref


class ConfigureIn(Body):
    price_minor: int | None = Field(default=None, ge=0, le=inv.MAX_PRICE_MINOR)
    limit_per_buyer: Quantity | None = None
    clear_limit: bool = False


#: Ids liveshop hands out (orders, reservations, payments, methods) in a body.
IssuedKey = Annotated[Key, Field(min_length=1, max_length=140)]


class CommitIn(Body):
    order_id: IssuedKey


class CardIn(Body):
    #: Goes to the provider to be tokenized; liveshop keeps only the token and last four.
    number: str = Field(min_length=12, max_length=23, pattern=r"^[0-9][0-9 -]*[0-9]$")
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)


class PayIn(Body):
    method_id: IssuedKey | None = None
    key: IdemKey


class ConfirmIn(Body):
    code: Annotated[Key, Field(min_length=1, max_length=32)]


class NoteIn(Body):
    note: Annotated[Text, Field(max_length=500)] = ""


class ShipmentLineIn(Body):
    line: int = Field(ge=1, le=1000)
    quantity: int = Field(ge=1, le=1_000_000)


class ShipmentIn(Body):
    carrier: Annotated[Line, Field(min_length=1, max_length=64)]
    tracking: Annotated[Key, Field(min_length=1, max_length=128)]
    lines: list[ShipmentLineIn] = Field(min_length=1, max_length=1000)


UserId = Annotated[Key, Path(min_length=1, max_length=64)]
#: Ids liveshop hands out (returns, auctions, payments) in a path.
IssuedId = Annotated[Key, Path(min_length=1, max_length=64)]
OrderId = Annotated[Key, Path(min_length=1, max_length=140)]
#: An operation's name in a path (unknown ones are 400 ``unknown_op``).
OpName = Annotated[Key, Path(min_length=1, max_length=64)]
#: Optional text in a query: an id to page after, a filter.
QueryKey = Annotated[Key | None, Query(min_length=1, max_length=64)]
#: Order statuses (liveshop/commerce/order.py).
OrderStatus = Literal["pending", "paid", "fulfilled", "shipped", "delivered", "cancelled"]


class CartItemIn(Body):
    sku: RoomId
    quantity: int = Field(default=1, ge=1, le=1000)
    room_id: RoomId | None = None


class QuantityIn(Body):
    quantity: int = Field(ge=0, le=1000)


Email = Annotated[Key, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class CheckoutIn(Body):
    address: JsonObject
    key: IdemKey
    email: Email | None = None
    method_id: IssuedKey | None = None
    #: Guest checkout: a card used for this order (tokenized; liveshop keeps the token only).
    card: CardIn | None = None
    skus: list[RoomId] | None = Field(default=None, min_length=1, max_length=100)
    pay: bool = True


class QuoteIn(Body):
    address: JsonObject
    skus: list[RoomId] | None = Field(default=None, min_length=1, max_length=100)


class ShippingRuleIn(Body):
    seller_id: RoomId
    country: str = Field(pattern=r"^([A-Z]{2}|\*)$")
    base_minor: int = Field(ge=0, le=10**9)
    per_item_minor: int = Field(default=0, ge=0, le=10**9)
    free_over_minor: int | None = Field(default=None, ge=0, le=10**12)


class ReturnIn(Body):
    lines: list[ShipmentLineIn] = Field(min_length=1, max_length=1000)
    reason: Annotated[Text, Field(min_length=1, max_length=500)]
    key: IdemKey


#: A token's rooms: room id (or "*") → roles. Roles are strings in JSON, made Roles here.
RoleName = Annotated[Role, Field(strict=False)]


class TokenIn(Body):
    user_id: Annotated[Key, Field(min_length=1, max_length=64)]
    name: Annotated[Name, Field(max_length=64)] = ""
    rooms: dict[Annotated[Key, Field(min_length=1, max_length=64)], list[RoleName]] = Field(
        default_factory=dict, max_length=100
    )
    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600)


def _room_out(info: RoomInfo) -> dict[str, Any]:
    return info.to_wire()


@serve.deployment(name="api", health_check_period_s=5)
@serve.ingress(app)
class Api:
    async def __init__(self, settings: Settings) -> None:  # type: ignore[misc]
        assert settings.database_url and settings.redis_url
        self.settings = settings
        limit_bodies(settings.max_body_bytes)
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
        # Entity hosts follow the cluster's `actors` units (nodes joining and leaving).
        self._hosts = asyncio.get_running_loop().create_task(
            hosting.keep_hosts(settings, self.pool)
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

    @app.get(
        "/healthz",
        response_model=views.Health,
        responses={503: {"model": views.Health, "description": "degraded: a dependency is down"}},
    )
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
        down = await hosts.down(self.rooms.hosts)
        checks["entities"] = not down
        ok = all(checks.values())
        body = {"status": "ok" if ok else "degraded", "version": __version__, **checks,
                "hosts_down": down}  # fmt: skip
        return JSONResponse(status_code=200 if ok else 503, content=body)

    # -- rooms -----------------------------------------------------------------------------

    @app.post(
        "/rooms",
        status_code=201,
        response_model=views.RoomOut,
        responses=answers(*ROLE, *JSON, 409),
    )
    async def create_room(
        self, body: RoomCreate, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        room_id = body.id or f"room-{secrets.token_hex(6)}"
        info = RoomInfo(room_id, body.title, body.channel_id, body.status, body.host_id)
        created = await self.room_store.create_room(info, epoch=secrets.token_hex(4))
        return _room_out(created)

    @app.get("/rooms", response_model=list[views.RoomOut], responses=answers())
    async def list_rooms(
        self,
        limit: Annotated[int, Query(ge=1, le=500), DECIMAL_INT] = 100,
        after: QueryKey = None,
    ) -> list[dict[str, Any]]:
        return [_room_out(r) for r in await self.room_store.list_rooms(limit=limit, after=after)]

    @app.get("/rooms/{room_id}", response_model=views.RoomSnapshot, responses=answers(404))
    async def get_room(self, room_id: RoomId) -> dict[str, Any]:
        """The room and its live snapshot (pinned product, recent chat, viewers)."""
        return await self.rooms.join(room_id)  # room_not_found from the actor lookup

    @app.get(
        "/rooms/{room_id}/history",
        response_model=views.ChatPage,
        responses=answers(*ROLE, 404, 429),
    )
    async def history(
        self,
        room_id: RoomId,
        before: Annotated[int | None, Query(ge=1, le=2**53 - 1), DECIMAL_INT] = None,
        limit: Annotated[int, Query(ge=1, le=100), DECIMAL_INT] = 50,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """A page of the chat log older than offset ``before`` (the `history` op): for a
        token with a role in the room."""
        who = self._identity(authorization)
        if not who.roles_in(room_id):
            raise Forbidden(f"your token grants no role in room {room_id!r}")
        staff = bool(who.roles_in(room_id) & STAFF_ROLES)
        return await self.rooms.history(
            room_id, before=before, limit=limit, user_id=who.user_id, staff=staff
        )

    @app.post(
        "/rooms/{room_id}/actions/{op}",
        response_model=views.OpResult,
        responses=answers(*ROLE, *JSON, 402, 404, 409, 429),
    )
    async def action(
        self,
        room_id: RoomId,
        op: OpName,
        body: Annotated[JsonObject, JsonBody()],
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

    @app.post(
        "/rooms/{room_id}/pin",
        response_model=views.Offset,
        responses=answers(*ROLE, *JSON, 404, 409, 429),
    )
    async def pin(
        self, room_id: RoomId, body: PinIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        return await self._act(
            room_id, "pin_product", {"product_id": body.product_id}, authorization
        )

    @app.delete(
        "/rooms/{room_id}/pin", response_model=views.Offset, responses=answers(*ROLE, 404, 409, 429)
    )
    async def unpin(self, room_id: RoomId, authorization: Authorization = None) -> dict[str, Any]:
        return await self._act(room_id, "unpin_product", {}, authorization)

    @app.post(
        "/rooms/{room_id}/messages",
        status_code=201,
        response_model=views.Offset,
        responses=answers(*ROLE, *JSON, 404, 409, 429),
    )
    async def system_message(
        self,
        room_id: RoomId,
        body: MessageIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        return await self._act(room_id, "system_message", {"text": body.text}, authorization)

    # -- products --------------------------------------------------------------------------

    @app.post(
        "/products",
        status_code=201,
        response_model=views.ProductOut,
        responses=answers(*ROLE, *JSON, 409),
    )
    async def create_product(
        self, body: ProductIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        product = Product(
            body.id, body.title, body.price_minor, body.currency, body.image_url, body.seller_id
        )
        return (await self.products.create(product)).card()

    @app.get("/products", response_model=list[views.ProductOut], responses=answers())
    async def list_products(
        self,
        limit: Annotated[int, Query(ge=1, le=500), DECIMAL_INT] = 100,
        after: QueryKey = None,
    ) -> list[dict[str, Any]]:
        return [p.card() for p in await self.products.list(limit=limit, after=after)]

    @app.get("/products/{product_id}", response_model=views.ProductOut, responses=answers(404))
    async def get_product(self, product_id: RoomId) -> dict[str, Any]:
        return (await self.products.get(product_id)).card()

    # -- ownership: the rooms a seller lets promote a product (commerce/listing.py) -----------

    @app.get(
        "/products/{product_id}/rooms", response_model=views.ProductRooms, responses=answers(404)
    )
    async def product_rooms(self, product_id: RoomId) -> dict[str, Any]:
        """The rooms the product is listed in: they may pin it, run deals and auctions."""
        product = await self.products.get(product_id)
        rooms = await self.products.rooms_of(product_id)
        return {"product_id": product_id, "seller_id": product.seller_id, "rooms": rooms}

    @app.put(
        "/products/{product_id}/rooms/{room_id}",
        response_model=views.ListingOut,
        responses=answers(*ROLE, 404),
    )
    async def list_in_room(
        self, product_id: RoomId, room_id: RoomId, authorization: Authorization = None
    ) -> dict[str, Any]:
        """The seller (or a service) lets ``room_id`` promote the product (idempotent)."""
        return await self._list(product_id, room_id, authorization, listed=True)

    @app.delete(
        "/products/{product_id}/rooms/{room_id}",
        response_model=views.ListingOut,
        responses=answers(*ROLE, 404),
    )
    async def unlist_in_room(
        self, product_id: RoomId, room_id: RoomId, authorization: Authorization = None
    ) -> dict[str, Any]:
        """The room may no longer pin the product or start deals or auctions on it (those
        running go on; the seller ends them with a service token)."""
        return await self._list(product_id, room_id, authorization, listed=False)

    async def _list(
        self, product_id: str, room_id: str, authorization: str | None, *, listed: bool
    ) -> dict[str, Any]:
        who = self._identity(authorization)
        product = await self.products.get(product_id)
        require_seller(who, product.seller_id, "changing where a product is sold")
        if listed:
            changed = await self.products.list_in(product_id, room_id, by=who.user_id)
        else:
            changed = await self.products.unlist_in(product_id, room_id)
        return {"product_id": product_id, "room_id": room_id, "listed": listed, "changed": changed}

    @app.get(
        "/rooms/{room_id}/products",
        response_model=list[views.ProductOut],
        responses=answers(404),
    )
    async def room_products(
        self,
        room_id: RoomId,
        limit: Annotated[int, Query(ge=1, le=500), DECIMAL_INT] = 100,
        after: QueryKey = None,
    ) -> list[dict[str, Any]]:
        """The room's catalog: the products it may pin and sell on deals (listed there, or
        sold by its host)."""
        await self.room_store.get_room(room_id)
        return [p.card() for p in await self.products.in_room(room_id, limit=limit, after=after)]

    # -- SKUs: stock, holds, buys, flash deals -----------------------------------------------

    @app.post(
        "/skus",
        status_code=201,
        response_model=views.SkuView,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
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

    @app.get("/skus", response_model=list[str], responses=answers())
    async def list_skus(
        self,
        product_id: QueryKey = None,
        limit: Annotated[int, Query(ge=1, le=500), DECIMAL_INT] = 100,
        after: QueryKey = None,
    ) -> list[str]:
        return await self.sku_store.ids(product_id=product_id, limit=limit, after=after)

    @app.get("/skus/{sku}", response_model=views.SkuView, responses=answers(404))
    async def get_sku(self, sku: RoomId) -> dict[str, Any]:
        """Committed counts, price, the flash deal and the rooms it is pushed to."""
        return await self.skus.view(sku)

    @app.get("/gateways", response_model=views.GatewaysOut, responses=answers(*ROLE))
    async def list_gateways(self, authorization: Authorization = None) -> dict[str, Any]:
        """The gateway registry: every gateway process serving now, where, and its load."""
        self._service(authorization)
        return {"gateways": await self.gateways.live()}

    @app.get("/hosts", response_model=views.HostsOut, responses=answers(*ROLE))
    async def list_hosts(self, authorization: Authorization = None) -> dict[str, Any]:
        """The entity hosts in the directory: entities resident by kind, activations,
        passivations, fenced drops, mailbox depth and database connections in use."""
        self._service(authorization)
        return {"hosts": await self.rooms.hosts.stats()}

    @app.get("/skus/{sku}/audit", response_model=views.SkuAudit, responses=answers(*ROLE, 404))
    async def audit_sku(self, sku: RoomId, authorization: Authorization = None) -> dict[str, Any]:
        """Check the SKU's books in PostgreSQL; ``problems`` is empty when they are sound."""
        self._service(authorization)
        return await self.sku_store.audit(sku)

    @app.post(
        "/skus/{sku}/restock",
        response_model=views.StockCounts,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def restock(
        self, sku: RoomId, body: RestockIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        return await self.skus.send(sku, inv.Restock(body.quantity, body.ref))

    @app.post(
        "/skus/{sku}/adjust",
        response_model=views.StockCounts,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def adjust(
        self, sku: RoomId, body: AdjustIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        """Set the on-hand count after a stock take, if it still is ``expected``."""
        self._service(authorization)
        return await self.skus.send(sku, inv.Adjust(body.expected, body.on_hand, body.ref))

    @app.post(
        "/skus/{sku}/configure",
        response_model=views.SkuView,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def configure(
        self, sku: RoomId, body: ConfigureIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._service(authorization)
        command = inv.Configure(body.price_minor, body.limit_per_buyer, body.clear_limit)
        return await self.skus.send(sku, command)

    @app.post(
        "/skus/{sku}/reservations/{reservation}/commit",
        response_model=views.CommitOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def commit(
        self,
        sku: RoomId,
        reservation: Annotated[Key, Path(min_length=1, max_length=140)],
        body: CommitIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """A paid order takes its held units (services: checkout)."""
        self._service(authorization)
        return await self.skus.send(sku, inv.Commit(reservation, body.order_id))

    @app.post(
        "/rooms/{room_id}/commerce/{op}",
        response_model=views.OpResult,
        responses=answers(*ROLE, *JSON, 402, 404, 409, 429),
    )
    async def commerce_op(
        self,
        room_id: RoomId,
        op: OpName,
        body: Annotated[JsonObject, JsonBody()],
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

    @app.get("/users/{user_id}/cart", response_model=views.CartOut, responses=answers(*ROLE, 404))
    async def get_cart(
        self, user_id: UserId, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._self_or_service(authorization, user_id)
        return await self.commerce.carts.run(user_id, "view")

    @app.post(
        "/users/{user_id}/cart/items",
        response_model=views.CartOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def add_to_cart(
        self, user_id: UserId, body: CartItemIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Add units; from a room, the room's stock policy applies (and it is remembered)."""
        who = self._own(authorization, user_id)
        if body.room_id is not None and not who.roles_in(body.room_id):
            raise Forbidden(f"your token grants no role in room {body.room_id!r}")
        return await self.commerce.carts.run(user_id, "add", body.sku, body.quantity, body.room_id)

    @app.put(
        "/users/{user_id}/cart/items/{sku}",
        response_model=views.CartOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def update_cart(
        self, user_id: UserId, sku: RoomId, body: QuantityIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "set_quantity", sku, body.quantity)

    @app.delete(
        "/users/{user_id}/cart/items/{sku}",
        response_model=views.CartOut,
        responses=answers(*ROLE, 404),
    )
    async def remove_from_cart(
        self, user_id: UserId, sku: RoomId, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "remove", sku)

    @app.post(
        "/users/{user_id}/checkout/quote",
        response_model=views.QuoteOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def quote(
        self, user_id: UserId, body: QuoteIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """What checkout would charge now: lines at today's prices, shipping, tax."""
        self._own(authorization, user_id)
        return await self.commerce.carts.run(user_id, "quote", body.address, body.skus)

    @app.post(
        "/users/{user_id}/checkout",
        status_code=201,
        response_model=views.OpResult,
        responses=answers(*ROLE, *JSON, 402, 404, 409),
    )
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

    @app.post(
        "/orders/{order_id}/returns",
        status_code=201,
        response_model=views.ReturnOut,
        responses=answers(*TOKEN, *JSON, 404, 409),
    )
    async def request_return(
        self, order_id: OrderId, body: ReturnIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Ask to return delivered units within the return window (the buyer)."""
        identity = self._identity(authorization)
        return await self.commerce.request_return(
            order_id, identity.user_id, body.lines, body.reason, body.key
        )

    @app.post(
        "/returns/{return_id}/approve",
        response_model=views.ReturnOut,
        responses=answers(*ROLE, 404, 409),
    )
    async def approve_return(
        self, return_id: IssuedId,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Approve a return (service): the units go back to stock, the buyer is refunded."""
        self._service(authorization)
        return await self.commerce.approve_return(return_id, approve=True)

    @app.post(
        "/returns/{return_id}/reject",
        response_model=views.ReturnOut,
        responses=answers(*ROLE, 404, 409),
    )
    async def reject_return(
        self, return_id: IssuedId,
        authorization: Authorization = None,
    ) -> dict[str, Any]:  # fmt: skip
        self._service(authorization)
        return await self.commerce.approve_return(return_id, approve=False)

    @app.put(
        "/shipping-rules", response_model=views.ShippingRuleOut, responses=answers(*ROLE, *JSON)
    )
    async def set_shipping_rule(
        self, body: ShippingRuleIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        """A seller's shipping cost to a country ("*": anywhere else)."""
        self._service(authorization)
        rule = ShippingRule(body.seller_id, body.country, body.base_minor, body.per_item_minor,
                            body.free_over_minor)  # fmt: skip
        await self.commerce.cart_store.set_shipping_rule(rule)
        return body.model_dump()

    @app.get("/events", response_model=list[views.CommerceEvent], responses=answers(*ROLE))
    async def events(
        self,
        authorization: Authorization = None,
        after: Annotated[int | None, Query(ge=0, le=MAX_BIGINT), DECIMAL_INT] = None,
        kind: Annotated[Key | None, Query(min_length=1, max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000), DECIMAL_INT] = 100,
    ) -> list[dict[str, Any]]:
        """Commerce events for other services (cart_abandoned, order_placed,
        return_requested), oldest first; poll with ``after`` = the last id."""
        self._service(authorization)
        return await self.commerce.cart_store.events(after=after, kind=kind, limit=limit)

    # -- auctions -----------------------------------------------------------------------------

    @app.get("/auctions/{auction_id}", response_model=views.AuctionView, responses=answers(404))
    async def get_auction(self, auction_id: IssuedId) -> dict[str, Any]:
        """The live view: phase, price, leader, clock, recent bids; the result once ended."""
        return await self.commerce.auctions.view(auction_id)

    @app.get(
        "/auctions/{auction_id}/bids", response_model=list[views.BidOut], responses=answers(404)
    )
    async def auction_bids(
        self,
        auction_id: IssuedId,
        after: Annotated[int | None, Query(ge=0, le=MAX_BIGINT), DECIMAL_INT] = None,
        limit: Annotated[int, Query(ge=1, le=1000), DECIMAL_INT] = 200,
    ) -> list[dict[str, Any]]:
        """Every accepted bid as placed, oldest first (page with ``after`` = the last id)."""
        if not await self.commerce.auction_store.exists(auction_id):
            raise AuctionNotFound(f"no auction {auction_id!r}")
        return await self.commerce.auction_store.bids(auction_id, limit=limit, after=after)

    # -- orders and payments -----------------------------------------------------------------

    @app.get("/orders", response_model=list[views.OrderOut], responses=answers(*ROLE))
    async def search_orders(
        self,
        authorization: Authorization = None,
        buyer_id: QueryKey = None,
        status: Annotated[OrderStatus | None, Query()] = None,
        room_id: QueryKey = None,
        sku: QueryKey = None,
        since: QueryEpoch = None,
        until: QueryEpoch = None,
        before: Annotated[Key | None, Query(min_length=1, max_length=140)] = None,
        limit: Annotated[int, Query(ge=1, le=500), DECIMAL_INT] = 50,
    ) -> list[dict[str, Any]]:
        """Search orders (service): newest first, page with ``before`` = the last id."""
        self._service(authorization)
        return await self.orders.search(
            buyer_id=buyer_id, status=status, room_id=room_id, sku=sku, since=since,
            until=until, before=before, limit=limit,
        )  # fmt: skip

    @app.get(
        "/users/{user_id}/orders",
        response_model=list[views.OrderOut],
        responses=answers(*ROLE, 404),
    )
    async def order_history(
        self,
        user_id: UserId,
        authorization: Authorization = None,
        status: Annotated[OrderStatus | None, Query()] = None,
        before: Annotated[Key | None, Query(min_length=1, max_length=140)] = None,
        limit: Annotated[int, Query(ge=1, le=200), DECIMAL_INT] = 50,
    ) -> list[dict[str, Any]]:
        """A customer's order history (their own token, or a service)."""
        self._self_or_service(authorization, user_id)
        return await self.orders.search(buyer_id=user_id, status=status, before=before, limit=limit)

    @app.get("/orders/{order_id}", response_model=views.OrderOut, responses=answers(*TOKEN, 404))
    async def get_order(
        self, order_id: OrderId, authorization: Authorization = None
    ) -> dict[str, Any]:
        """One order with its lines, shipments, status history and payments, by its id or
        its number (``LS-10427``): for its buyer or a service. Anyone else's order is
        ``order_not_found``, as a missing one is (numbers are sequential: a 403 would tell
        how many orders there are)."""
        identity = self._identity(authorization)
        order = await self.orders.get(order_id)  # order_not_found: "no order {order_id!r}"
        if order["buyer_id"] != identity.user_id and not self._is_service(identity):
            raise OrderNotFound(f"no order {order_id!r}")
        return order

    @app.post(
        "/orders/{order_id}/pay",
        response_model=views.PaymentOut,
        responses=answers(*ROLE, *JSON, 402, 404, 409),
    )
    async def pay(
        self,
        order_id: OrderId,
        body: PayIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Charge the order with a saved method (the newest when none is named)."""
        identity = self._identity(authorization)
        return await self.commerce.cashier.pay(order_id, identity.user_id, body.method_id, body.key)

    @app.post(
        "/orders/{order_id}/cancel",
        response_model=views.OrderOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
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

    @app.post(
        "/orders/{order_id}/fulfil",
        response_model=views.OrderOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
    async def fulfil(
        self,
        order_id: OrderId,
        body: NoteIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        return await self._advance(order_id, "fulfilled", body, authorization)

    @app.post(
        "/orders/{order_id}/shipments",
        status_code=201,
        response_model=views.OrderOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
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

    @app.post(
        "/orders/{order_id}/deliver",
        response_model=views.OrderOut,
        responses=answers(*ROLE, *JSON, 404, 409),
    )
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

    @app.post(
        "/payments/{payment_id}/confirm",
        response_model=views.PaymentOut,
        responses=answers(*TOKEN, *JSON, 402, 404, 409),
    )
    async def confirm_payment(
        self,
        payment_id: IssuedId,
        body: ConfirmIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Complete a payment's challenge (3-D Secure) with the buyer's code."""
        identity = self._identity(authorization)
        return await self.commerce.cashier.confirm(payment_id, identity.user_id, body.code)

    @app.post(
        "/users/{user_id}/payment-methods",
        status_code=201,
        response_model=views.PaymentMethodOut,
        responses=answers(*ROLE, *JSON, 404),
    )
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

    @app.get(
        "/users/{user_id}/payment-methods",
        response_model=list[views.PaymentMethodOut],
        responses=answers(*ROLE, 404),
    )
    async def payment_methods(
        self, user_id: UserId, authorization: Authorization = None
    ) -> list[dict[str, Any]]:
        self._self_or_service(authorization, user_id)
        return await self.commerce.payments.methods(user_id)

    # -- gifts and coins --------------------------------------------------------------------

    @app.post(
        "/gifts", status_code=201, response_model=views.GiftOut, responses=answers(*ROLE, *JSON)
    )
    async def create_gift(
        self, body: GiftIn, authorization: Authorization = None
    ) -> dict[str, Any]:
        """Add or change a gift of the catalog (service role)."""
        self._service(authorization)
        gift = Gift(body.id, body.name, body.price_coins, body.image_url)
        return (await self.wallets.create_gift(gift)).card()

    @app.get("/gifts", response_model=list[views.GiftOut], responses=answers(params=False))
    async def list_gifts(self) -> list[dict[str, Any]]:
        return [g.card() for g in await self.wallets.gifts()]

    @app.post(
        "/wallets/{user_id}/credit",
        response_model=views.WalletOut,
        responses=answers(*ROLE, *JSON, 409, 404),
    )
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

    @app.get("/wallets/{user_id}", response_model=views.WalletOut, responses=answers(*ROLE, 404))
    async def wallet(
        self,
        user_id: UserId,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """A balance: for the user themself or a service."""
        self._self_or_service(authorization, user_id)
        return {"user_id": user_id, "coins": await self.wallets.balance(user_id)}

    # -- development -----------------------------------------------------------------------

    @app.post(
        "/dev/tokens",
        status_code=201,
        response_model=views.TokenOut,
        responses=answers(*TOKEN, *JSON, 404),
    )
    async def dev_token(self, body: TokenIn, x_admin_key: AdminKey = None) -> dict[str, Any]:
        """Mint a token. Development only: guarded by the admin key (X-Admin-Key)."""
        if not self.settings.dev_tokens:
            raise NotFound("dev tokens are disabled (LIVESHOP_DEV_TOKENS=off)")
        # As bytes (the header's own, read as latin-1): compare_digest raises TypeError for a
        # str with a non-ASCII character, which answered 500.
        given = (x_admin_key or "").encode("latin-1")
        if not given or not hmac.compare_digest(given, self.settings.admin_key.encode()):
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
