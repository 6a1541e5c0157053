"""A live room: the rules for chat and moderation, reactions, products, polls, Q&A, giveaways,
roles and presence.

No I/O and no clock reads: the actor hands in commands and ``now`` and takes out replies,
events (durable, each with the next offset) and state changes (ephemeral totals such as
reactions, poll tallies and viewers, coalesced per tick). Offsets strictly increase within an
epoch.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from liveshop.commerce.product import Product
from liveshop.errors import (
    AlreadyDone,
    Banned,
    ClientError,
    Closed,
    Forbidden,
    InvalidRequest,
    LiveshopError,
    NotFound,
)
from liveshop.rooms.channel import route_key
from liveshop.rooms.chat import MAX_MUTE_SECONDS, ChatRules
from liveshop.rooms.commands import (
    Actor,
    Ask,
    AuctionChanged,
    Ban,
    ChannelChanged,
    Chat,
    ChatSettings,
    ClosePoll,
    Command,
    CreatePoll,
    DeleteMessage,
    DrawGiveaway,
    EnterGiveaway,
    GiftSent,
    GrantRole,
    Joined,
    MarkAnswered,
    Mute,
    OpenGiveaway,
    Pin,
    PinMessage,
    QueueProduct,
    React,
    Reply,
    ReportViewers,
    RevokeRole,
    SendGift,
    StockChanged,
    StreamChanged,
    SystemMessage,
    Unban,
    Unmute,
    Unpin,
    UnpinMessage,
    UnqueueProduct,
    Upvote,
    Vote,
)
from liveshop.rooms.event import Event
from liveshop.rooms.gift import GiftBoard, GiftReceipt
from liveshop.rooms.giveaway import Giveaway
from liveshop.rooms.history import HISTORY_AGE, HISTORY_SIZE, History
from liveshop.rooms.poll import Poll
from liveshop.rooms.qa import Question, ranked
from liveshop.text import check_line, check_text, require, text_problem
from liveshop.tokens import SPEAKING_ROLES, STAFF_ROLES, Role

MAX_CHAT_CHARS = 500
MAX_QUESTION_CHARS = 300
MAX_REACTION_BURST = 100
#: Chat messages included in a snapshot.
SNAPSHOT_CHAT = 50
SNAPSHOT_QUESTIONS = 50
#: A gateway that has not reported for this long no longer counts towards viewers.
VIEWER_REPORT_TTL = 5.0
MAX_QUEUE = 20
MAX_OPEN_POLLS = 5
MAX_QUESTIONS = 1000
#: Unanswered questions one user may have in a room at once (the rest wait their turn).
MAX_OPEN_QUESTIONS_PER_USER = 3
MAX_OPEN_GIVEAWAYS = 5
RECENT_JOINERS = 20
MAX_AUCTIONS_SHOWN = 5
#: Unique viewers and recent joiners are published at most this often (seconds).
PRESENCE_INTERVAL = 1.0
#: Unique viewers are counted exactly up to this many, then the count stops growing.
MAX_UNIQUE_VIEWERS = 200_000
#: Roles the room itself can grant live (hosts come from tokens only).
GRANTABLE = frozenset({Role.COHOST, Role.GUEST, Role.MODERATOR})
#: Who may grant or revoke them.
HOSTS = frozenset({Role.HOST, Role.COHOST, Role.SERVICE})


@dataclass
class RoomInfo:
    room_id: str
    title: str
    channel_id: str | None = None
    status: str = "live"
    #: Who receives the room's gifts; a room without a host takes no gifts.
    host_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.room_id,
            "title": self.title,
            "channel_id": self.channel_id,
            "status": self.status,
            "host_id": self.host_id,
        }


@dataclass
class Tick:
    """What one tick publishes: new events and changed ephemeral state."""

    events: list[Event] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    #: (gift send id, event offset) to record with the events, in the same transaction.
    gift_offsets: list[tuple[int, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.state)


class Room:
    def __init__(
        self,
        info: RoomInfo,
        *,
        epoch: str,
        offset: int = 0,
        history: list[Event] | None = None,
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
    ) -> None:
        self.info = info
        self.epoch = epoch
        self.offset = offset
        self.history = History(history_size, history_age, history or ())
        self.pinned: Product | None = None
        #: The pinned product's SKUs as their actors last pushed them (stock and deal).
        self.stock: dict[str, dict[str, Any]] = {}
        self._stock_changed = False
        #: The room's latest auctions as their actors last pushed them.
        self.auctions: dict[str, dict[str, Any]] = {}
        self._auctions_changed = False
        #: The live stream as the transcoder last pushed it (None: never went live).
        self.stream: dict[str, Any] | None = None
        self._stream_changed = False
        #: What the room's channel plays (``Channel.view``), pushed by the channel actor.
        self.channel: dict[str, Any] | None = None
        self._channel_changed = False
        self.queue: list[Product] = []
        self.pinned_message: dict[str, Any] | None = None
        self.deleted: set[int] = set()
        self.reactions: Counter[str] = Counter()
        self.peak_viewers = 0
        self.rules = ChatRules()
        self.grants: dict[str, set[Role]] = {}
        self.polls: dict[int, Poll] = {}
        self.questions: dict[int, Question] = {}
        self.giveaways: dict[int, Giveaway] = {}
        self.chatters: set[str] = set()
        self.uniques: set[str] = set()
        self.recent_joiners: deque[dict[str, str]] = deque(maxlen=RECENT_JOINERS)
        self.gifts = GiftBoard()
        self._gift_offsets: list[tuple[int, int]] = []
        self._board_changed = False
        self._pending_events: list[Event] = []
        self._pending_reactions: Counter[str] = Counter()
        self._changed_polls: set[int] = set()
        self._changed_questions: set[int] = set()
        self._changed_giveaways: set[int] = set()
        self._joiners_changed = False
        self._presence_at = float("-inf")
        self._viewer_reports: dict[str, tuple[int, float]] = {}
        self._published_viewers = -1
        #: Bumped by every change to durable state, so the actor knows when to save it
        #: without comparing whole documents.
        self.version = 0

    # -- commands -------------------------------------------------------------------------

    def apply_batch(
        self, commands: Sequence[Command | LiveshopError], now: float
    ) -> list[Reply | LiveshopError]:
        """Apply each command in order; a client error fails that command only. An error in
        place of a command (refused before the room, e.g. an unpaid gift) passes through."""
        results: list[Reply | LiveshopError] = []
        for command in commands:
            if isinstance(command, LiveshopError):
                results.append(command)
                continue
            by: Actor | None = getattr(command, "by", None)
            if by is not None and (text_problem(by.user_id) or text_problem(by.name)):
                # Who acted is written into events: text PostgreSQL cannot store would
                # fail the tick (the edge refuses it; this holds past it, cheaply).
                results.append(InvalidRequest("an id or name PostgreSQL cannot store"))
                continue
            try:
                results.append(self.apply(command, now))
            except ClientError as exc:
                results.append(exc)
            else:
                if not isinstance(command, ReportViewers):
                    self.version += 1
        return results

    def apply(self, command: Command, now: float) -> Reply:
        match command:
            case Chat():
                return self._chat(command, now)
            case React(by=by, kind=kind, count=count):
                self._require(by, "react")
                return self._react(kind, count)
            case ReportViewers(gateway_id=gateway_id, count=count):
                if count < 0:
                    raise InvalidRequest("viewer count must not be negative")
                self._viewer_reports[gateway_id] = (count, now)
                return {}
            case Joined(by=by):
                self._joined(by)
                return {}
            case SystemMessage(by=by, text=text):
                self._require_staff(by)
                return self._offset(self._emit("system", {"text": _clean(text)}, now))
            case DeleteMessage():
                return self._delete(command, now)
            case PinMessage(by=by, message_id=message_id):
                self._require_staff(by)
                message = self._message(message_id)
                self.pinned_message = message
                return self._offset(
                    self._emit("message_pinned", {"message": message, "by": by.user_id}, now)
                )
            case UnpinMessage(by=by):
                self._require_staff(by)
                if self.pinned_message is None:
                    return {"offset": None}
                self.pinned_message = None
                return self._offset(self._emit("message_unpinned", {"by": by.user_id}, now))
            case Mute(by=by, user_id=user_id, seconds=seconds):
                self._require_staff(by)
                self._not_staff_target(user_id)
                if not 1 <= seconds <= MAX_MUTE_SECONDS:
                    raise InvalidRequest(f"mute for 1-{MAX_MUTE_SECONDS} seconds")
                until = now + seconds
                self.rules.mutes[user_id] = until
                data = {"user_id": user_id, "until": until, "by": by.user_id}
                return self._offset(self._emit("user_muted", data, now))
            case Unmute(by=by, user_id=user_id):
                self._require_staff(by)
                if self.rules.mutes.pop(user_id, None) is None:
                    raise NotFound(f"{user_id!r} is not muted")
                data = {"user_id": user_id, "by": by.user_id}
                return self._offset(self._emit("user_unmuted", data, now))
            case Ban(by=by, user_id=user_id, reason=reason):
                self._require_staff(by)
                self._not_staff_target(user_id)
                reason = require(check_line, reason, "reason")[:200]
                self.rules.bans[user_id] = reason
                data = {"user_id": user_id, "by": by.user_id, "reason": reason}
                return self._offset(self._emit("user_banned", data, now))
            case Unban(by=by, user_id=user_id):
                self._require_staff(by)
                if self.rules.bans.pop(user_id, None) is None:
                    raise NotFound(f"{user_id!r} is not banned")
                data = {"user_id": user_id, "by": by.user_id}
                return self._offset(self._emit("user_unbanned", data, now))
            case ChatSettings(by=by):
                self._require_staff(by)
                if command.frozen is not None and Role.SERVICE not in self._roles(by):
                    # An operator's emergency control: a room moderator must not lift it.
                    raise Forbidden("chat is frozen and thawed by the channel's operators")
                self.rules.update(
                    slow_mode=command.slow_mode,
                    audience=command.audience,
                    rate_limit=command.rate_limit,
                    rate_window=command.rate_window,
                    blocked_words=command.blocked_words,
                    automod_fallback=command.automod_fallback,
                    frozen=command.frozen,
                    reactions=command.reactions,
                )
                data = {"settings": self.rules.settings(), "by": by.user_id}
                return self._offset(self._emit("chat_settings", data, now))
            case GrantRole(by=by, user_id=user_id, role=role):
                self._require_host(by, role)
                held = self.grants.setdefault(user_id, set())
                if role in held:
                    raise AlreadyDone(f"{user_id!r} already is {role.value} here")
                held.add(role)
                data = {"user_id": user_id, "role": role.value, "by": by.user_id}
                return self._offset(self._emit("role_granted", data, now))
            case RevokeRole(by=by, user_id=user_id, role=role):
                self._require_host(by, role)
                if role not in self.grants.get(user_id, set()):
                    raise NotFound(f"{user_id!r} was not granted {role.value} here")
                self.grants[user_id].discard(role)
                if not self.grants[user_id]:
                    del self.grants[user_id]
                data = {"user_id": user_id, "role": role.value, "by": by.user_id}
                return self._offset(self._emit("role_revoked", data, now))
            case Pin(by=by, product=product):
                self._require_staff(by)
                self.pinned = product
                self._keep_stock_of(product.product_id)
                self.queue = [p for p in self.queue if p.product_id != product.product_id]
                data = {"product": product.card(), "by": by.user_id}
                return self._offset(self._emit("pin", data, now))
            case Unpin(by=by):
                self._require_staff(by)
                if self.pinned is None:
                    return {"offset": None}
                self.pinned = None
                self._keep_stock_of(None)
                return self._offset(self._emit("unpin", {"by": by.user_id}, now))
            case QueueProduct(by=by, product=product):
                self._require_staff(by)
                if any(p.product_id == product.product_id for p in self.queue):
                    raise AlreadyDone(f"{product.product_id!r} is already queued")
                if len(self.queue) >= MAX_QUEUE:
                    raise InvalidRequest(f"the product queue holds at most {MAX_QUEUE}")
                self.queue.append(product)
                data = {"product": product.card(), "by": by.user_id}
                return self._offset(self._emit("product_queued", data, now))
            case UnqueueProduct(by=by, product_id=product_id):
                self._require_staff(by)
                if not any(p.product_id == product_id for p in self.queue):
                    raise NotFound(f"{product_id!r} is not queued")
                self.queue = [p for p in self.queue if p.product_id != product_id]
                data = {"product_id": product_id, "by": by.user_id}
                return self._offset(self._emit("product_unqueued", data, now))
            case CreatePoll(by=by):
                self._require_staff(by)
                if sum(p.is_open(now) for p in self.polls.values()) >= MAX_OPEN_POLLS:
                    raise InvalidRequest(f"at most {MAX_OPEN_POLLS} open polls")
                poll = Poll.create(
                    self.offset + 1, command.question, command.options, command.duration,
                    command.allow_change, now,
                )  # fmt: skip
                self.polls[poll.poll_id] = poll
                event = self._emit("poll_created", {"poll": poll.public()}, now)
                return {"offset": event.offset, "poll_id": poll.poll_id}
            case Vote(by=by, poll_id=poll_id, option=option):
                self._require_member(by)
                poll = self._poll(poll_id)
                if poll.vote(by.user_id, option, now):
                    self._changed_polls.add(poll_id)
                return {"poll_id": poll_id, "option": option}
            case ClosePoll(by=by, poll_id=poll_id):
                self._require_staff(by)
                poll = self._poll(poll_id)
                if poll.closed:
                    raise Closed("this poll is already closed")
                return self._offset(self._close_poll(poll, now))
            case Ask(by=by, text=text):
                roles = self._roles(by)
                self.rules.check_speaker(by.user_id, roles, by.badges, now)
                cleaned = _clean(text, MAX_QUESTION_CHARS)
                self.rules.check_text(cleaned, roles, None)
                self._check_waiting_questions(by.user_id)
                self.rules.check_pace(by.user_id, roles, now)  # questions count as messages
                self._make_room_for_question(now)
                question = Question(self.offset + 1, by.user_id, by.name, cleaned)
                self.questions[question.question_id] = question
                event = self._emit("question", {"question": question.public()}, now)
                return {"offset": event.offset, "question_id": question.question_id}
            case Upvote(by=by, question_id=question_id):
                self._require_member(by)
                self._question(question_id).upvote(by.user_id)
                self._changed_questions.add(question_id)
                return {"question_id": question_id}
            case MarkAnswered(by=by, question_id=question_id):
                self._require_staff(by)
                question = self._question(question_id)
                if question.answered:
                    raise AlreadyDone("this question is already answered")
                question.answered = True
                data = {"question_id": question_id, "by": by.user_id}
                return self._offset(self._emit("question_answered", data, now))
            case OpenGiveaway(by=by, prize=prize, eligibility=eligibility):
                self._require_staff(by)
                open_now = sum(g.drawn is None for g in self.giveaways.values())
                if open_now >= MAX_OPEN_GIVEAWAYS:
                    raise InvalidRequest(f"at most {MAX_OPEN_GIVEAWAYS} open giveaways")
                cleaned_prize = require(check_line, prize, "prize")
                if not 1 <= len(cleaned_prize) <= 200:
                    raise InvalidRequest("a prize is 1-200 characters")
                conditions = tuple(require(check_line, e, "eligibility") for e in eligibility)
                giveaway = Giveaway(self.offset + 1, cleaned_prize, conditions)
                self.giveaways[giveaway.giveaway_id] = giveaway
                event = self._emit("giveaway_opened", {"giveaway": giveaway.public()}, now)
                return {"offset": event.offset, "giveaway_id": giveaway.giveaway_id}
            case EnterGiveaway(by=by, giveaway_id=giveaway_id):
                self._require_member(by)
                giveaway = self._giveaway(giveaway_id)
                giveaway.enter(by.user_id, by.badges, by.user_id in self.chatters)
                self._changed_giveaways.add(giveaway_id)
                return {"giveaway_id": giveaway_id}
            case GiftSent(receipt=receipt):
                return self._gift(receipt, now)
            case StockChanged(view=view):
                return self._stock(view, now)
            case AuctionChanged(view=view):
                return self._auction(view, now)
            case StreamChanged(view=view):
                return self._stream(view, now)
            case ChannelChanged(view=view):
                return self._channel(view, now)
            case SendGift():
                raise InvalidRequest("gifts are paid by the room actor before the room sees them")
            case DrawGiveaway(by=by, giveaway_id=giveaway_id, winners=winners, seed=seed):
                self._require_staff(by)
                result = self._giveaway(giveaway_id).draw(winners, seed)
                data = {"giveaway_id": giveaway_id, **result, "by": by.user_id}
                event = self._emit("giveaway_drawn", data, now)
                return {"offset": event.offset, **result}
        raise InvalidRequest(f"unknown command {type(command).__name__}")

    # -- chat -------------------------------------------------------------------------------

    def _chat(self, command: Chat, now: float) -> Reply:
        by = command.by
        roles = self._roles(by)
        self.rules.check_speaker(by.user_id, roles, by.badges, now)
        text = _clean(command.text)
        self.rules.check_text(text, roles, command.verdict)
        data: dict[str, Any] = {"user": {"id": by.user_id, "name": by.name}, "text": text}
        if command.reply_to is not None:
            if not 0 < command.reply_to <= self.offset:
                raise InvalidRequest("reply_to must be the id of an earlier message")
            data["reply_to"] = command.reply_to
        self.rules.check_pace(by.user_id, roles, now)  # last: only messages that pass count
        if len(self.chatters) < MAX_UNIQUE_VIEWERS:
            self.chatters.add(by.user_id)
        event = self._emit("chat", data, now)
        return {"offset": event.offset, "message_id": event.offset}

    # -- commerce ---------------------------------------------------------------------------

    def _stock(self, view: dict[str, Any], now: float) -> Reply:
        """A SKU's counter: kept and published while its product is pinned. A deal that
        starts or ends is also an event, so a viewer who was away learns it on recovery.
        ``watching: false`` tells the SKU to stop pushing here."""
        if self.pinned is None or view.get("product_id") != self.pinned.product_id:
            return {"watching": False}
        sku = view["sku"]
        before = (self.stock.get(sku) or {}).get("deal") or {}
        deal = view.get("deal") or {}
        if deal and (deal.get("deal_id"), deal.get("phase")) != (
            before.get("deal_id"),
            before.get("phase"),
        ):
            if deal["phase"] == "live":
                self._emit("deal_started", {"sku": sku, "deal": deal}, now)
            elif deal["phase"] == "ended" and before.get("deal_id") == deal["deal_id"]:
                self._emit("deal_ended", {"sku": sku, "deal": deal}, now)
        if self.stock.get(sku) != view:
            self.stock[sku] = view
            self._stock_changed = True
        return {"watching": True}

    def _auction(self, view: dict[str, Any], now: float) -> Reply:
        """An auction's clock, price and recent bids, published per tick; its start and its
        result are events as well."""
        auction_id = view["auction_id"]
        before = self.auctions.get(auction_id) or {}
        if view.get("phase") == "live" and before.get("phase") != "live":
            self._emit("auction_started", {"auction": view}, now)
        if view.get("result") is not None and before.get("result") is None:
            data = {"auction_id": auction_id, "result": view["result"], "order": view.get("order")}
            self._emit("auction_ended", data, now)
        self.auctions.pop(auction_id, None)
        self.auctions[auction_id] = view
        while len(self.auctions) > MAX_AUCTIONS_SHOWN:
            del self.auctions[next(iter(self.auctions))]
        self._auctions_changed = True
        return {}

    def _stream(self, view: dict[str, Any], now: float) -> Reply:
        """The stream's status and health, published per tick; going live, ending and a
        newly raised health alert are events, so a host who was away learns them on
        recovery."""
        before = self.stream or {}
        same_stream = before.get("stream_id") == view.get("stream_id")
        status = view.get("status")
        if status in ("live", "slate") and not (same_stream and before.get("status") != "ended"):
            self._emit("stream_started", {"stream": view}, now)
        elif status == "ended" and same_stream and before.get("status") != "ended":
            self._emit("stream_ended", {"stream": view}, now)
        raised = set(view.get("health", {}).get("alerts", ())) - set(
            (before.get("health") or {}).get("alerts", ()) if same_stream else ()
        )
        if raised and status != "ended":
            data = {"stream_id": view.get("stream_id"), "alerts": sorted(raised)}
            self._emit("stream_alert", data, now)
        if view != self.stream:
            self.stream = view
            self._stream_changed = True
        return {}

    def _channel(self, view: dict[str, Any], now: float) -> Reply:
        """The channel's route and now/next, published per tick; a change of what plays is a
        ``route_changed`` event, so a player that was away learns it on recovery."""
        route = view["route"]
        before = (self.channel or {}).get("route")
        if before is None or route_key(route) != route_key(before):
            data = {"route": route, "now": view.get("now"), "override": view.get("override")}
            self._emit("route_changed", data, now)
        if view != self.channel:
            self.channel = view
            self._channel_changed = True
        return {}

    def _keep_stock_of(self, product_id: str | None) -> None:
        kept = {s: v for s, v in self.stock.items() if v.get("product_id") == product_id}
        if kept != self.stock:
            self.stock = kept
            self._stock_changed = True

    def _gift(self, receipt: GiftReceipt, now: float) -> Reply:
        """Publish a paid gift once; a replay answers with the first event's offset."""
        offset = self.gifts.published.get(receipt.send_id, receipt.event_offset)
        if offset is None:
            data = {
                "send_id": receipt.send_id,
                "user": {"id": receipt.sender_id, "name": receipt.sender_name},
                "recipient_id": receipt.recipient_id,
                "gift": {"id": receipt.gift_id, "name": receipt.gift_name},
                "quantity": receipt.quantity,
                "coins": receipt.coins,
            }
            offset = self._emit("gift", data, now).offset
            self.gifts.record(receipt, offset)
            self._gift_offsets.append((receipt.send_id, offset))
            self._board_changed = True
        return {
            "offset": offset,
            "send_id": receipt.send_id,
            "coins": receipt.coins,
            "balance": receipt.balance,
            "replayed": receipt.replayed,
        }

    def _delete(self, command: DeleteMessage, now: float) -> Reply:
        self._require_staff(command.by)
        self._message(command.message_id)
        self.deleted.add(command.message_id)
        if self.pinned_message and self.pinned_message["offset"] == command.message_id:
            self.pinned_message = None
        data = {"message_id": command.message_id, "by": command.by.user_id}
        return self._offset(self._emit("message_deleted", data, now))

    def _message(self, message_id: int) -> dict[str, Any]:
        """A chat message still in the history window and not deleted."""
        if message_id not in self.deleted:
            for event in self.history:
                if event.offset == message_id and event.kind == "chat":
                    return event.to_wire()
        raise NotFound(f"no message {message_id} in this room's recent history")

    def _react(self, kind: str, count: int) -> Reply:
        if kind not in self.rules.reactions:
            raise InvalidRequest(
                f"this room takes the reactions {', '.join(self.rules.reactions)}",
                details={"reactions": list(self.rules.reactions)},
            )
        if not 1 <= count <= MAX_REACTION_BURST:
            raise InvalidRequest(f"reaction count must be 1-{MAX_REACTION_BURST}")
        self.reactions[kind] += count
        self._pending_reactions[kind] += count
        return {}

    def _joined(self, by: Actor) -> None:
        if len(self.uniques) < MAX_UNIQUE_VIEWERS:
            self.uniques.add(by.user_id)
        # One entry per user, the latest join last: rejoining must not fill the list.
        for joiner in self.recent_joiners:
            if joiner["id"] == by.user_id:
                self.recent_joiners.remove(joiner)
                break
        self.recent_joiners.append({"id": by.user_id, "name": by.name})
        self._joiners_changed = True

    def _check_waiting_questions(self, user_id: str) -> None:
        """A user has a few unanswered questions in a room at once."""
        waiting = sum(1 for q in self.questions.values() if q.user_id == user_id and not q.answered)
        if waiting >= MAX_OPEN_QUESTIONS_PER_USER:
            raise InvalidRequest(
                f"you have {waiting} unanswered questions here; wait for an answer first"
            )

    def _make_room_for_question(self, now: float) -> None:
        """A full room forgets a question to take a new one: its oldest answered one, else
        the least upvoted (oldest first) unanswered one, so that many accounts asking at
        once can never shut everyone else out of the Q&A."""
        if len(self.questions) >= MAX_QUESTIONS:
            answered = next((i for i, q in self.questions.items() if q.answered), None)
            if answered is None:
                # Insertion order is age: min() keeps the oldest among the least upvoted.
                answered = min(self.questions, key=lambda i: len(self.questions[i].voters))
            del self.questions[answered]
            self._changed_questions.discard(answered)
            # Announced, so that pages stop showing it (and upvotes are not refused unseen).
            self._emit("question_removed", {"question_id": answered, "reason": "room full"}, now)

    # -- roles ------------------------------------------------------------------------------

    def _roles(self, by: Actor) -> frozenset[Role]:
        granted = self.grants.get(by.user_id)
        return by.roles | granted if granted else by.roles

    def is_staff(self, by: Actor) -> bool:
        return bool(self._roles(by) & STAFF_ROLES)

    def _require(self, by: Actor, what: str) -> None:
        if not self._roles(by):
            raise Forbidden(f"your token grants no role in this room ({what})")
        if by.user_id in self.rules.bans and not self._roles(by) & STAFF_ROLES:
            raise Banned("you are banned from this room")

    def _require_member(self, by: Actor) -> None:
        """Speaking members: any role but anonymous, and not banned."""
        self._require(by, "members only")
        if not self._roles(by) & SPEAKING_ROLES:
            raise Forbidden("anonymous viewers can watch and react only")

    def _require_staff(self, by: Actor) -> None:
        if not self._roles(by) & STAFF_ROLES:
            raise Forbidden("only the host, co-hosts, moderators or services may do this")

    def _require_host(self, by: Actor, role: Role) -> None:
        if role not in GRANTABLE:
            raise InvalidRequest(f"a room can grant {', '.join(sorted(GRANTABLE))} only")
        if not self._roles(by) & HOSTS:
            raise Forbidden("only the host, co-hosts or services may invite or remove")

    def _not_staff_target(self, user_id: str) -> None:
        """Moderation never reaches staff: remove a granted role first; the host, whose role
        comes from their token, cannot be muted or banned in their own room."""
        if user_id == self.info.host_id:
            raise Forbidden("the host cannot be muted or banned in their own room")
        if self.grants.get(user_id, set()) & STAFF_ROLES:
            raise Forbidden("remove their staff role first")

    def check_join(self, user_id: str) -> None:
        if user_id in self.rules.bans:
            raise Banned("you are banned from this room")

    def gift_recipient(self, by: Actor) -> str:
        """Who a gift from ``by`` goes to (the host), or why ``by`` may not send one. Checked
        by the actor before it takes the coins."""
        host = self.info.host_id
        if host is None:
            raise Forbidden("this room takes no gifts (it has no host)")
        self._require_member(by)
        if by.user_id == host:
            raise InvalidRequest("hosts cannot send gifts to themselves")
        return host

    # -- lookups ----------------------------------------------------------------------------

    def _poll(self, poll_id: int) -> Poll:
        poll = self.polls.get(poll_id)
        if poll is None:
            raise NotFound(f"no poll {poll_id}")
        return poll

    def _question(self, question_id: int) -> Question:
        question = self.questions.get(question_id)
        if question is None:
            raise NotFound(f"no question {question_id}")
        return question

    def _giveaway(self, giveaway_id: int) -> Giveaway:
        giveaway = self.giveaways.get(giveaway_id)
        if giveaway is None:
            raise NotFound(f"no giveaway {giveaway_id}")
        return giveaway

    def _close_poll(self, poll: Poll, now: float) -> Event:
        poll.closed = True
        self._changed_polls.discard(poll.poll_id)
        return self._emit("poll_closed", {"poll": poll.public()}, now)

    # -- events -----------------------------------------------------------------------------

    def _emit(self, kind: str, data: dict[str, Any], now: float) -> Event:
        self.offset += 1
        event = Event(offset=self.offset, kind=kind, data=data, ts_ms=int(now * 1000))
        self.history.append(event)
        self._pending_events.append(event)
        return event

    def withdraw(self, events: Sequence[Event], reason: str) -> list[Event]:
        """Events PostgreSQL refused to store are withdrawn: a ``withdrawn`` event takes the
        place of each (same offset and time, so offsets stay gap-free and recovery exact),
        in the history and in what is published. Their senders are refused by the actor."""
        placeholders = [e.withdrawn(reason) for e in events]
        for placeholder in placeholders:
            self.history.replace(placeholder)
        return placeholders

    @staticmethod
    def _offset(event: Event) -> Reply:
        return {"offset": event.offset}

    # -- ticks and views --------------------------------------------------------------------

    def has_pending_events(self) -> bool:
        return bool(self._pending_events)

    def viewers(self, now: float) -> int:
        return sum(c for c, at in self._viewer_reports.values() if now - at <= VIEWER_REPORT_TTL)

    def quiet(self, now: float) -> bool:
        """Nobody watching and no clock running (no open poll): the room may leave memory
        and nothing it would have done meanwhile is lost."""
        return self.viewers(now) == 0 and not any(p.is_open(now) for p in self.polls.values())

    def drain(self, now: float) -> Tick:
        """Everything to publish since the last drain: one message per room per tick."""
        for poll in self.polls.values():
            if not poll.closed and now >= poll.closes_at:
                self._close_poll(poll, now)
                self.version += 1
        tick = Tick(events=self._pending_events, gift_offsets=self._gift_offsets)
        self._pending_events = []
        self._gift_offsets = []
        if self._stock_changed:
            tick.state["stock"] = dict(self.stock)
            self._stock_changed = False
        if self._auctions_changed:
            tick.state["auctions"] = dict(self.auctions)
            self._auctions_changed = False
        if self._stream_changed:
            tick.state["stream"] = self.stream
            self._stream_changed = False
        if self._channel_changed:
            tick.state["channel"] = self.channel
            self._channel_changed = False
        if self._board_changed:
            tick.state["gift_leaderboard"] = self.gifts.top()
            self._board_changed = False
        if self._pending_reactions:
            tick.state["reactions"] = dict(self.reactions)
            tick.state["reaction_burst"] = dict(self._pending_reactions)
            self._pending_reactions = Counter()
        if self._changed_polls:
            tick.state["polls"] = {
                str(i): self.polls[i].tallies() for i in sorted(self._changed_polls)
            }
            self._changed_polls = set()
        if self._changed_questions:
            tick.state["questions"] = {
                str(i): len(self.questions[i].voters) for i in sorted(self._changed_questions)
            }
            self._changed_questions = set()
        if self._changed_giveaways:
            tick.state["giveaways"] = {
                str(i): len(self.giveaways[i].entrants) for i in sorted(self._changed_giveaways)
            }
            self._changed_giveaways = set()
        if self._joiners_changed and now - self._presence_at >= PRESENCE_INTERVAL:
            # At most once a second: a wave of 10,000 joins must not cost a push per tick
            # to every viewer.
            tick.state["unique_viewers"] = len(self.uniques)
            tick.state["recent_joiners"] = list(self.recent_joiners)
            self._joiners_changed = False
            self._presence_at = now
        self._viewer_reports = {
            g: (c, at)
            for g, (c, at) in self._viewer_reports.items()
            if now - at <= VIEWER_REPORT_TTL
        }
        viewers = self.viewers(now)
        if viewers != self._published_viewers:
            self._published_viewers = viewers
            if viewers > self.peak_viewers:
                self.peak_viewers = viewers
                self.version += 1
            tick.state["viewers"] = viewers
            tick.state["peak_viewers"] = self.peak_viewers
        return tick

    def snapshot(self, now: float) -> dict[str, Any]:
        return {**self._current(now), "recovered": False, "recent_chat": self._recent_chat()}

    def _recent_chat(self) -> list[dict[str, Any]]:
        """The last SNAPSHOT_CHAT chat and system messages, oldest first (newest scanned
        first, so a long history costs nothing)."""
        recent = itertools.islice(
            (
                e
                for e in reversed(self.history)
                if e.kind in ("chat", "system") and e.offset not in self.deleted
            ),
            SNAPSHOT_CHAT,
        )
        return [e.to_wire() for e in reversed(list(recent))]

    def join(self, since: tuple[int, str] | None, now: float) -> dict[str, Any]:
        """What a subscriber gets: the events it missed since ``(offset, epoch)`` with
        ``recovered: true``, or a fresh snapshot with ``recovered: false`` when the gap is
        older than the history window, the epoch changed, or it asked for no recovery."""
        result = self.join_many([(since, None)], now)[0]
        assert not isinstance(result, LiveshopError)
        return result

    def join_many(
        self, joins: Sequence[tuple[tuple[int, str] | None, str | None]], now: float
    ) -> list[dict[str, Any] | LiveshopError]:
        """:meth:`join` for a batch of ``(since, user_id)``: the room's current view is built
        once for the batch (a reconnect storm brings thousands at a time). A banned user
        gets :class:`Banned` in place of a view."""
        current = self._current(now)
        snapshot: dict[str, Any] | None = None
        results: list[dict[str, Any] | LiveshopError] = []
        for since, user_id in joins:
            if user_id is not None:
                try:
                    self.check_join(user_id)
                except Banned as exc:
                    results.append(exc)
                    continue
            missed = None
            if since is not None and since[1] == self.epoch:
                missed = self.history.since(since[0], self.offset, now)
            if missed is not None:
                events = [e.to_wire() for e in missed]
                results.append({**current, "recovered": True, "events": events})
                continue
            if snapshot is None:
                snapshot = {**current, "recovered": False, "recent_chat": self._recent_chat()}
            results.append(snapshot)
        return results

    def activity(self, since: tuple[int, str] | None, now: float) -> dict[str, Any]:
        """What show analytics reads every second: the counters, and the chat and pin events
        after ``since`` (``gap: true`` when they are out of reach: history moved on or the
        epoch changed; counting resumes from ``offset``)."""
        missed = None
        if since is not None and since[1] == self.epoch:
            missed = self.history.since(since[0], self.offset, now)
        events = [e.to_wire() for e in missed or () if e.kind in ("chat", "pin")]
        return {
            "epoch": self.epoch,
            "offset": self.offset,
            "gap": since is not None and missed is None,
            "events": events,
            "viewers": self.viewers(now),
            "unique_viewers": len(self.uniques),
            "reactions": sum(self.reactions.values()),
            "stream": self.stream,
        }

    def _current(self, now: float) -> dict[str, Any]:
        return {
            "room": self.info.to_wire(),
            "epoch": self.epoch,
            "offset": self.offset,
            "pinned": self.pinned.card() if self.pinned else None,
            "stock": dict(self.stock),
            "auctions": dict(self.auctions),
            "stream": self.stream,
            "channel": self.channel,
            "queue": [p.card() for p in self.queue],
            "pinned_message": self.pinned_message,
            "chat_settings": self.rules.settings(),
            "polls": [p.public() for p in list(self.polls.values())[-10:]],
            "questions": ranked(self.questions.values(), SNAPSHOT_QUESTIONS),
            "giveaways": [g.public() for g in list(self.giveaways.values())[-10:]],
            "viewers": self.viewers(now),
            "peak_viewers": self.peak_viewers,
            "unique_viewers": len(self.uniques),
            "recent_joiners": list(self.recent_joiners),
            "reactions": dict(self.reactions),
            "gift_leaderboard": self.gifts.top(),
        }

    # -- persistence ------------------------------------------------------------------------

    def durable_state(self) -> dict[str, Any]:
        """The part of the room persisted beside its events."""
        return {
            "pinned": self.pinned.card() if self.pinned else None,
            "stock": self.stock,
            "auctions": self.auctions,
            "stream": self.stream,
            "channel": self.channel,
            "queue": [p.card() for p in self.queue],
            "pinned_message": self.pinned_message,
            # Older ids have left the history window: nothing can show them any more.
            "deleted": sorted(d for d in self.deleted if d > self.offset - self.history.max_events),
            "reactions": dict(self.reactions),
            "peak_viewers": self.peak_viewers,
            "chat": self.rules.to_state(),
            "grants": {u: sorted(r.value for r in roles) for u, roles in self.grants.items()},
            "polls": [p.to_state() for p in self.polls.values()],
            "questions": [q.to_state() for q in self.questions.values()],
            "giveaways": [g.to_state() for g in self.giveaways.values()],
            # Unsorted: these sets reach 10^5 members and are written with most ticks.
            "chatters": list(self.chatters),
            "uniques": list(self.uniques),
            "recent_joiners": list(self.recent_joiners),
            "gifts": self.gifts.to_state(),
        }

    @classmethod
    def restore(
        cls,
        info: RoomInfo,
        *,
        epoch: str,
        offset: int,
        state: dict[str, Any],
        history: list[Event],
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
    ) -> Room:
        room = cls(
            info,
            epoch=epoch,
            offset=offset,
            history=history,
            history_size=history_size,
            history_age=history_age,
        )
        pinned = state.get("pinned")
        room.pinned = Product.from_card(pinned) if pinned else None
        room.stock = dict(state.get("stock") or {})
        room.auctions = dict(state.get("auctions") or {})
        room.stream = state.get("stream")
        room.channel = state.get("channel")
        room.queue = [Product.from_card(c) for c in state.get("queue") or ()]
        room.pinned_message = state.get("pinned_message")
        room.deleted = set(state.get("deleted") or ())
        room.reactions = Counter(state.get("reactions") or {})
        room.peak_viewers = int(state.get("peak_viewers") or 0)
        room.rules = ChatRules.from_state(state.get("chat") or {})
        room.grants = {u: {Role(r) for r in rs} for u, rs in (state.get("grants") or {}).items()}
        room.polls = {p.poll_id: p for p in map(Poll.from_state, state.get("polls") or ())}
        room.questions = {
            q.question_id: q for q in map(Question.from_state, state.get("questions") or ())
        }
        room.giveaways = {
            g.giveaway_id: g for g in map(Giveaway.from_state, state.get("giveaways") or ())
        }
        room.chatters = set(state.get("chatters") or ())
        room.uniques = set(state.get("uniques") or ())
        room.recent_joiners.extend(state.get("recent_joiners") or ())
        room.gifts = GiftBoard.from_state(state.get("gifts") or {})
        return room


def _clean(text: str, limit: int = MAX_CHAT_CHARS) -> str:
    # The text rules again (the edge applied them already): the room commits what it
    # accepts, and one unstorable message must never reach a group commit.
    cleaned = require(check_text, text, "message")
    if not cleaned:
        raise InvalidRequest("message must not be empty")
    if len(cleaned) > limit:
        raise InvalidRequest(f"message longer than {limit} characters")
    return cleaned
