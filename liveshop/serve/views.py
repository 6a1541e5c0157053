"""What the HTTP endpoints answer: one response model per kind of answer, for the OpenAPI
document and to check every answer against it (docs/protocol.md, "HTTP API").

Each model names the fields an answer always has, with their types; answers may carry more
(``additionalProperties``). Fields that only some answers have are optional here and left
out of an answer that does not have them (not sent as ``null``).
"""

# No `from __future__ import annotations`: FastAPI and pydantic read these at runtime.
from typing import Any

from pydantic import Field

from liveshop.serve.schema import Out

# -- health, tokens, wallets, gifts --------------------------------------------------------------


class Health(Out):
    status: str = Field(description='"ok", or "degraded" (answered with 503)')
    version: str
    postgres: bool
    redis: bool
    entities: bool = Field(
        description="every entity host in the directory answers and reaches PostgreSQL "
        "(rooms, SKUs, carts, auctions and channels can start)"
    )
    hosts_down: list[str] = Field(default_factory=list, description="hosts that did not")


class TokenOut(Out):
    token: str
    expires_at: int


class GuestUser(Out):
    id: str
    name: str


class GuestTokenOut(Out):
    token: str
    user: GuestUser
    expires_at: int


class PageConfig(Out):
    ws_url: str
    guest_tokens: bool
    whep_max_subscribers: int
    version: str


class WalletOut(Out):
    user_id: str
    coins: int


class GiftOut(Out):
    id: str
    name: str
    price_coins: int
    image_url: str | None


# -- rooms and products ----------------------------------------------------------------------


class RoomOut(Out):
    id: str
    title: str
    channel_id: str | None
    status: str
    host_id: str | None


class RoomSnapshot(Out):
    """The room and its live state, as ``subscribe`` returns it (docs/protocol.md)."""

    room: dict[str, Any]
    epoch: str
    offset: int
    recovered: bool | None = None
    pinned: dict[str, Any] | None = None
    recent_chat: list[dict[str, Any]] | None = None
    viewers: int | None = None


class ChatPage(Out):
    """A page of a room's chat log, oldest first; ``more``: older messages exist."""

    room: str
    messages: list[dict[str, Any]]
    more: bool


class OpResult(Out):
    """An operation's result, as over WebSocket (docs/protocol.md, the operation's section)."""


class Offset(Out):
    """A room change: the offset of the event it published (``null``: nothing changed)."""

    offset: int | None


class ProductOut(Out):
    product_id: str
    title: str
    price_minor: int
    currency: str
    image_url: str | None
    seller_id: str


# -- SKUs ------------------------------------------------------------------------------------


class SkuView(Out):
    """The committed view of a SKU: stock counter, price and flash deal."""

    sku: str
    product_id: str
    available: int
    sold: int
    price_minor: int
    currency: str
    deal: dict[str, Any] | None
    on_hand: int | None = None
    reserved: int | None = None
    watchers: list[str] | None = None


class StockCounts(Out):
    on_hand: int
    reserved: int
    available: int
    sold: int


class CommitOut(Out):
    reservation: str
    order: str
    sold: int


class SkuAudit(Out):
    sku: str
    on_hand: int
    reserved: int
    sold: int
    available: int
    stock_in: int
    on_orders: int
    problems: list[str]


class Collector(Out):
    count: list[int] = Field(default_factory=list, description="collections, by generation")
    seconds: list[float] = Field(default_factory=list, description="their pauses in all")
    longest: list[float] = Field(default_factory=list, description="the longest pause")
    reclaims: int = Field(0, description="full collections of the frozen long-lived objects")


class LoopLag(Out):
    stalls: int = Field(0, description="times the host's event loop stalled 20 ms or more")
    longest: float = Field(0.0, description="the longest stall, seconds")


class HostOut(Out):
    host: str
    error: str | None = Field(None, description="set when the host did not answer")
    resident: dict[str, int] = Field(default_factory=dict, description="entities by kind")
    activations: dict[str, int] = Field(default_factory=dict)
    passivations: dict[str, int] = Field(default_factory=dict)
    failed_activations: dict[str, int] = Field(default_factory=dict)
    fenced: dict[str, int] = Field(default_factory=dict)
    moved: dict[str, int] = Field(default_factory=dict)
    mailbox: int = Field(0, description="calls accepted and not yet answered")
    db_connections: int = Field(0, description="connections in use of the host's pool")
    db_pool_size: int = 0
    gc: Collector | None = Field(None, description="the host's garbage collector")
    loop_lag: LoopLag | None = None


class HostsOut(Out):
    hosts: list[HostOut]


class GatewaysOut(Out):
    gateways: list[dict[str, Any]]


# -- carts, checkout, orders, payments ---------------------------------------------------------


class CartOut(Out):
    user_id: str
    lines: list[dict[str, Any]]
    units: int


class QuoteOut(Out):
    lines: list[dict[str, Any]]
    currency: str
    subtotal_minor: int
    shipping_minor: int
    tax_minor: int
    total_minor: int


class OrderOut(Out):
    """An order: its lines, shipments, history and payments when read one by one."""

    id: str
    number: str = Field(description="the order's readable number (LS-10427), for shoppers")
    buyer_id: str
    status: str
    currency: str
    subtotal_minor: int
    tax_minor: int
    shipping_minor: int
    total_minor: int
    room_id: str | None
    created_at: float
    updated_at: float
    lines: list[dict[str, Any]] | None = None
    shipments: list[dict[str, Any]] | None = None
    history: list[dict[str, Any]] | None = None
    payments: list[dict[str, Any]] | None = None


class ReturnOut(Out):
    #: The return's id.
    return_: str = Field(alias="return")
    order: str
    status: str
    lines: list[dict[str, Any]]
    reason: str
    refund_minor: int


class ShippingRuleOut(Out):
    seller_id: str
    country: str
    base_minor: int
    per_item_minor: int
    free_over_minor: int | None


class CommerceEvent(Out):
    id: int
    kind: str
    user_id: str | None
    data: dict[str, Any]
    at: float


class PaymentOut(Out):
    payment: str
    order: str
    status: str
    amount_minor: int
    currency: str


class PaymentMethodOut(Out):
    id: str
    brand: str
    last4: str
    created_at: float


class AuctionView(Out):
    auction_id: str
    phase: str
    price: int | None
    leader: str | None
    minimum_bid: int
    currency: str
    starts_at: float
    ends_at: float


class BidOut(Out):
    id: int
    bidder: str
    amount: int
    at: Any


# -- channels and shows ------------------------------------------------------------------------


class ChannelOut(Out):
    id: str
    title: str
    category: str
    region: str
    tz: str
    artwork_url: str | None
    description: str
    feed_room: str


class ShowOut(Out):
    show_id: str
    channel_id: str
    title: str
    starts_at: float
    ends_at: float
    hosts: list[str]
    kind: str
    status: str
    room_id: str | None


class Slot(Out):
    """A channel with the show on now and the next one."""

    channel: ChannelOut
    now: ShowOut | None
    next: ShowOut | None


class ChannelView(Slot):
    route: dict[str, Any]
    override: dict[str, Any] | None


class TemplateOut(Out):
    template: str
    booked: list[ShowOut]
    clashes: list[dict[str, Any]]


class AuditEntry(Out):
    id: int
    action: str
    by: str
    reason: str
    at: float


class FollowOut(Out):
    user_id: str
    kind: str
    id: str
    created: bool | None = None
    removed: bool | None = None


class Followed(Out):
    kind: str
    id: str


class Window(Out):
    weekday: int
    start: str
    end: str


class AvailabilityOut(Out):
    user_id: str
    tz: str | None
    windows: list[Window]


class Overview(Out):
    since: float
    gmv_minor: dict[str, int]
    orders: int
    buyers: int
    top_shows: list[dict[str, Any]]
    top_products: list[dict[str, Any]]
    top_creators: list[dict[str, Any]]
    channels: list[dict[str, Any]]


# -- media --------------------------------------------------------------------------------------


class StreamKeysOut(Out):
    room_id: str
    rtmp_url: str
    keys: dict[str, str]


class IssuedKeysOut(Out):
    room_id: str
    keys: list[dict[str, Any]]


class RevokedOut(Out):
    room_id: str
    revoked: int


class StreamView(Out):
    """The stream's view, as ``state.stream`` (docs/protocol.md, Media)."""

    status: str


class RestreamsOut(Out):
    room_id: str
    restreams: list[dict[str, Any]]


class RestreamOut(Out):
    id: str
    url: str


class DeletedOut(Out):
    deleted: str


class EndedOut(Out):
    ended: str


class MediaHealth(Out):
    status: str
    rtmp: dict[str, Any]


# -- ownership: where a product may be promoted (commerce/listing.py) -----------------------------


class ProductRooms(Out):
    product_id: str
    seller_id: str
    rooms: list[str] = Field(description="rooms the seller listed it in (its own rooms need none)")


class ListingOut(Out):
    product_id: str
    room_id: str
    listed: bool
    changed: bool
