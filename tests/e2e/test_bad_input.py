"""Bad input over real sockets: each gets a clear error and none disturbs other viewers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from liveshop.protocol import MAX_FRAME_BYTES
from tests.e2e.client import Client
from tests.e2e.conftest import Running


@pytest.fixture
async def room(running: Running, new_id: Callable[[str], str]) -> str:
    room_id = new_id("bad")
    async with running.http() as http:
        response = await http.post("/rooms", json={"id": room_id, "title": "Bad input"})
        assert response.status_code == 201
    return room_id


@pytest.fixture
async def bystander(running: Running, room: str) -> AsyncIterator[Client]:
    """A viewer who must keep receiving the room while others misbehave."""
    client = await Client.open(running.settings.ws_url, running.token("by", {room: ["viewer"]}))
    await client.result("subscribe", room=room)
    yield client
    # Nothing anyone else did may have cut this viewer off.
    sender = await Client.open(running.settings.ws_url, running.token("ok", {room: ["viewer"]}))
    marker = f"still here {time.time()}"
    await sender.result("chat", room=room, text=marker)
    await client.wait_event("chat", text=marker)
    assert client.ws.close_code is None
    await sender.close()
    await client.close()


async def _viewer(running: Running, room: str, **kwargs: bool) -> Client:
    return await Client.open(
        running.settings.ws_url, running.token("x", {room: ["viewer"]}), **kwargs
    )


async def test_malformed_frames_get_errors_and_the_connection_stays(
    running: Running, room: str, bystander: Client
) -> None:
    client = await _viewer(running, room)
    await client.send_raw("{not json")
    await client.send_raw(json.dumps([1, 2, 3]))
    await client.send_raw(json.dumps({"op": "ping"}))  # no id
    await client.send_raw(b"\x00binary on a json connection")
    await client.wait_for(lambda: len(client.orphans) == 4)
    codes = [m["error"]["code"] for m in client.orphans]
    assert codes == ["bad_frame", "bad_frame", "invalid_request", "bad_frame"]
    assert all(m["id"] is None for m in client.orphans)
    assert (await client.request("teleport"))["error"]["code"] == "unknown_op"
    assert "pong" in await client.result("ping")
    await client.close()


async def test_malformed_msgpack(running: Running, room: str, bystander: Client) -> None:
    client = await _viewer(running, room, binary=True)
    await client.send_raw(b"\xc1\xc1\xc1")
    await client.send_raw("text on a msgpack connection")
    await client.wait_for(lambda: len(client.orphans) == 2)
    assert {m["error"]["code"] for m in client.orphans} == {"bad_frame"}
    assert "pong" in await client.result("ping")
    await client.close()


async def test_oversized_frame_closes_1009(running: Running, room: str, bystander: Client) -> None:
    client = await _viewer(running, room)
    huge = json.dumps({"id": 1, "op": "chat", "room": room, "text": "x" * MAX_FRAME_BYTES})
    await client.send_raw(huge)
    assert await client.wait_closed() == 1009


async def test_no_connect_within_the_timeout_closes_1008(running: Running) -> None:
    client = await Client.open(running.settings.ws_url)
    assert await client.wait_closed(timeout=running.settings.connect_timeout + 5) == 1008


async def test_first_request_must_be_connect(running: Running) -> None:
    client = await Client.open(running.settings.ws_url)
    reply = await client.request("ping")
    assert reply["error"]["code"] == "unauthenticated"
    assert await client.wait_closed() == 1008


@pytest.mark.parametrize("kind", ["forged", "expired", "garbage", "alg-none"])
async def test_bad_tokens_are_refused_with_1008(running: Running, kind: str) -> None:
    claims = {"sub": "mallory", "rooms": {"*": ["host"]}, "exp": time.time() + 600}
    token = {
        "forged": jwt.encode(claims, "not-the-secret-but-long-enough-for-hs256!!"),
        "expired": jwt.encode({**claims, "exp": time.time() - 1}, running.settings.secret),
        "garbage": "abc.def.ghi",
        "alg-none": jwt.encode(claims, None, algorithm="none"),
    }[kind]
    client = await Client.open(running.settings.ws_url)
    reply = await client.request("connect", token=token)
    expected = "token_expired" if kind == "expired" else "token_invalid"
    assert reply["error"]["code"] == expected
    assert await client.wait_closed() == 1008


async def test_wrong_room_token_and_roleless_chat_are_forbidden(
    running: Running, room: str, bystander: Client
) -> None:
    client = await Client.open(running.settings.ws_url, running.token("w", {"elsewhere": ["host"]}))
    assert (await client.request("subscribe", room=room))["error"]["code"] == "forbidden"
    reply = await client.request("chat", room=room, text="let me in")
    assert reply["error"]["code"] == "forbidden"
    assert (await client.request("react", room=room, kind="heart"))["error"]["code"] == "forbidden"
    await asyncio.sleep(0.2)
    assert all(e.get("text") != "let me in" for e in bystander.events())
    await client.close()


async def test_bad_chat_and_unknown_rooms(running: Running, room: str, bystander: Client) -> None:
    client = await Client.open(running.settings.ws_url, running.token("c", {"*": ["viewer"]}))
    for text in ["", "   ", "y" * 501]:
        reply = await client.request("chat", room=room, text=text)
        assert reply["error"]["code"] == "invalid_request", text
    reply = await client.request("subscribe", room="no-such-room")
    assert reply["error"] == {
        "code": "room_not_found",
        "message": "no room 'no-such-room'",
        "temporary": False,
    }
    assert (await client.request("connect", token="x"))["error"]["code"] == "already_connected"
    await client.result("subscribe", room=room)
    assert (await client.request("subscribe", room=room))["error"]["code"] == "conflict"
    await client.close()


async def test_flooding_is_rate_limited_with_one_reply_per_request(
    running: Running, room: str, bystander: Client
) -> None:
    client = await _viewer(running, room)
    settings = running.settings
    burst = settings.rate_burst + 20
    started = time.monotonic()
    replies = await asyncio.gather(*(client.request("ping") for _ in range(burst)))
    elapsed = time.monotonic() - started
    codes = [r.get("error", {}).get("code") for r in replies]
    assert set(codes) <= {None, "rate_limited"}
    # Refused by the token bucket or by the in-flight cap (both rate_limited); never more
    # successes than the burst plus what the bucket refilled meanwhile.
    assert 1 <= codes.count(None) <= settings.rate_burst + settings.rate_per_second * elapsed + 1
    assert "rate_limited" in codes
    limited = next(r for r in replies if "error" in r)
    assert limited["error"]["temporary"] is True
    await client.close()


async def test_http_errors_are_json_with_codes(running: Running, room: str) -> None:
    async with running.http() as http:
        response = await http.post("/rooms", json={"title": ""})
        assert response.status_code == 422
        body = response.json()["error"]
        assert body["code"] == "invalid_request" and body["details"][0]["field"] == "body.title"
        response = await http.post(
            "/products", json={"id": "p", "title": "x", "price_minor": 9.99, "currency": "USD"}
        )
        assert response.status_code == 422  # money is never a float
        response = await http.get("/rooms/no-such-room")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "room_not_found"
        response = await http.post(f"/rooms/{room}/pin", json={"product_id": "nope"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "product_not_found"
        response = await http.post("/rooms/no-such-room/messages", json={"text": "hi"})
        assert response.status_code == 404

    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
        response = await anon.post(f"/rooms/{room}/messages", json={"text": "hi"})
        assert response.status_code == 401
        viewer = running.token("v", {room: ["viewer"]})
        response = await anon.post(
            f"/rooms/{room}/messages",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {viewer}"},
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        response = await anon.post(
            "/dev/tokens", json={"user_id": "u"}, headers={"X-Admin-Key": "wrong"}
        )
        assert response.status_code == 401
        response = await anon.post(
            "/dev/tokens",
            json={"user_id": "dev", "rooms": {room: ["host"]}, "ttl_seconds": 60},
            headers={"X-Admin-Key": running.settings.admin_key},
        )
        assert response.status_code == 201
        token = response.json()["token"]
        response = await anon.post(
            f"/rooms/{room}/messages",
            json={"text": "system notice"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        assert (await anon.get("/healthz")).json()["status"] == "ok"
        assert (await anon.get("/openapi.json")).json()["info"]["title"] == "liveshop"


async def test_a_foreign_origin_is_refused_at_the_handshake(running: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        await Client.open(running.settings.ws_url, origin=Origin("https://evil.example"))
    assert info.value.response.status_code == 403
    own = Origin(f"http://127.0.0.1:{running.settings.http_port}")
    client = await Client.open(running.settings.ws_url, running.token("o", {}), origin=own)
    assert "pong" in await client.result("ping")
    await client.close()


async def test_the_connection_closes_when_its_token_expires(running: Running) -> None:
    client = await Client.open(running.settings.ws_url, running.token("brief", {}, ttl=2))
    assert "pong" in await client.result("ping")
    assert await client.wait_closed(timeout=10) == 1008
    assert client.ws.close_reason == "token expired"
