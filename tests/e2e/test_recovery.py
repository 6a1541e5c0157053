"""A viewer who drops and comes back with its last (offset, epoch) misses nothing."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.client import Client
from tests.e2e.conftest import Running


async def test_reconnect_with_since_recovers_exactly_the_missed_events(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("rec")
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Rec"})).status_code == 201
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {room: ["host"]}))
    viewer = await Client.open(url, running.token("viewer", {room: ["viewer"]}))
    try:
        await host.result("subscribe", room=room)
        joined = await viewer.result("subscribe", room=room)
        await host.result("chat", room=room, text="before the drop")
        seen = await viewer.wait_event("chat", text="before the drop")
        position = {"offset": seen["offset"], "epoch": joined["epoch"]}
        await viewer.close()  # the network drops

        for i in range(5):
            await host.result("chat", room=room, text=f"missed {i}")

        back = await Client.open(url, running.token("viewer", {room: ["viewer"]}))
        reply = await back.result("subscribe", room=room, since=position)
        assert reply["recovered"] is True
        assert [e["text"] for e in reply["events"]] == [f"missed {i}" for i in range(5)]
        assert reply["offset"] == reply["events"][-1]["offset"]
        await host.result("chat", room=room, text="live again")
        live = await back.wait_event("chat", text="live again")
        assert live["offset"] == reply["offset"] + 1

        # A position from another epoch (or one this room never published) gets a snapshot.
        other = await Client.open(url, running.token("other", {room: ["viewer"]}))
        fresh = await other.result("subscribe", room=room, since={"offset": 1, "epoch": "bogus"})
        assert fresh["recovered"] is False
        assert [m["text"] for m in fresh["recent_chat"]][-1] == "live again"
        future = {"offset": 10_000, "epoch": joined["epoch"]}
        assert (await other.request("unsubscribe", room=room))["result"] == {"room": room}
        assert (await other.result("subscribe", room=room, since=future))["recovered"] is False
        bad = await other.request("subscribe", room=room, since={"offset": -1, "epoch": "x"})
        assert bad["error"]["code"] == "invalid_request"
        await back.close()
        await other.close()
    finally:
        await host.close()


async def test_clients_recover_after_the_room_actor_is_killed(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("kill")
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Kill"})).status_code == 201
    url = running.settings.ws_url
    viewer = await Client.open(url, running.token("v", {room: ["viewer"]}))
    joined = await viewer.result("subscribe", room=room)
    for i in range(3):
        await viewer.result("chat", room=room, text=f"m{i}")
    last = (await viewer.wait_event("chat", text="m2"))["offset"]
    await viewer.close()

    await running.kill_host_of("room", room)

    back = await Client.open(url, running.token("v", {room: ["viewer"]}))
    try:
        # Before anyone else talks: nothing was missed.
        reply = await back.result(
            "subscribe", room=room, since={"offset": last, "epoch": joined["epoch"]}
        )
        assert reply["recovered"] is True and reply["events"] == []
        assert reply["epoch"] == joined["epoch"]  # nothing acknowledged was lost
        sent = await back.result("chat", room=room, text="after restart")
        assert sent["offset"] == last + 1
    finally:
        await back.close()
