"""The gateway hub: one broadcast per room message, and gaps the broker left filled from the
room before anything newer is passed on (so a Redis blip is not a resubscribe storm)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame
from websockets.protocol import State
from websockets.streams import StreamReader

from liveshop.protocol import Codec
from liveshop.serve.hub import Hub

ROOM = "r1"
EPOCH = "r1-1"


class FakeTransport:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class FakeSocket:
    """What the hub touches of a server connection: its state and its transport."""

    def __init__(self) -> None:
        self.protocol = type("P", (), {"state": State.OPEN})()
        self.transport = FakeTransport()

    def pushes(self) -> list[dict[str, Any]]:
        reader = StreamReader()
        reader.feed_data(self.transport.data)
        reader.feed_eof()
        out = []
        while reader.buffer:
            parser = Frame.parse(reader.read_exact, mask=False)
            try:
                next(parser)
            except StopIteration as stop:
                out.append(json.loads(stop.value.data))
        return out

    def offsets(self) -> list[int]:
        return [e["offset"] for p in self.pushes() for e in p["events"]]


def message(first: int, last: int, epoch: str = EPOCH, **extra: Any) -> bytes:
    events = [{"offset": o, "kind": "chat", "text": f"t{o}"} for o in range(first, last + 1)]
    return msgpack.packb({"room": ROOM, "epoch": epoch, "events": events, "state": {}, **extra})


Fetch = Callable[[str, tuple[int, str]], Awaitable[dict[str, Any]]]


def live_hub(fetch: Fetch | None) -> tuple[Hub, FakeSocket]:
    hub = Hub()
    hub.fetch = fetch
    ws = FakeSocket()
    feed = hub.feed(ROOM)
    feed.begin_join(ws)  # type: ignore[arg-type]
    feed.finish_join(ws, Codec.JSON, 0)  # type: ignore[arg-type]
    return hub, ws


def history(upto: int | Callable[[], int]) -> Fetch:
    """A room that published offsets 1..upto (a number, or what a function says when it is
    asked): what it answers a recovering subscriber."""

    async def fetch(room: str, since: tuple[int, str]) -> dict[str, Any]:
        await asyncio.sleep(0)
        last = upto() if callable(upto) else upto
        events = [
            {"offset": o, "kind": "chat", "text": f"t{o}"} for o in range(since[0] + 1, last + 1)
        ]
        return {"recovered": True, "epoch": EPOCH, "offset": last, "events": events}

    return fetch


async def test_messages_in_order_pass_straight_through() -> None:
    hub, ws = live_hub(history(0))
    for first in (1, 3, 4):
        hub.on_message(ROOM, message(first, first + (1 if first == 1 else 0)))
    assert ws.offsets() == [1, 2, 3, 4]
    assert hub.gaps_repaired == 0 and hub.feeds[ROOM].offset == 4


async def test_a_gap_is_filled_from_the_room_before_anything_newer() -> None:
    hub, ws = live_hub(history(9))
    hub.on_message(ROOM, message(1, 2))
    hub.on_message(ROOM, message(6, 7))  # 3..5 were dropped by the broker
    hub.on_message(ROOM, message(8, 9))  # arrives while the room is asked: held back
    assert ws.offsets() == [1, 2]
    await asyncio.sleep(0.01)
    assert ws.offsets() == list(range(1, 10))
    assert hub.gaps_repaired == 1 and hub.gaps_unrepaired == 0


async def test_a_second_gap_among_the_held_messages_is_filled_too() -> None:
    published, gate = [3], asyncio.Event()

    async def slow_room(room: str, since: tuple[int, str]) -> dict[str, Any]:
        answer = await history(published[0])(room, since)  # what it knows when asked
        await gate.wait()
        return answer

    hub, ws = live_hub(slow_room)
    hub.on_message(ROOM, message(1, 1))
    hub.on_message(ROOM, message(3, 3))  # 2 lost: the room is asked
    await asyncio.sleep(0.01)
    published[0] = 5
    hub.on_message(ROOM, message(5, 5))  # 4 lost as well, while the first repair runs
    gate.set()
    await asyncio.sleep(0.01)
    assert ws.offsets() == [1, 2, 3, 4, 5] and hub.gaps_repaired == 2


async def test_redis_back_during_a_repair_asks_the_room_once_more() -> None:
    published, gate = [3], asyncio.Event()

    async def slow_room(room: str, since: tuple[int, str]) -> dict[str, Any]:
        answer = await history(published[0])(room, since)
        await gate.wait()
        return answer

    hub, ws = live_hub(slow_room)
    hub.on_message(ROOM, message(1, 1))
    hub.on_message(ROOM, message(3, 3))  # a repair starts (the room knows 1..3)
    await asyncio.sleep(0.01)
    published[0] = 6  # 4..6 published while the subscriber was away again
    hub.resync()
    gate.set()
    await asyncio.sleep(0.01)
    assert ws.offsets() == [1, 2, 3, 4, 5, 6]


async def test_a_room_that_cannot_answer_lets_the_jump_through() -> None:
    async def away(room: str, since: tuple[int, str]) -> dict[str, Any]:
        raise TimeoutError

    hub, ws = live_hub(away)
    hub.on_message(ROOM, message(1, 1))
    hub.on_message(ROOM, message(4, 4))
    await asyncio.sleep(0.01)
    # The client sees the jump and recovers with `since` itself.
    assert ws.offsets() == [1, 4] and hub.gaps_unrepaired == 1


async def test_back_on_redis_the_hub_asks_every_room_what_it_missed() -> None:
    hub, ws = live_hub(history(5))
    hub.on_message(ROOM, message(1, 2))
    hub.resync()  # 3..5 were published while the subscriber was away; nothing new comes
    await asyncio.sleep(0.01)
    assert ws.offsets() == [1, 2, 3, 4, 5] and hub.gaps_repaired == 1


async def test_a_new_epoch_is_passed_on_not_repaired() -> None:
    hub, ws = live_hub(history(0))
    hub.on_message(ROOM, message(1, 2))
    hub.on_message(ROOM, message(7, 8, epoch="r1-2"))
    assert [p["epoch"] for p in ws.pushes()] == [EPOCH, "r1-2"] and hub.gaps_repaired == 0


async def test_delivery_latency_is_observed_from_the_rooms_send_time() -> None:
    hub, _ = live_hub(None)
    seen: list[float] = []
    hub.observe = seen.append
    hub.on_message(ROOM, message(1, 1, sent=0.0))
    assert len(seen) == 1 and seen[0] > 1e9  # seconds since 1970: the clock, not a counter


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=30),
    dropped=st.sets(st.integers(0, 29)),
    slow=st.integers(0, 3),
)
def test_whatever_the_broker_drops_the_socket_gets_every_event_once_in_order(
    sizes: list[int], dropped: set[int], slow: int
) -> None:
    """Recovery returns exactly what was missed: the broker loses any messages but the
    first, the room answers after some delay, messages keep arriving meanwhile."""

    async def scenario() -> list[int]:
        published = [0]  # the room knows only what it has published so far

        async def fetch(room: str, since: tuple[int, str]) -> dict[str, Any]:
            answer = history(published[0])(room, since)  # what it knows when asked
            for _ in range(slow):
                await asyncio.sleep(0)
            return await answer

        hub, ws = live_hub(fetch)
        first = 1
        for i, size in enumerate(sizes):
            published[0] = first + size - 1
            if i == 0 or i not in dropped:
                hub.on_message(ROOM, message(first, first + size - 1))
            first += size
            await asyncio.sleep(0)
        hub.resync()  # the last messages may be the lost ones
        for _ in range(10 * (slow + 5)):
            await asyncio.sleep(0)
        return ws.offsets()

    assert asyncio.run(scenario()) == list(range(1, sum(sizes) + 1))
