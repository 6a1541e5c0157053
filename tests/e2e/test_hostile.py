"""Hostile input over the real gateway and API (issue: nothing a client sends can wedge a
room, a sale or another seller's stock): each class of attack gets a clear error, and a
bystander's chat and an honest buyer keep working while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from liveshop.commerce.inventory import Buy, Restock
from liveshop.mesh.room_client import RoomClient
from liveshop.mesh.sku_client import SkuClient
from liveshop.protocol import MAX_FRAME_BYTES, OPS
from liveshop.rooms.commands import Actor, Chat, StreamChanged
from liveshop.storage.pool import create_pool
from liveshop.storage.rooms import RoomStore
from liveshop.storage.skus import SkuStore
from liveshop.tokens import Role
from loadtest.bench_flash import POLICY_TRIGGER  # the poison drill refuses the same way
from tests.e2e.client import Client
from tests.e2e.conftest import Running

#: Text PostgreSQL cannot store, control characters, and text that must work (RTL, emoji
#: sequences, combining marks).
NASTY = [
    "nul\x00here",
    "lone \ud800 surrogate",
    "bell\x07",
    "esc\x1b[31m",
    "c1\x85",
    "line\u2028sep",
    "\u202eevil.com",
    "مرحبا بالعالم",
    "👩‍👩‍👧‍👦",
    "Z̵̡̢̧̨̛̖̗̘̙̜̝̞̟" + "̀" * 50,
]
REFUSED = NASTY[:6]


async def _http_status(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> int:
    return (await http.request(method, path, **kwargs)).status_code


@dataclass
class Shop:
    """A room with a listed product on sale, a bystander who chats and an honest buyer."""

    room: str
    sku: str
    watcher: Client
    moderator: Client
    buyer: Client
    failures: list[str] = field(default_factory=list)
    chats: int = 0
    buys: int = 0

    async def keep_checking(self) -> None:
        """Chat and buy twice a second, for as long as the attack lasts; every one must work."""
        n = 0
        while True:
            n += 1
            marker = f"still here {n} {time.time()}"
            try:
                reply = await self.moderator.request("chat", room=self.room, text=marker)
                if "result" not in reply:
                    self.failures.append(f"chat: {reply}")
                else:
                    await self.watcher.wait_event("chat", text=marker, timeout=10)
                    self.chats += 1
                reply = await self.buyer.request(
                    "buy", room=self.room, sku=self.sku, quantity=1, key=f"honest-{n}"
                )
                if "result" not in reply:
                    self.failures.append(f"buy: {reply}")
                else:
                    self.buys += 1
            except (TimeoutError, ConnectionError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.5)


@pytest.fixture
async def shop(running: Running, new_id: Callable[[str], str]) -> AsyncIterator[Shop]:
    room, sku = new_id("hostile"), new_id("sneaker")
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Hostile"})).status_code == 201
        product = {"id": sku, "title": "Sneaker", "price_minor": 9900, "currency": "USD"}
        assert (await http.post("/products", json=product)).status_code == 201
        made = await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 100_000})
        assert made.status_code == 201, made.text
    await running.list_product(sku, room)
    url = running.settings.ws_url
    watcher = await Client.open(url, running.token("watcher", {room: ["viewer"]}))
    moderator = await Client.open(url, running.token("mod", {room: ["moderator"]}))
    buyer = await Client.open(url, running.token("honest", {room: ["viewer"]}))
    await watcher.result("subscribe", room=room)
    shop = Shop(room, sku, watcher, moderator, buyer)
    checking = asyncio.ensure_future(shop.keep_checking())
    try:
        yield shop
    finally:
        await asyncio.sleep(1.0)  # one more round after the attack
        checking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checking
        for client in (watcher, moderator, buyer):
            await client.close()
        for client in _attackers.pop(room, ()):
            await client.close()
        await running.retire(room, sku, "cart:fuzz", "cart:honest")
    assert shop.failures == [], shop.failures
    assert shop.chats >= 1 and shop.buys >= 1


# -- arbitrary frames to every operation -------------------------------------------------------

_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=()), max_size=40),  # surrogates included
    st.text(max_size=5).map(lambda s: s * 1000),
)
_number = st.one_of(
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**53, 2**63, 2**64, 1.79e308, 1e-320]),
)
_leaf = st.one_of(st.none(), st.booleans(), _text, _number)
_value = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


#: Every operation but connect: each example sends each of them one hostile frame.
FUZZED_OPS = sorted(set(OPS) - {"connect"})


@st.composite
def _frame(draw: st.DrawFn, op: str, room: str, sku: str) -> dict[str, Any]:
    frame: dict[str, Any] = {"id": draw(st.integers(1, 2**40) | _text), "op": op}
    for name in OPS[op].model_fields:
        choice = draw(st.integers(0, 9))
        if name == "room" and choice < 8:
            frame[name] = room
        elif name == "sku" and choice < 5:
            frame[name] = sku
        elif choice < 8:
            frame[name] = draw(_value)
    if draw(st.booleans()):
        frame[draw(_text)] = draw(_value)  # an unknown field
    return frame


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    # Shrinking replays frames against a live stack for minutes: report the frame as found.
    phases=[Phase.explicit, Phase.generate],
)
@given(data=st.data())
async def test_arbitrary_frames_get_a_clear_answer_and_wedge_nothing(
    running: Running, shop: Shop, data: st.DataObject
) -> None:
    """Every operation (each example sends one frame to each) with arbitrary Unicode (NUL,
    surrogates, RTL, zalgo), nesting and out-of-range numbers in every field: an answer or
    a clear client error, never ``internal``, never a closed socket; the shop fixture
    checks the bystander's chat and the honest buyer all along."""
    for op in FUZZED_OPS:
        attacker = await _attacker(running, shop.room)
        frame = data.draw(_frame(op, shop.room, shop.sku))
        binary = data.draw(st.booleans())
        raw: str | bytes = json.dumps(frame)
        if binary:
            try:
                raw = msgpack.packb(frame, unicode_errors="surrogatepass")
            except OverflowError:  # msgpack has no integers beyond 64 bits: send JSON
                binary = False
        client = attacker[binary]
        note(f"frame {ascii(frame)[:2000]} over {'msgpack' if binary else 'JSON'}")
        await client.send_raw(raw)
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > MAX_FRAME_BYTES:  # documented: too big closes the connection with 1009
            assert await client.wait_closed() == 1009
            continue
        reply = await client.wait_for(partial(_next_orphan, client), timeout=20)
        assert "result" in reply or reply["error"]["code"] != "internal", (frame, reply)
        if "error" in reply:
            assert set(reply["error"]) >= {"code", "message", "temporary"}
        assert not client.closed, (frame, client.ws.close_code, client.ws.close_reason)


def _next_orphan(client: Client) -> dict[str, Any] | None:
    """The next reply nobody waited for (hostile ids are matched by hand)."""
    return client.orphans.pop() if client.orphans else None


_attackers: dict[str, tuple[Client, Client]] = {}


async def _attacker(running: Running, room: str) -> tuple[Client, Client]:
    """A host and viewer in the room, over JSON and msgpack, kept across examples; a socket
    closed for flooding (rate limits) is opened again."""
    pair = _attackers.get(room)
    if pair is None or any(c.closed for c in pair):
        token = running.token("fuzz", {room: ["host", "viewer"]})
        url = running.settings.ws_url
        pair = (await Client.open(url, token), await Client.open(url, token, binary=True))
        _attackers[room] = pair
    # Replies are matched by hand (ids are hostile too): none may be left from before.
    for client in pair:
        client.orphans.clear()
    await asyncio.sleep(0.06)  # about the per-connection rate limit of 20 per second
    return pair


# -- the classes one by one -------------------------------------------------------------------


async def test_unstorable_text_is_refused_in_every_text_field(running: Running, shop: Shop) -> None:
    room = shop.room
    host = await Client.open(running.settings.ws_url, running.token("h", {room: ["host"]}))
    try:
        for bad in REFUSED:
            attempts: list[tuple[str, dict[str, Any]]] = [
                ("chat", {"text": bad}),
                ("ask", {"text": bad}),
                ("system_message", {"text": bad}),
                ("create_poll", {"question": bad, "options": ["a", "b"], "duration": 60}),
                ("create_poll", {"question": "q", "options": ["a", bad], "duration": 60}),
                ("open_giveaway", {"prize": bad}),
                ("ban", {"user_id": "someone", "reason": bad}),
                ("ban", {"user_id": bad}),
                ("chat_settings", {"blocked_words": [bad]}),
                ("buy", {"sku": shop.sku, "key": bad}),
                ("checkout", {"address": {"name": bad}, "key": "k"}),
            ]
            for op, params in attempts:
                reply = await host.request(op, room=room, **params)
                assert reply.get("error", {}).get("code") == "invalid_request", (op, bad, reply)
            await asyncio.sleep(0.5)  # the rate limit
        for good in NASTY[6:]:
            sent = await host.result("chat", room=room, text=good)
            event = await shop.watcher.wait_event("chat", offset=sent["offset"])
            assert event["text"] != "" and "\x00" not in event["text"]
        # A guest chooses a name without an account: the same rules.
        async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
            for bad in REFUSED:
                body = json.dumps({"name": bad})  # ASCII: a lone surrogate as \ud800
                response = await anon.post(
                    "/auth/guest", content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 422, (bad, response.text)
                assert response.json()["error"]["code"] == "invalid_request"
            response = await anon.post("/auth/guest", json={"name": " Ali\u200bce\u202e "})
            assert response.status_code == 201, response.text
            assert response.json()["user"]["name"] == "Alice"
            assert (await anon.get(f"/rooms/{room}")).status_code == 200
    finally:
        await host.close()


async def test_a_write_postgresql_refuses_fails_alone(running: Running, shop: Shop) -> None:
    """Past the edge, what PostgreSQL cannot store fails alone: a buyer id minted elsewhere
    with a NUL, or a delivery reference with one, is refused before it is decided; what only
    PostgreSQL refuses (here a policy trigger, as an operator's constraint or a bug would)
    is found by bisecting the group commit and refused, its batchmates commit;
    a room event that cannot be stored (an actor's push) is withdrawn at its offset, the
    chat around it commits, and recovery shows the placeholder. Nothing is retried for ever,
    and the books stay sound."""
    settings_ = running.settings
    assert settings_.database_url
    pool = await create_pool(settings_.database_url)
    skus = SkuClient(settings_, SkuStore(pool))
    rooms = RoomClient(settings_, RoomStore(pool))
    await pool.execute(POLICY_TRIGGER)
    try:
        before = (await skus.view(shop.sku))["available"]
        commands: list[Any] = [Buy(f"ok-{i}", 1, f"k{i}", shop.room) for i in range(20)]
        commands.insert(3, Restock(1, "refused-by-policy-1"))
        commands.insert(7, Buy("bad\x00buyer", 1, "k-bad", shop.room))
        commands.insert(13, Restock(5, "delivery\x00note"))
        commands.insert(17, Restock(1, "refused-by-policy-2"))
        answers = await asyncio.gather(
            *(skus.send(shop.sku, c) for c in commands), return_exceptions=True
        )
        refused = [i for i, a in enumerate(answers) if isinstance(a, Exception)]
        assert refused == [3, 7, 13, 17], answers
        assert {getattr(answers[i], "code", None) for i in refused} == {"invalid_request"}
        assert sum(isinstance(a, dict) and "order" in a for a in answers) == 20
        # Memory went back to what PostgreSQL holds: the SKU still sells, its books agree.
        assert "order" in await skus.send(shop.sku, Buy("ok-after", 1, "k-after", shop.room))
        after = (await skus.view(shop.sku))["available"]
        assert before - after >= 20  # the honest buyer keeps buying meanwhile
        async with running.http() as http:
            audit = (await http.get(f"/skus/{shop.sku}/audit")).json()
            assert audit["problems"] == [], audit

        viewers = [Actor(f"v{i}", f"V{i}", frozenset({Role.VIEWER})) for i in range(5)]
        commands = [Chat(v, f"hi {v.user_id}") for v in viewers]
        commands.insert(2, StreamChanged({"stream_id": "s\x00", "status": "live"}))
        answers = await asyncio.gather(
            *(rooms.send(shop.room, c) for c in commands), return_exceptions=True
        )
        assert sum(isinstance(a, dict) and "offset" in a for a in answers) == 5, answers
        withdrawn = await shop.watcher.wait_event("withdrawn")
        for v in viewers:  # the chat around it went out
            await shop.watcher.wait_event("chat", text=f"hi {v.user_id}")
        # Recovery from just before it returns the placeholder, not the refused event.
        epoch = next(p["epoch"] for p in shop.watcher.pushes if p["push"] == "room")
        viewer = await Client.open(settings_.ws_url, running.token("late", {shop.room: ["viewer"]}))
        since = {"offset": withdrawn["offset"] - 1, "epoch": epoch}
        joined = await viewer.result("subscribe", room=shop.room, since=since)
        assert joined["recovered"] is True
        assert joined["events"][0] == withdrawn
        await viewer.close()
    finally:
        await pool.execute("DROP TRIGGER IF EXISTS refused_by_policy ON inventory_ledger")
        await skus.close()
        await rooms.close()
        await pool.close()


async def test_deep_nesting_is_a_bad_frame(running: Running, shop: Shop) -> None:
    client = await Client.open(running.settings.ws_url, running.token("n", {shop.room: ["viewer"]}))
    await client.send_raw("[" * 20_000 + "]" * 20_000)
    deep: Any = "x"
    for _ in range(100):
        deep = {"a": [deep]}
    await client.send_raw(json.dumps({"id": 7, "op": "chat", "room": shop.room, "text": deep}))
    await client.wait_for(lambda: len(client.orphans) >= 2)
    assert [m["error"]["code"] for m in client.orphans[:2]] == ["bad_frame", "bad_frame"]
    assert "pong" in await client.result("ping")
    binary = await Client.open(
        running.settings.ws_url, running.token("m", {shop.room: ["viewer"]}), binary=True
    )
    await binary.send_raw(msgpack.packb({"id": 8, "op": "ping", "x": deep}))
    await binary.wait_for(lambda: binary.orphans)
    assert binary.orphans[0]["error"]["code"] == "bad_frame"
    assert "pong" in await binary.result("ping")
    await client.close()
    await binary.close()


async def test_one_viewer_cannot_use_up_a_rooms_shared_capacity(
    running: Running, shop: Shop
) -> None:
    room = shop.room
    url = running.settings.ws_url
    junk = await Client.open(url, running.token("junk", {room: ["anonymous"]}))
    for i in range(70):
        reply = await junk.request("react", room=room, kind=f"junk{i}")
        assert reply["error"]["code"] in ("invalid_request", "rate_limited"), reply
        if i % 15 == 14:
            await asyncio.sleep(1)
    heart = await Client.open(url, running.token("fan", {room: ["viewer"]}))
    await heart.result("react", room=room, kind="heart")
    snapshot = await heart.result("subscribe", room=room)
    assert "heart" in snapshot["chat_settings"]["reactions"]
    assert set(snapshot["reactions"]) <= set(snapshot["chat_settings"]["reactions"])
    # Questions: a few waiting per user; joins: each user once in recent joiners.
    for i in range(3):
        await junk.request("ask", room=room, text=f"q{i}?")  # anonymous: refused anyway
    asker = await Client.open(url, running.token("asker", {room: ["viewer"]}))
    for i in range(3):
        await asker.result("ask", room=room, text=f"question {i}?")
    reply = await asker.request("ask", room=room, text="one more?")
    assert reply["error"]["code"] == "invalid_request"
    rejoiner = await Client.open(url, running.token("again", {room: ["viewer"]}))
    for _ in range(5):
        await rejoiner.result("subscribe", room=room)
        await rejoiner.result("unsubscribe", room=room)
    joined = await rejoiner.result("subscribe", room=room)
    ids = [j["id"] for j in joined["recent_joiners"]]
    assert len(ids) == len(set(ids))
    for client in (junk, heart, asker, rejoiner):
        await client.close()


async def test_chat_history_pages_back_over_websocket_and_http(
    running: Running, shop: Shop
) -> None:
    room = shop.room
    host = await Client.open(running.settings.ws_url, running.token("h2", {room: ["host"]}))
    sent = [(await host.result("chat", room=room, text=f"line {i}"))["offset"] for i in range(12)]
    # One read at a time per user: a burst is answered, each read or rate_limited.
    burst = await asyncio.gather(*(host.request("history", room=room, limit=5) for _ in range(6)))
    codes = {r.get("error", {}).get("code") for r in burst}
    assert None in codes and codes <= {None, "rate_limited"}, codes
    await host.result("delete_message", room=room, message_id=sent[3])
    # The bystander chats meanwhile: pages hold everyone's messages, in offset order.
    page = await host.result("history", room=room, before=sent[-1] + 1, limit=5)
    offsets = [m["offset"] for m in page["messages"]]
    assert offsets == sorted(offsets) and offsets[-1] == sent[-1] and page["more"] is True
    older = await host.result("history", room=room, before=sent[-1] + 1, limit=100)
    texts = [m["text"] for m in older["messages"] if m.get("text", "").startswith("line ")]
    assert texts == [f"line {i}" for i in range(12) if i != 3]  # the deleted one left out
    assert (await host.request("history", room=room, limit=0))["error"]["code"] == (
        "invalid_request"
    )
    stranger = await Client.open(
        running.settings.ws_url, running.token("s", {"elsewhere": ["viewer"]})
    )
    assert (await stranger.request("history", room=room))["error"]["code"] == "forbidden"
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
        token = running.token("v", {room: ["viewer"]})
        auth = {"Authorization": f"Bearer {token}"}
        response = await anon.get(f"/rooms/{room}/history?limit=5", headers=auth)
        assert response.status_code == 200, response.text
        assert [m["offset"] for m in response.json()["messages"]][-1] >= sent[-1]
        assert (await anon.get(f"/rooms/{room}/history")).status_code == 401
        assert (
            await anon.get(f"/rooms/{room}/history?before=abc", headers=auth)
        ).status_code == 422
        # A banned viewer reads no more of the room than they may watch.
        await host.result("ban", room=room, user_id="v", reason="spam")
        await asyncio.sleep(1.5)  # the ban list is saved with the room's state
        banned = await anon.get(f"/rooms/{room}/history?limit=5", headers=auth)
        assert banned.status_code == 403 and banned.json()["error"]["code"] == "banned"
        missing = await anon.get(
            "/rooms/no-such-room/history",
            headers={"Authorization": f"Bearer {running.token('v', {'*': ['viewer']})}"},
        )
        assert missing.status_code == 404
    await host.close()
    await stranger.close()


async def test_one_user_cannot_take_a_gateway_s_sockets_or_multiply_their_rate(
    running: Running, shop: Shop
) -> None:
    token = running.token("greedy", {shop.room: ["viewer"]})
    url = running.settings.ws_url
    limit = running.settings.max_user_connections
    held = [await Client.open(url, token) for _ in range(limit)]
    try:
        extra = await Client.open(url)
        reply = await extra.request("connect", token=token)
        assert reply["error"]["code"] == "rate_limited" and reply["error"]["temporary"]
        assert await extra.wait_closed() == 1013
        # Their sockets share one bucket: bursts on all of them together stay near its size.
        replies = await asyncio.gather(*(c.request("ping") for c in held[:8] for _ in range(20)))
        answered = sum("result" in r for r in replies)
        assert answered <= running.settings.user_rate_burst + 10, answered
        other = await Client.open(url, running.token("modest", {shop.room: ["viewer"]}))
        assert "pong" in await other.result("ping")  # everyone else is served as before
        await other.close()
    finally:
        for client in held:
            await client.close()
