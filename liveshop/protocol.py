"""The viewer wire protocol: frames, requests, replies and pushes (see docs/protocol.md).

Pure functions over bytes and dicts; the gateway owns the sockets. JSON text frames by
default; msgpack binary frames when the client negotiates ``liveshop.v1.msgpack``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from liveshop.errors import BadFrame, InvalidRequest, LiveshopError, UnknownOp
from liveshop.text import IdemKey, Key, Line, text_problem
from liveshop.text import Text as TextRule

SUBPROTOCOL_JSON = "liveshop.v1.json"
SUBPROTOCOL_MSGPACK = "liveshop.v1.msgpack"
MAX_FRAME_BYTES = 64 * 1024
MAX_ID_CHARS = 64
#: Arrays and objects nest at most this deep in a frame (deeper is a ``bad_frame``).
MAX_DEPTH = 32

RoomId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
RequestId = str | int


class Codec(StrEnum):
    JSON = "json"
    MSGPACK = "msgpack"

    @classmethod
    def for_subprotocol(cls, subprotocol: str | None) -> Codec:
        return cls.MSGPACK if subprotocol == SUBPROTOCOL_MSGPACK else cls.JSON


class _Params(BaseModel):
    # Strict: "1" is not 1 and 1 is not True; floats are finite (JSON allows NaN here).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ConnectParams(_Params):
    token: str = Field(min_length=1, max_length=4096)


class RoomParams(_Params):
    room: RoomId


class Position(_Params):
    """Where a client stopped: the last offset it saw and that offset's epoch."""

    offset: int = Field(ge=0, lt=2**53)
    epoch: Key = Field(min_length=1, max_length=64)


class SubscribeParams(RoomParams):
    since: Position | None = None


UserId = Annotated[Key, Field(min_length=1, max_length=64)]
EventId = Annotated[int, Field(ge=1, lt=2**53)]
#: Issued ids (orders, reservations, payments, auctions, cues, payment methods).
IssuedId = Annotated[Key, Field(min_length=1, max_length=140)]
# Every text field follows liveshop/text.py (no NUL, surrogates or controls; NFC). The room
# enforces the real limits after stripping; these only bound the work.
Text = Annotated[TextRule, Field(max_length=4000)]
ShortText = Annotated[Line, Field(max_length=200)]


class ChatParams(RoomParams):
    text: Text
    reply_to: EventId | None = None


class TextParams(RoomParams):
    text: Text


class ReactParams(RoomParams):
    kind: Annotated[Line, Field(min_length=1, max_length=32)]
    count: int = Field(default=1, ge=1, le=100)


class MessageParams(RoomParams):
    message_id: EventId


class UserParams(RoomParams):
    user_id: UserId


class MuteParams(UserParams):
    seconds: int = Field(ge=1, le=7 * 24 * 3600)


class BanParams(UserParams):
    reason: ShortText = ""


class ChatSettingsParams(RoomParams):
    slow_mode: int | None = Field(default=None, ge=0, le=3600)
    audience: Literal["everyone", "followers", "subscribers"] | None = None
    rate_limit: int | None = Field(default=None, ge=1, le=1000)
    rate_window: int | None = Field(default=None, ge=1, le=3600)
    blocked_words: list[Annotated[Line, Field(max_length=64)]] | None = Field(
        default=None, max_length=500
    )
    automod_fallback: Literal["allow", "block"] | None = None
    #: The reaction kinds viewers may send (replaces the set; the room checks the kinds).
    reactions: list[Annotated[Key, Field(max_length=32)]] | None = Field(
        default=None, min_length=1, max_length=16
    )
    frozen: bool | None = None


class RoleParams(UserParams):
    role: Literal["cohost", "guest", "moderator"]


class ProductParams(RoomParams):
    product_id: RoomId


class PollParams(RoomParams):
    question: ShortText
    options: list[Annotated[Line, Field(max_length=80)]] = Field(min_length=2, max_length=6)
    duration: float = Field(ge=5, le=24 * 3600)
    allow_change: bool = False


class VoteParams(RoomParams):
    poll_id: EventId
    option: int = Field(ge=0, le=5)


class PollIdParams(RoomParams):
    poll_id: EventId


class QuestionParams(RoomParams):
    question_id: EventId


class GiveawayParams(RoomParams):
    prize: ShortText
    eligibility: list[Annotated[Line, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, max_length=5
    )


class GiveawayIdParams(RoomParams):
    giveaway_id: EventId


class DrawParams(GiveawayIdParams):
    winners: int = Field(default=1, ge=1, le=100)
    #: Optional: a seed announced in advance makes the draw checkable by anyone.
    seed: Key | None = Field(default=None, min_length=1, max_length=64)


class GiftParams(RoomParams):
    gift_id: RoomId
    quantity: int = Field(default=1, ge=1, le=99)
    #: Idempotency key chosen by the client: resending the same request never pays twice.
    key: IdemKey


class TipParams(RoomParams):
    coins: int = Field(ge=1, le=1_000_000)
    key: IdemKey


class SkuParams(RoomParams):
    """Commerce ops name the room they happen in (attribution, the caller's role)."""

    sku: RoomId


class BuyParams(SkuParams):
    quantity: int = Field(default=1, ge=1, le=1000)
    #: Idempotency key, per buyer: a retry with the same key and body gets the same answer.
    key: IdemKey


class BuyNowParams(BuyParams):
    #: 1-tap: also charge the order with a saved payment method (``method``, else the newest).
    pay: bool = False
    method: IssuedId | None = None


class ReserveParams(BuyParams):
    ttl: float | None = Field(default=None, gt=0, le=86400)


class PayParams(RoomParams):
    order: IssuedId
    method: IssuedId | None = None
    key: IdemKey


class ConfirmParams(RoomParams):
    payment: IssuedId
    code: Annotated[Key, Field(min_length=1, max_length=32)]


class ReleaseParams(SkuParams):
    reservation: IssuedId


class DealParams(SkuParams):
    price_minor: int = Field(ge=0, le=10**12, strict=True)
    duration: float = Field(gt=0, le=86400)
    starts_in: float = Field(default=0, ge=0, le=7 * 86400)
    quantity: int = Field(ge=1, le=1_000_000)
    limit_per_buyer: int | None = Field(default=None, ge=1, le=1_000_000)


class AuctionParams(SkuParams):
    """Start an auction of one unit of ``sku`` (held from its stock until the end)."""

    start_price: int = Field(ge=0, le=10**12, strict=True)
    min_increment: int = Field(ge=1, le=10**12, strict=True)
    duration: float = Field(ge=1, le=7 * 86400)
    starts_in: float = Field(default=0, ge=0, le=7 * 86400)
    reserve_price: int | None = Field(default=None, ge=0, le=10**12, strict=True)
    mode: Literal["extend", "sudden_death"] = "extend"
    extend_window: float = Field(default=15, ge=1, le=600)


class AuctionIdParams(RoomParams):
    auction: Annotated[Key, Field(min_length=1, max_length=64)]


class BidParams(AuctionIdParams):
    amount: int = Field(ge=0, le=10**12, strict=True)
    #: Proxy bidding: liveshop bids for you up to this amount.
    max_amount: int | None = Field(default=None, ge=0, le=10**12, strict=True)
    key: IdemKey


class AddToCartParams(SkuParams):
    quantity: int = Field(default=1, ge=1, le=1000)


class UpdateCartParams(SkuParams):
    #: 0 removes the line.
    quantity: int = Field(ge=0, le=1000)


#: A postal address: the checkout rules (commerce/checkout.py) check its fields.
Address = Annotated[
    dict[Annotated[Key, Field(max_length=32)], Annotated[Line, Field(max_length=200)]],
    Field(max_length=16),
]


class CheckoutParams(RoomParams):
    address: Address
    key: IdemKey
    email: (
        Annotated[Key, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None
    ) = None
    method: IssuedId | None = None
    skus: list[RoomId] | None = Field(default=None, min_length=1, max_length=100)
    #: False: place the order and pay later (``pay``).
    pay: bool = True


class QuoteParams(RoomParams):
    address: Address
    skus: list[RoomId] | None = Field(default=None, min_length=1, max_length=100)


class OrdersParams(RoomParams):
    status: Literal["pending", "paid", "fulfilled", "shipped", "delivered", "cancelled"] | None = (
        None
    )
    before: IssuedId | None = None
    limit: int = Field(default=20, ge=1, le=100)


class OrderParams(RoomParams):
    order: IssuedId


class ReturnLine(_Params):
    line: int = Field(ge=1, le=1000)
    quantity: int = Field(ge=1, le=1_000_000)


class ReturnParams(OrderParams):
    lines: list[ReturnLine] = Field(min_length=1, max_length=1000)
    reason: Annotated[TextRule, Field(min_length=1, max_length=500)]
    key: IdemKey


class PolicyParams(RoomParams):
    stock_policy: Literal["hold", "first_paid"]
    hold_seconds: float | None = Field(default=None, gt=0, le=86400)


class HistoryParams(RoomParams):
    """A page of the chat log older than ``before`` (an offset); the newest without it."""

    before: int | None = Field(default=None, ge=1, lt=2**53)
    limit: int = Field(default=50, ge=1, le=100)


class PingParams(_Params):
    pass


class CueParams(RoomParams):
    """A run-of-show cue of the show on air (or next) in ``room``."""

    cue: Annotated[Key, Field(min_length=1, max_length=64)]


class RescheduleCueParams(CueParams):
    #: Seconds after the show's start.
    at: float = Field(ge=0, le=24 * 3600)


#: Operations on a room, after `connect`: each becomes one room command (liveshop/app/ops.py).
ROOM_OPS: dict[str, type[RoomParams]] = {
    "chat": ChatParams,
    "react": ReactParams,
    "delete_message": MessageParams,
    "pin_message": MessageParams,
    "unpin_message": RoomParams,
    "mute": MuteParams,
    "unmute": UserParams,
    "ban": BanParams,
    "unban": UserParams,
    "chat_settings": ChatSettingsParams,
    "grant_role": RoleParams,
    "revoke_role": RoleParams,
    "system_message": TextParams,
    "pin_product": ProductParams,
    "unpin_product": RoomParams,
    "queue_product": ProductParams,
    "unqueue_product": ProductParams,
    "create_poll": PollParams,
    "vote": VoteParams,
    "close_poll": PollIdParams,
    "ask": TextParams,
    "upvote": QuestionParams,
    "answer": QuestionParams,
    "open_giveaway": GiveawayParams,
    "enter_giveaway": GiveawayIdParams,
    "draw_giveaway": DrawParams,
    "send_gift": GiftParams,
    "tip": TipParams,
}

#: Operations on a SKU, from inside a room: each becomes one SKU command (liveshop/app/ops.py).
COMMERCE_OPS: dict[str, type[RoomParams]] = {
    "buy": BuyNowParams,
    "reserve": ReserveParams,
    "release": ReleaseParams,
    "stock": SkuParams,
    "start_deal": DealParams,
    "end_deal": SkuParams,
    "pay": PayParams,
    "confirm_payment": ConfirmParams,
    "start_auction": AuctionParams,
    "bid": BidParams,
    "auction": AuctionIdParams,
    "add_to_cart": AddToCartParams,
    "update_cart": UpdateCartParams,
    "remove_from_cart": SkuParams,
    "cart": RoomParams,
    "quote": QuoteParams,
    "checkout": CheckoutParams,
    "commerce_settings": PolicyParams,
    "orders": OrdersParams,
    "order": OrderParams,
    "cancel_order": OrderParams,
    "request_return": ReturnParams,
}

#: The host's show operations, on the show on air (or next) in a room: run-of-show cues and
#: live analytics (liveshop/app/programming.py).
SHOW_OPS: dict[str, type[RoomParams]] = {
    "fire_cue": CueParams,
    "skip_cue": CueParams,
    "reschedule_cue": RescheduleCueParams,
    "run_of_show": RoomParams,
    "show_analytics": RoomParams,
}

OPS: dict[str, type[_Params]] = {
    "connect": ConnectParams,
    "subscribe": SubscribeParams,
    "unsubscribe": RoomParams,
    "ping": PingParams,
    "history": HistoryParams,
    **ROOM_OPS,
    **COMMERCE_OPS,
    **SHOW_OPS,
}


@dataclass(frozen=True)
class Request:
    id: RequestId
    op: str
    params: Any


def decode_frame(frame: str | bytes, codec: Codec) -> Any:
    """Turn one WebSocket frame into a Python value, or raise :class:`BadFrame`."""
    if codec is Codec.JSON:
        if not isinstance(frame, str):
            raise BadFrame("expected a JSON text frame")
        try:
            message = json.loads(frame)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's
            raise BadFrame("frame is not valid JSON") from None
    else:
        if not isinstance(frame, bytes):
            raise BadFrame("expected a msgpack binary frame")
        try:
            message = msgpack.unpackb(frame, raw=False, strict_map_key=True)
        except Exception:  # msgpack raises several unrelated types for corrupt input
            raise BadFrame("frame is not valid msgpack") from None
    if _too_deep(message):
        raise BadFrame(f"frame nests deeper than {MAX_DEPTH} levels")
    return message


def _too_deep(value: Any) -> bool:
    """Whether arrays/objects nest deeper than MAX_DEPTH (iteratively: no recursion)."""
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        todo.extend((child, depth + 1) for child in children)
    return False


def encode_frame(message: dict[str, Any], codec: Codec) -> str | bytes:
    if codec is Codec.JSON:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def request_id_of(message: Any) -> RequestId | None:
    """The request id to echo in an error reply, when the message has a usable one."""
    if isinstance(message, dict):
        rid = message.get("id")
        if _valid_id(rid):
            return rid  # type: ignore[no-any-return]
    return None


def _valid_id(rid: Any) -> bool:
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -(2**53) < rid < 2**53
    return isinstance(rid, str) and 0 < len(rid) <= MAX_ID_CHARS and text_problem(rid) is None


def parse_request(message: Any) -> Request:
    """Validate a decoded frame as a request; raise a typed client error if it is not one."""
    if not isinstance(message, dict):
        raise BadFrame("a request must be an object")
    if "id" not in message:
        raise InvalidRequest("every request needs an 'id'")
    rid = message["id"]
    if not _valid_id(rid):
        raise InvalidRequest(f"'id' must be a string of 1-{MAX_ID_CHARS} chars or an integer")
    op = message.get("op")
    if not isinstance(op, str):
        raise InvalidRequest("every request needs an 'op' string")
    model = OPS.get(op)
    if model is None:
        raise UnknownOp(f"unknown op {op[:40]!r}")
    fields = {k: v for k, v in message.items() if k not in ("id", "op")}
    return Request(id=rid, op=op, params=validate_params(model, fields, op))


def validate_params(model: type[_Params], fields: dict[str, Any], op: str) -> Any:
    """The op's params, or :class:`InvalidRequest` listing each field that failed."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        details = [
            {"field": ".".join(_printable(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidRequest(f"invalid '{op}' request", details=details) from None


def _printable(part: Any) -> str:
    """A field name to echo back: a hostile one (an unknown key holding a surrogate) is
    escaped, so the error reply itself can always be encoded."""
    text = str(part)
    return text if text_problem(text) is None else ascii(text)


def result_reply(rid: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "result": result}


def error_reply(rid: RequestId | None, error: LiveshopError) -> dict[str, Any]:
    return {"id": rid, "error": error.to_dict()}


def room_push(
    room_id: str, epoch: str, events: list[dict[str, Any]], state: dict[str, Any]
) -> dict[str, Any]:
    """One push per room per tick: the new events (with offsets) and changed totals."""
    push: dict[str, Any] = {"push": "room", "room": room_id, "epoch": epoch, "events": events}
    if state:
        push["state"] = state
    return push
