"""What PostgreSQL refuses to store fails alone: a room tick saved event by event, and the
paged chat history read back from the log."""

from __future__ import annotations

import asyncpg
import pytest

from liveshop.rooms.commands import Actor, Chat, DeleteMessage, SystemMessage
from liveshop.rooms.event import Event
from liveshop.rooms.room import Room, RoomInfo
from liveshop.storage.pool import REFUSED_DATA_ERRORS
from liveshop.storage.rooms import RoomStore
from liveshop.tokens import Role

HOST = Actor("h", "Host", frozenset({Role.HOST}))
VIEWER = Actor("v", "Vee", frozenset({Role.VIEWER}))
#: Names reach the room from signed tokens; a name minted with NUL must still not wedge it.
POISONED = [
    Actor("p1", "Nul\x00", frozenset({Role.VIEWER})),
    Actor("p2", "Lone \ud800", frozenset({Role.VIEWER})),
]


@pytest.mark.parametrize("bad", POISONED, ids=["nul", "surrogate"])
async def test_a_refused_event_is_withdrawn_and_the_rest_of_the_tick_commits(
    pool: asyncpg.Pool, bad: Actor
) -> None:
    store = RoomStore(pool)
    info = await store.create_room(RoomInfo("r1", "One"), epoch="e1")
    room = Room(info, epoch="e1")
    room.apply(Chat(VIEWER, "before"), 1.0)
    room.apply(Chat(bad, "hello"), 1.0)
    room.apply(Chat(VIEWER, "after"), 1.0)
    tick = room.drain(1.0)
    with pytest.raises(REFUSED_DATA_ERRORS):
        await store.save_tick(
            "r1", epoch="e1", offset=room.offset, state=room.durable_state(), events=tick.events
        )
    refused = await store.save_tick_one_by_one(
        "r1",
        epoch="e1",
        offset=room.offset,
        state=room.durable_state(),
        events=tick.events,
        reason="could not be stored",
    )
    assert [e.offset for e in refused] == [2]
    assert [e.kind for e in room.history] == ["chat"] * 3  # memory waits for the commit
    room.withdraw(refused, "could not be stored")
    stored = await store.load("r1")
    assert stored.offset == 3
    assert [(e.offset, e.kind) for e in stored.history] == [
        (1, "chat"),
        (2, "withdrawn"),
        (3, "chat"),
    ]
    # Memory agrees with PostgreSQL: a subscriber recovering sees the same three events.
    assert [e.kind for e in room.history] == ["chat", "withdrawn", "chat"]
    # The room goes on: the next tick commits normally.
    room.apply(Chat(VIEWER, "next"), 2.0)
    tick = room.drain(2.0)
    await store.save_tick(
        "r1", epoch="e1", offset=room.offset, state=room.durable_state(), events=tick.events
    )
    assert (await store.load("r1")).offset == 4


async def test_unstorable_state_is_scrubbed_not_retried(pool: asyncpg.Pool) -> None:
    store = RoomStore(pool)
    await store.create_room(RoomInfo("r1", "One"), epoch="e1")
    event = Event(1, "system", {"text": "ok"}, 1000)
    refused = await store.save_tick_one_by_one(
        "r1",
        epoch="e1",
        offset=1,
        state={"bans": {"u\x00": "spam \ud800"}},
        events=[event],
        reason="x",
    )
    assert refused == []
    stored = await store.load("r1")
    assert stored.offset == 1 and stored.state == {"bans": {"u": "spam \ufffd"}}


async def test_history_pages_back_through_the_whole_log_without_deleted_messages(
    pool: asyncpg.Pool,
) -> None:
    store = RoomStore(pool)
    info = await store.create_room(RoomInfo("r1", "One"), epoch="e1")
    room = Room(info, epoch="e1")
    for i in range(120):
        room.apply(Chat(HOST, f"message {i}"), 1.0 + i)
    room.apply(SystemMessage(HOST, "a system line"), 200.0)
    room.apply(DeleteMessage(HOST, 5), 201.0)
    tick = room.drain(202.0)
    await store.save_tick(
        "r1", epoch="e1", offset=room.offset, state=room.durable_state(), events=tick.events
    )
    newest = await store.history("r1", before=None, limit=50)
    assert newest["more"] is True
    offsets = [m["offset"] for m in newest["messages"]]
    assert offsets == sorted(offsets) and offsets[-1] == 121  # the system line, no deletion
    seen = list(offsets)
    before = offsets[0]
    while True:
        page = await store.history("r1", before=before, limit=50)
        seen = [m["offset"] for m in page["messages"]] + seen
        if not page["more"]:
            break
        before = page["messages"][0]["offset"]
    assert seen == [o for o in range(1, 122) if o != 5]
    assert (await store.history("r1", before=1, limit=10)) == {
        "room": "r1",
        "messages": [],
        "more": False,
    }
