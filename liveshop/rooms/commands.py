"""Commands a room accepts. Gateways and the HTTP API build them; the room decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshop.commerce.product import Product
from liveshop.rooms.automod import Verdict
from liveshop.rooms.gift import GiftReceipt
from liveshop.tokens import Identity, Role


@dataclass(frozen=True)
class Actor:
    """Who sends a command: the roles and badges their token grants in this room."""

    user_id: str
    name: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    badges: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_room(cls, identity: Identity, room_id: str) -> Actor:
        return cls(
            identity.user_id, identity.name, identity.roles_in(room_id), identity.badges_in(room_id)
        )


# -- chat and moderation --------------------------------------------------------------------


@dataclass(frozen=True)
class Chat:
    by: Actor
    text: str
    reply_to: int | None = None
    #: Filled in by the actor from the automatic moderation hook before the room decides.
    verdict: Verdict | None = None


@dataclass(frozen=True)
class DeleteMessage:
    by: Actor
    message_id: int


@dataclass(frozen=True)
class PinMessage:
    by: Actor
    message_id: int


@dataclass(frozen=True)
class UnpinMessage:
    by: Actor


@dataclass(frozen=True)
class Mute:
    by: Actor
    user_id: str
    seconds: int


@dataclass(frozen=True)
class Unmute:
    by: Actor
    user_id: str


@dataclass(frozen=True)
class Ban:
    by: Actor
    user_id: str
    reason: str = ""


@dataclass(frozen=True)
class Unban:
    by: Actor
    user_id: str


@dataclass(frozen=True)
class ChatSettings:
    """Change any subset of the room's chat rules (None: leave as is)."""

    by: Actor
    slow_mode: int | None = None
    audience: str | None = None
    rate_limit: int | None = None
    rate_window: int | None = None
    blocked_words: tuple[str, ...] | None = None
    automod_fallback: str | None = None
    frozen: bool | None = None
    reactions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GrantRole:
    by: Actor
    user_id: str
    role: Role


@dataclass(frozen=True)
class RevokeRole:
    by: Actor
    user_id: str
    role: Role


@dataclass(frozen=True)
class SystemMessage:
    by: Actor
    text: str


# -- reactions, presence ----------------------------------------------------------------------


@dataclass(frozen=True)
class React:
    by: Actor
    kind: str
    count: int = 1


@dataclass(frozen=True)
class ReportViewers:
    """A gateway's count of its local sockets subscribed to this room."""

    gateway_id: str
    count: int


@dataclass(frozen=True)
class Joined:
    """A viewer subscribed (for unique viewers and recent joiners)."""

    by: Actor


# -- products ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    by: Actor
    product: Product


@dataclass(frozen=True)
class Unpin:
    by: Actor


@dataclass(frozen=True)
class QueueProduct:
    by: Actor
    product: Product


@dataclass(frozen=True)
class UnqueueProduct:
    by: Actor
    product_id: str


# -- polls, Q&A, giveaways ---------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePoll:
    by: Actor
    question: str
    options: tuple[str, ...]
    duration: float
    allow_change: bool = False


@dataclass(frozen=True)
class Vote:
    by: Actor
    poll_id: int
    option: int


@dataclass(frozen=True)
class ClosePoll:
    by: Actor
    poll_id: int


@dataclass(frozen=True)
class Ask:
    by: Actor
    text: str


@dataclass(frozen=True)
class Upvote:
    by: Actor
    question_id: int


@dataclass(frozen=True)
class MarkAnswered:
    by: Actor
    question_id: int


@dataclass(frozen=True)
class OpenGiveaway:
    by: Actor
    prize: str
    #: Each must hold: "chatted" (chatted in this room), or a badge the entrant's token carries
    #: ("follower", "subscriber", "purchased", ...).
    eligibility: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnterGiveaway:
    by: Actor
    giveaway_id: int


@dataclass(frozen=True)
class DrawGiveaway:
    by: Actor
    giveaway_id: int
    winners: int
    #: Chosen by the actor (the domain reads no randomness); recorded with the result.
    seed: str


@dataclass(frozen=True)
class SendGift:
    """A viewer's request; the actor turns it into a paid :class:`GiftSent` or an error."""

    by: Actor
    gift_id: str
    quantity: int
    key: str


@dataclass(frozen=True)
class GiftSent:
    receipt: GiftReceipt


@dataclass(frozen=True)
class StockChanged:
    """A SKU's stock counter and flash deal (``Inventory.snapshot``), pushed by its actor
    to the rooms that pin its product; never sent by clients."""

    view: dict[str, Any]


@dataclass(frozen=True)
class AuctionChanged:
    """An auction's live view, pushed by its actor to the auction's room."""

    view: dict[str, Any]


@dataclass(frozen=True)
class ChannelChanged:
    """What the channel plays and its now/next (``Channel.view``), pushed by the channel
    actor to its feed room and to the show on air; never sent by clients."""

    view: dict[str, Any]


@dataclass(frozen=True)
class StreamChanged:
    """The room's live stream as its transcoder sees it (status, playback URLs, health),
    pushed by the transcoder actor; never sent by clients."""

    view: dict[str, Any]


Command = (
    Chat | DeleteMessage | PinMessage | UnpinMessage | Mute | Unmute | Ban | Unban
    | ChatSettings | GrantRole | RevokeRole | SystemMessage | React | ReportViewers | Joined
    | Pin | Unpin | QueueProduct | UnqueueProduct | CreatePoll | Vote | ClosePoll | Ask
    | Upvote | MarkAnswered | OpenGiveaway | EnterGiveaway | DrawGiveaway | SendGift | GiftSent
    | StockChanged | AuctionChanged | StreamChanged | ChannelChanged
)  # fmt: skip

Reply = dict[str, Any]
