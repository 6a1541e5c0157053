"""Room operations as commands: the one mapping the gateway and the HTTP API share, so that
every operation behaves the same over WebSocket and HTTP."""

from __future__ import annotations

import secrets
from typing import Any

from liveshop.commerce import inventory as inv
from liveshop.errors import Forbidden, UnknownOp
from liveshop.rooms import commands as c
from liveshop.rooms.gift import TIP_GIFT
from liveshop.storage.products import ProductStore
from liveshop.tokens import Identity, Role

#: Token roles that run a room's selling: flash deals, auctions, its stock policy.
HOST_ROLES = frozenset({Role.HOST, Role.COHOST, Role.SERVICE})


def require_host(who: Identity, room_id: str, what: str) -> None:
    if not who.roles_in(room_id) & HOST_ROLES:
        raise Forbidden(f"{what}: only the room's host or co-host (token roles)")


async def command_for(op: str, by: c.Actor, p: Any, products: ProductStore) -> c.Command:
    """Build the room command for a validated request (``p`` is its params model)."""
    match op:
        case "chat":
            return c.Chat(by, p.text, p.reply_to)
        case "react":
            return c.React(by, p.kind, p.count)
        case "delete_message":
            return c.DeleteMessage(by, p.message_id)
        case "pin_message":
            return c.PinMessage(by, p.message_id)
        case "unpin_message":
            return c.UnpinMessage(by)
        case "mute":
            return c.Mute(by, p.user_id, p.seconds)
        case "unmute":
            return c.Unmute(by, p.user_id)
        case "ban":
            return c.Ban(by, p.user_id, p.reason)
        case "unban":
            return c.Unban(by, p.user_id)
        case "chat_settings":
            words = tuple(p.blocked_words) if p.blocked_words is not None else None
            kinds = tuple(p.reactions) if p.reactions is not None else None
            return c.ChatSettings(
                by, p.slow_mode, p.audience, p.rate_limit, p.rate_window, words,
                p.automod_fallback, p.frozen, kinds,
            )  # fmt: skip
        case "grant_role":
            return c.GrantRole(by, p.user_id, Role(p.role))
        case "revoke_role":
            return c.RevokeRole(by, p.user_id, Role(p.role))
        case "system_message":
            return c.SystemMessage(by, p.text)
        case "pin_product":
            return c.Pin(by, await products.promotable(p.product_id, p.room, "pin"))
        case "unpin_product":
            return c.Unpin(by)
        case "queue_product":
            return c.QueueProduct(by, await products.promotable(p.product_id, p.room, "queue"))
        case "unqueue_product":
            return c.UnqueueProduct(by, p.product_id)
        case "create_poll":
            return c.CreatePoll(by, p.question, tuple(p.options), p.duration, p.allow_change)
        case "vote":
            return c.Vote(by, p.poll_id, p.option)
        case "close_poll":
            return c.ClosePoll(by, p.poll_id)
        case "ask":
            return c.Ask(by, p.text)
        case "upvote":
            return c.Upvote(by, p.question_id)
        case "answer":
            return c.MarkAnswered(by, p.question_id)
        case "open_giveaway":
            return c.OpenGiveaway(by, p.prize, tuple(p.eligibility))
        case "enter_giveaway":
            return c.EnterGiveaway(by, p.giveaway_id)
        case "draw_giveaway":
            return c.DrawGiveaway(by, p.giveaway_id, p.winners, p.seed or secrets.token_hex(16))
        case "send_gift":
            return c.SendGift(by, p.gift_id, p.quantity, p.key)
        case "tip":
            return c.SendGift(by, TIP_GIFT, p.coins, p.key)
    raise UnknownOp(f"unknown room op {op!r}")


def sku_command_for(
    op: str, who: Identity, p: Any, *, hold_seconds: float, now: float
) -> inv.SkuCommand:
    """Build the SKU command for a validated commerce request (not ``stock``, a read)."""
    match op:
        case "buy":
            return inv.Buy(who.user_id, p.quantity, p.key, p.room)
        case "reserve":
            # A viewer's hold lasts at most the platform's hold window: nobody keeps stock
            # from everyone else by asking for a day (services may hold longer).
            ttl = p.ttl or hold_seconds
            if not who.is_service:
                ttl = min(ttl, hold_seconds)
            return inv.Reserve(who.user_id, p.quantity, p.key, ttl, p.room)
        case "release":
            return inv.Release(p.reservation, who.user_id)
        case "start_deal":
            # Who may (the room's host, and a room the seller allows) is checked by
            # Commerce, which reads the listing; so for end_deal (Commerce.end_deal).
            deal = inv.FlashDeal(
                deal_id=f"deal-{secrets.token_hex(4)}",
                price_minor=p.price_minor,
                starts_at=now + p.starts_in,
                ends_at=now + p.starts_in + p.duration,
                quantity=p.quantity,
                limit_per_buyer=p.limit_per_buyer,
                room_id=p.room,
            )
            return inv.StartDeal(deal)
    raise UnknownOp(f"unknown commerce op {op!r}")
