"""The one exception root and the stable error codes clients see.

Every error a client can observe is a :class:`LiveshopError` with a stable ``code``, a human
message and whether retrying later may succeed (``temporary``). The gateway maps them to
WebSocket error replies (and, for connection-level failures, close codes); the HTTP API maps
them to JSON bodies with an HTTP status.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class CloseCode(IntEnum):
    """WebSocket close codes liveshop uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013


class LiveshopError(Exception):
    """Root of every error liveshop raises on purpose."""

    code: str = "internal"
    status: int = 500
    temporary: bool = False

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "temporary": self.temporary,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross Ray process boundaries; keep keyword-only details when pickled.
        return (_rebuild, (type(self), self.message, self.details))


def _rebuild(cls: type[LiveshopError], message: str, details: Any) -> LiveshopError:
    return cls(message, details=details)


class ClientError(LiveshopError):
    """The request was wrong; sending it again unchanged fails again."""

    code = "bad_request"
    status = 400


class BadFrame(ClientError):
    code = "bad_frame"


class UnknownOp(ClientError):
    code = "unknown_op"


class InvalidRequest(ClientError):
    code = "invalid_request"
    status = 422


class Unauthenticated(ClientError):
    code = "unauthenticated"
    status = 401


class TokenInvalid(Unauthenticated):
    code = "token_invalid"


class TokenExpired(Unauthenticated):
    code = "token_expired"


class Forbidden(ClientError):
    code = "forbidden"
    status = 403


class NotFound(ClientError):
    code = "not_found"
    status = 404


class RoomNotFound(NotFound):
    code = "room_not_found"


class ProductNotFound(NotFound):
    code = "product_not_found"


class Conflict(ClientError):
    code = "conflict"
    status = 409


class NotSubscribed(ClientError):
    code = "not_subscribed"


class AlreadyConnected(ClientError):
    code = "already_connected"


class TooLarge(ClientError):
    """The request body is larger than the endpoint takes (HTTP 413)."""

    code = "too_large"
    status = 413


class RateLimited(ClientError):
    code = "rate_limited"
    status = 429
    temporary = True


class Muted(Forbidden):
    code = "muted"


class Banned(Forbidden):
    code = "banned"


class AudienceRestricted(Forbidden):
    """Followers-only or subscribers-only chat, or a giveaway the user is not eligible for."""

    code = "not_eligible"


class MessageBlocked(Forbidden):
    """A blocked word or the automatic moderation check refused the message."""

    code = "message_blocked"


class ChatFrozen(Forbidden):
    """An operator froze the chat (emergency control); staff still speak."""

    code = "chat_frozen"


class SlowMode(ClientError):
    code = "slow_mode"
    status = 429
    temporary = True


class Closed(Conflict):
    """The poll or giveaway is closed."""

    code = "closed"


class AlreadyDone(Conflict):
    """A vote, upvote or giveaway entry that may happen once per user."""

    code = "already_done"


class GiftNotFound(NotFound):
    code = "gift_not_found"


class InsufficientCoins(ClientError):
    code = "insufficient_coins"
    status = 402


class IdempotencyMismatch(Conflict):
    """The idempotency key was used before with a different request."""

    code = "idempotency_mismatch"


# -- commerce (liveshop/commerce/) ---------------------------------------------------------


class OutOfStock(Conflict):
    """Fewer units available than asked for (the reply says how many are)."""

    code = "out_of_stock"


class LimitExceeded(Conflict):
    """The buyer would hold more than the per-buyer limit."""

    code = "limit_exceeded"


class StaleQuantity(Conflict):
    """An adjustment's ``expected`` on-hand quantity is not the current one; nothing changed."""

    code = "stale_quantity"


class ReservationNotFound(NotFound):
    code = "reservation_not_found"


class SkuNotFound(NotFound):
    code = "sku_not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class InvalidTransition(Conflict):
    """The order is not in a status that allows this (e.g. shipping an unpaid order)."""

    code = "invalid_transition"


class PaymentDeclined(ClientError):
    """The payment provider refused the payment method; another one may work."""

    code = "payment_declined"
    status = 402


class PaymentMethodNotFound(NotFound):
    code = "payment_method_not_found"


class PaymentNotFound(NotFound):
    code = "payment_not_found"


class ReturnNotFound(NotFound):
    code = "return_not_found"


class CartItemNotFound(NotFound):
    code = "not_in_cart"


class AuctionNotFound(NotFound):
    code = "auction_not_found"


class AuctionNotLive(Conflict):
    """The auction has not started yet, or it has ended."""

    code = "auction_not_live"


class BidTooLow(Conflict):
    """Below the minimum bid (``details.minimum``)."""

    code = "bid_too_low"


# -- media (liveshop/media/) -----------------------------------------------------------------


class InvalidStreamKey(Forbidden):
    """The stream key is unknown or was revoked (rotated)."""

    code = "invalid_stream_key"


class StreamInUse(Conflict):
    """Another publisher is already live on this stream key."""

    code = "stream_in_use"


class BadStream(ClientError):
    """The ingest protocol or the media could not be understood (malformed RTMP, no video)."""

    code = "bad_stream"


class StreamNotLive(NotFound):
    """The room has no live stream (nothing to play, or nothing to subscribe to)."""

    code = "stream_not_live"


class Unavailable(LiveshopError):
    """A dependency (room actor, PostgreSQL, Redis) did not answer; retry later."""

    code = "unavailable"
    status = 503
    temporary = True


class InternalError(LiveshopError):
    code = "internal"
    status = 500
