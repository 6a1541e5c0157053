"""The spine: viewer → gateway → room actor → PostgreSQL → Redis → viewers, and HTTP services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from liveshop.actors.room_actor import STATE_SAVE_INTERVAL
from tests.e2e.client import Client
from tests.e2e.conftest import Running


async def _make_room(http: httpx.AsyncClient, room_id: str) -> None:
    response = await http.post("/rooms", json={"id": room_id, "title": "Spine test"})
    assert response.status_code == 201, response.text
    product = {"id": f"{room_id}-p", "title": "Lamp", "price_minor": 2599, "currency": "EUR"}
    response = await http.post("/products", json=product)
    assert response.status_code == 201, response.text


async def test_chat_and_pin_reach_both_viewers_and_survive_an_actor_kill(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("spine")
    async with running.http() as http:
        await _make_room(http, room)
        ann = await Client.open(running.settings.ws_url, running.token("ann", {room: ["viewer"]}))
        bob = await Client.open(running.settings.ws_url, running.token("bob", {room: ["viewer"]}))
        try:
            snap = await ann.result("subscribe", room=room)
            assert snap["room"]["id"] == room and snap["pinned"] is None
            assert snap["offset"] == 0 and snap["recent_chat"] == []
            await bob.result("subscribe", room=room)

            sent = await ann.result("chat", room=room, text="is the lamp dimmable?")
            for viewer in (ann, bob):
                event = await viewer.wait_event("chat", text="is the lamp dimmable?")
                assert event["offset"] == sent["offset"]
                assert event["user"] == {"id": "ann", "name": "Ann"}

            await running.list_product(f"{room}-p", room)
            response = await http.post(f"/rooms/{room}/pin", json={"product_id": f"{room}-p"})
            assert response.status_code == 200, response.text
            for viewer in (ann, bob):
                pin = await viewer.wait_event("pin")
                assert pin["product"]["price_minor"] == 2599

            await ann.result("react", room=room, kind="heart", count=3)
            await bob.wait_for(
                lambda: any(p.get("state", {}).get("reactions") == {"heart": 3} for p in bob.pushes)
            )
            # Viewer counts come from the gateways' local counts.
            await ann.wait_for(
                lambda: any(p.get("state", {}).get("viewers") == 2 for p in ann.pushes)
            )

            # Reaction totals are written behind, within STATE_SAVE_INTERVAL (chat and pins
            # are durable before anyone sees them). Give the totals that long, then kill the
            # room actor; Ray restarts it and it rebuilds from PostgreSQL.
            await asyncio.sleep(STATE_SAVE_INTERVAL + 1.2)
            await running.kill_host_of("room", room)
            snapshot: dict[str, object] = {}
            for _ in range(60):
                response = await http.get(f"/rooms/{room}")
                if response.status_code == 200:
                    snapshot = response.json()
                    break
                await asyncio.sleep(0.5)
            assert snapshot["pinned"]["product_id"] == f"{room}-p"  # type: ignore[index]
            texts = [m["text"] for m in snapshot["recent_chat"]]  # type: ignore[attr-defined]
            assert texts == ["is the lamp dimmable?"]
            assert snapshot["reactions"] == {"heart": 3}

            again = await bob.result("chat", room=room, text="after the restart")
            assert again["offset"] > sent["offset"]
            await ann.wait_event("chat", text="after the restart")
            offsets = [e["offset"] for e in ann.events(room)]
            assert offsets == sorted(set(offsets))  # no gap, no repeat seen by a viewer
        finally:
            await ann.close()
            await bob.close()


async def test_msgpack_viewers_get_binary_frames(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("mp")
    async with running.http() as http:
        await _make_room(http, room)
        token = running.token("mo", {room: ["viewer"]})
        viewer = await Client.open(running.settings.ws_url, token, binary=True)
        json_viewer = await Client.open(
            running.settings.ws_url, running.token("jo", {room: ["viewer"]})
        )
        try:
            assert viewer.ws.subprotocol == "liveshop.v1.msgpack"
            await viewer.result("subscribe", room=room)
            await json_viewer.result("subscribe", room=room)
            await json_viewer.result("chat", room=room, text="mixed codecs")
            event = await viewer.wait_event("chat", text="mixed codecs")
            assert event["user"]["id"] == "jo"
            assert (await viewer.result("ping"))["pong"] > 0
        finally:
            await viewer.close()
            await json_viewer.close()


async def test_late_subscribers_get_every_event_exactly_once(
    running: Running, new_id: Callable[[str], str]
) -> None:
    """Joins race the live stream (the snapshot comes over Ray, the stream over Redis); each
    joiner must still see every offset once, in order, whether by snapshot, recovery or push."""
    room = new_id("late")
    async with running.http() as http:
        await _make_room(http, room)
    url = running.settings.ws_url
    hosts = [await Client.open(url, running.token(f"h{i}", {room: ["host"]})) for i in range(3)]
    late = [await Client.open(url, running.token(f"l{i}", {room: ["viewer"]})) for i in range(12)]
    try:

        async def talk(host: Client, n: int) -> None:
            # 25 per connection stays within the per-connection burst (40) whatever the timing.
            for i in range(25):
                await host.result("chat", room=room, text=f"h{n}-{i}")

        talking = asyncio.gather(*(talk(h, n) for n, h in enumerate(hosts)))
        replies: list[dict[str, object]] = []
        for i, viewer in enumerate(late):
            await asyncio.sleep(0.05)
            if i % 2:  # half of them resume from an earlier position
                epoch = replies[0]["epoch"] if replies else "none-yet"
                position = {"offset": len(replies), "epoch": epoch}
                reply = await viewer.result("subscribe", room=room, since=position)
            else:
                reply = await viewer.result("subscribe", room=room)
            replies.append(reply)
        await talking
        total = 75
        for viewer, reply in zip(late, replies, strict=True):
            await viewer.wait_for(
                lambda v=viewer: any(e["offset"] == total for e in v.events(room))
            )
            held = reply["events"] if reply["recovered"] else reply["recent_chat"]
            seen = [e["offset"] for e in held] + [e["offset"] for e in viewer.events(room)]  # type: ignore[union-attr]
            start = seen[0] if seen else total
            assert seen == list(range(start, total + 1)), seen  # no repeat, no gap
            assert start <= int(reply["offset"]) + 1  # type: ignore[call-overload]
    finally:
        for client in hosts + late:
            await client.close()


async def test_unsubscribe_stops_pushes(running: Running, new_id: Callable[[str], str]) -> None:
    room = new_id("unsub")
    async with running.http() as http:
        await _make_room(http, room)
    viewer = await Client.open(running.settings.ws_url, running.token("v", {room: ["viewer"]}))
    talker = await Client.open(running.settings.ws_url, running.token("t", {room: ["viewer"]}))
    try:
        await viewer.result("subscribe", room=room)
        assert (await viewer.result("unsubscribe", room=room)) == {"room": room}
        reply = await viewer.request("unsubscribe", room=room)
        assert reply["error"]["code"] == "not_subscribed"
        await talker.result("subscribe", room=room)
        await talker.result("chat", room=room, text="nobody hears")
        await talker.wait_event("chat", text="nobody hears")
        await asyncio.sleep(0.3)
        assert viewer.events(room) == []
    finally:
        await viewer.close()
        await talker.close()
