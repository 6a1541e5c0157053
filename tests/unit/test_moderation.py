"""Chat rules and moderation: mutes, bans, slow mode, audiences, blocked words, rate limits,
automatic moderation, deletes, pinned messages, live roles."""

from __future__ import annotations

import pytest

from liveshop.errors import (
    AlreadyDone,
    AudienceRestricted,
    Banned,
    Forbidden,
    InvalidRequest,
    MessageBlocked,
    Muted,
    NotFound,
    RateLimited,
    SlowMode,
)
from liveshop.rooms.automod import Verdict, basic_verdict
from liveshop.rooms.commands import (
    Actor,
    Ask,
    Ban,
    Chat,
    ChatSettings,
    DeleteMessage,
    GrantRole,
    Mute,
    PinMessage,
    React,
    RevokeRole,
    Unban,
    Unmute,
    UnpinMessage,
)
from liveshop.rooms.room import Room, RoomInfo
from liveshop.tokens import Role

T0 = 1_800_000_000.0
HOST = Actor("host", "Host", frozenset({Role.HOST}))
MOD = Actor("mod", "Mod", frozenset({Role.MODERATOR}))
ANN = Actor("ann", "Ann", frozenset({Role.VIEWER}))
BOB = Actor("bob", "Bob", frozenset({Role.VIEWER}), frozenset({"follower"}))
ANON = Actor("anon", "Anon", frozenset({Role.ANONYMOUS}))


def room() -> Room:
    return Room(RoomInfo("r", "R", host_id="host"), epoch="e")


def kinds(r: Room) -> list[str]:
    return [e.kind for e in r.drain(T0).events]


def test_timed_mute_refuses_chat_with_a_clear_error_then_expires() -> None:
    r = room()
    r.apply(Mute(MOD, "ann", 60), T0)
    with pytest.raises(Muted) as info:
        r.apply(Chat(ANN, "hello?"), T0 + 10)
    assert info.value.code == "muted" and "50 more seconds" in info.value.message
    assert info.value.details == {"until": T0 + 60}
    r.apply(Chat(BOB, "others still talk"), T0 + 10)
    assert r.apply(Chat(ANN, "back"), T0 + 61)["offset"] > 0
    assert kinds(r) == ["user_muted", "chat", "chat"]


def test_unmute_ban_unban() -> None:
    r = room()
    r.apply(Mute(MOD, "ann", 600), T0)
    r.apply(Unmute(MOD, "ann"), T0)
    r.apply(Chat(ANN, "free"), T0)
    with pytest.raises(NotFound):
        r.apply(Unmute(MOD, "ann"), T0)
    r.apply(Ban(HOST, "ann", "spam"), T0)
    for command in (Chat(ANN, "x"), React(ANN, "heart")):
        with pytest.raises(Banned):
            r.apply(command, T0)
    with pytest.raises(Banned):
        r.check_join("ann")
    r.apply(Unban(HOST, "ann"), T0)
    r.check_join("ann")
    r.apply(Chat(ANN, "sorry"), T0 + 5)


def test_viewers_cannot_moderate_and_staff_cannot_be_muted() -> None:
    r = room()
    for command in (Mute(ANN, "bob", 10), Ban(ANN, "bob"), DeleteMessage(ANN, 1)):
        with pytest.raises(Forbidden):
            r.apply(command, T0)
    r.apply(GrantRole(HOST, "carl", Role.MODERATOR), T0)
    with pytest.raises(Forbidden):
        r.apply(Mute(MOD, "carl", 10), T0)
    with pytest.raises(InvalidRequest):
        r.apply(Mute(MOD, "ann", 0), T0)


def test_slow_mode_and_per_user_rate_limit() -> None:
    r = room()
    r.apply(ChatSettings(MOD, slow_mode=10), T0)
    r.apply(Chat(ANN, "one"), T0)
    with pytest.raises(SlowMode) as info:
        r.apply(Chat(ANN, "two"), T0 + 3)
    assert info.value.details["retry_after"] == pytest.approx(7)
    r.apply(Chat(BOB, "someone else"), T0 + 3)
    r.apply(Chat(ANN, "two"), T0 + 10)
    r.apply(Chat(HOST, "staff is exempt"), T0 + 10)
    r.apply(Chat(HOST, "staff is exempt"), T0 + 10)

    r2 = room()
    for i in range(20):
        r2.apply(Chat(ANN, f"m{i}"), T0 + i)  # 20 in 30 s: the default limit
    with pytest.raises(RateLimited) as limited:
        r2.apply(Chat(ANN, "21st"), T0 + 20)
    assert limited.value.temporary
    r2.apply(Chat(ANN, "window moved"), T0 + 30.5)


def test_refused_messages_do_not_count_against_the_limit() -> None:
    r = room()
    r.apply(ChatSettings(MOD, rate_limit=2, rate_window=60), T0)
    for _ in range(5):
        with pytest.raises(InvalidRequest):
            r.apply(Chat(ANN, ""), T0)
    r.apply(Chat(ANN, "a"), T0)
    r.apply(Chat(ANN, "b"), T0)
    with pytest.raises(RateLimited):
        r.apply(Chat(ANN, "c"), T0)


def test_followers_and_subscribers_only() -> None:
    r = room()
    r.apply(ChatSettings(MOD, audience="followers"), T0)
    with pytest.raises(AudienceRestricted):
        r.apply(Chat(ANN, "hi"), T0)
    r.apply(Chat(BOB, "i follow"), T0)
    r.apply(ChatSettings(MOD, audience="subscribers"), T0)
    with pytest.raises(AudienceRestricted):
        r.apply(Chat(BOB, "hi"), T0)
    with pytest.raises(InvalidRequest):
        r.apply(ChatSettings(MOD, audience="vips"), T0)


def test_blocked_words_and_automod() -> None:
    r = room()
    r.apply(ChatSettings(MOD, blocked_words=("Scam", " fake ")), T0)
    with pytest.raises(MessageBlocked):
        r.apply(Chat(ANN, "this is a SCAM!"), T0)
    r.apply(Chat(ANN, "scampi for dinner"), T0)  # whole words only
    with pytest.raises(MessageBlocked):
        r.apply(Chat(ANN, "buy", verdict=Verdict("block", "spam")), T0)
    # The check timed out: the room's fallback decides (allow by default, then block).
    r.apply(Chat(ANN, "ok", verdict=Verdict("block", "timeout", fallback=True)), T0)
    r.apply(ChatSettings(MOD, automod_fallback="block"), T0)
    with pytest.raises(MessageBlocked):
        r.apply(Chat(ANN, "held", verdict=Verdict("allow", fallback=True)), T0)
    assert basic_verdict("visit https://spam.example").decision == "block"
    assert basic_verdict("THIS IS THE BEST DEAL EVER SERIOUSLY").decision == "block"
    assert basic_verdict("great deal!").decision == "allow"


def test_anonymous_viewers_watch_and_react_only() -> None:
    r = room()
    r.apply(React(ANON, "heart"), T0)
    with pytest.raises(Forbidden):
        r.apply(Chat(ANON, "hi"), T0)


def test_reply_delete_and_pinned_message() -> None:
    r = room()
    first = r.apply(Chat(ANN, "is it waterproof?"), T0)["message_id"]
    reply = r.apply(Chat(HOST, "yes!", reply_to=first), T0)["message_id"]
    with pytest.raises(InvalidRequest):
        r.apply(Chat(ANN, "x", reply_to=999), T0)
    r.apply(PinMessage(HOST, reply), T0)
    assert r.snapshot(T0)["pinned_message"]["text"] == "yes!"
    r.apply(DeleteMessage(MOD, reply), T0)
    snapshot = r.snapshot(T0)
    assert snapshot["pinned_message"] is None  # deleting the pinned message unpins it
    assert [m["text"] for m in snapshot["recent_chat"]] == ["is it waterproof?"]
    with pytest.raises(NotFound):
        r.apply(PinMessage(HOST, reply), T0)
    assert r.apply(UnpinMessage(HOST), T0) == {"offset": None}
    events = r.drain(T0).events
    assert events[1].data["reply_to"] == first
    assert [e.kind for e in events][-2:] == ["message_pinned", "message_deleted"]


def test_cohosts_and_guests_are_invited_and_removed_live() -> None:
    r = room()
    with pytest.raises(Forbidden):
        r.apply(GrantRole(MOD, "ann", Role.COHOST), T0)  # moderators do not invite
    with pytest.raises(InvalidRequest):
        r.apply(GrantRole(HOST, "ann", Role.HOST), T0)
    r.apply(GrantRole(HOST, "ann", Role.COHOST), T0)
    with pytest.raises(AlreadyDone):
        r.apply(GrantRole(HOST, "ann", Role.COHOST), T0)
    r.apply(Mute(ANN, "bob", 30), T0)  # ann now moderates as a co-host
    r.apply(RevokeRole(HOST, "ann", Role.COHOST), T0)
    with pytest.raises(Forbidden):
        r.apply(Mute(ANN, "bob", 30), T0)
    assert kinds(r) == ["role_granted", "user_muted", "role_revoked"]


def test_moderators_cannot_mute_or_ban_the_host() -> None:
    r = room()
    with pytest.raises(Forbidden, match="host"):
        r.apply(Ban(MOD, "host", "spam"), T0)
    with pytest.raises(Forbidden, match="host"):
        r.apply(Mute(MOD, "host", 60), T0)
    r.check_join("host")  # still welcome
    r.apply(Chat(HOST, "still here"), T0)


def test_questions_count_against_the_message_rate_limit() -> None:
    r = room()
    r.apply(ChatSettings(HOST, rate_limit=3, rate_window=30), T0)
    r.apply(Chat(ANN, "one"), T0)
    r.apply(Ask(ANN, "two?"), T0 + 1)
    r.apply(Ask(ANN, "three?"), T0 + 2)
    with pytest.raises(RateLimited):
        r.apply(Ask(ANN, "four?"), T0 + 3)
    assert len(r.questions) == 2
