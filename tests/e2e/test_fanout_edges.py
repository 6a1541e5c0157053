"""Slow consumers are cut off without hurting others; several gateways share one port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
from ray import serve

from liveshop.serve import applications
from tests.e2e.client import Client
from tests.e2e.conftest import Running


async def test_a_client_that_stops_reading_is_closed_and_others_keep_up(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("slow")
    product = {
        "id": f"{room}-p",
        "title": "T" * 200,
        "price_minor": 100,
        "currency": "USD",
        "image_url": "https://img.example/" + "x" * 1900,
    }
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Slow"})).status_code == 201
        assert (await http.post("/products", json=product)).status_code == 201
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", running.settings.ws_port))
    sock.setblocking(False)
    stalled = await Client.open(
        running.settings.ws_url, running.token("stall", {room: ["viewer"]}), sock=sock
    )
    healthy = await Client.open(running.settings.ws_url, running.token("ok", {room: ["viewer"]}))
    await stalled.result("subscribe", room=room)
    await healthy.result("subscribe", room=room)
    assert stalled.ws.transport is not None
    stalled.ws.transport.pause_reading()  # the app froze

    await running.list_product(product["id"], room)
    pins = 400  # ~2.4 KB each: ~1 MB, well past the 256 KiB limit plus kernel buffers
    async with running.http() as http:
        sem = asyncio.Semaphore(16)

        async def pin() -> None:
            async with sem:
                body = {"product_id": product["id"]}
                r = await http.post(f"/rooms/{room}/actions/pin_product", json=body)
                assert r.status_code == 200, r.text

        await asyncio.gather(*(pin() for _ in range(pins)))
    await healthy.wait_for(lambda: len(healthy.events(room)) >= pins, timeout=60)
    offsets = [e["offset"] for e in healthy.events(room)]
    assert offsets == list(range(1, pins + 1))  # the healthy viewer got everything, in order

    gateway = serve.get_app_handle(applications.GATEWAY_APP)
    for _ in range(40):
        stats = await gateway.stats.remote()
        if stats["slow_closed"] >= 1:
            break
        await asyncio.sleep(0.25)
    assert stats["slow_closed"] >= 1
    stalled.ws.transport.resume_reading()
    code = await stalled.wait_closed(timeout=15)
    assert code in (1013, 1006)  # 1006 when the close frame was stuck behind the backlog
    await healthy.close()


async def test_viewers_spread_over_two_gateways_get_the_same_events_in_order(
    running: Running, new_id: Callable[[str], str]
) -> None:
    two = running.settings.with_(gateways=2)
    app = applications.gateway_application(two)
    serve.run(app, name=applications.GATEWAY_APP, route_prefix=None)
    try:
        room = new_id("multi")
        async with running.http() as http:
            assert (await http.post("/rooms", json={"id": room, "title": "M"})).status_code == 201
        viewers: list[Client] = []
        gateways: set[str] = set()
        for i in range(40):
            token = running.token(f"m{i}", {room: ["host" if i == 0 else "viewer"]})
            client = await Client.open(running.settings.ws_url)
            hello = await client.request("connect", token=token)
            gateways.add(hello["result"]["gateway"])
            viewers.append(client)
            if len(gateways) == 2 and i >= 9:
                break
        assert len(gateways) == 2, "SO_REUSEPORT should spread connections over both"
        for v in viewers:
            await v.result("subscribe", room=room)
        host = viewers[0]
        for i in range(30):
            await host.result("chat", room=room, text=f"m{i}")
        for v in viewers:
            await v.wait_event("chat", text="m29")
        expected = [e["offset"] for e in host.events(room) if e["kind"] == "chat"]
        for v in viewers:
            assert [e["offset"] for e in v.events(room) if e["kind"] == "chat"] == expected
        # Viewer counts add up across gateways.
        await host.wait_for(
            lambda: any(p.get("state", {}).get("viewers") == len(viewers) for p in host.pushes)
        )
        for v in viewers:
            await v.close()
    finally:
        serve.run(
            applications.gateway_application(running.settings),
            name=applications.GATEWAY_APP,
            route_prefix=None,
        )
    async with httpx.AsyncClient(base_url=running.settings.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200
