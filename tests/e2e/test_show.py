"""A show with every interactive feature, over real sockets and HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from liveshop.actors.room_actor import STATE_SAVE_INTERVAL
from liveshop.rooms.giveaway import draw_winners
from tests.e2e.client import Client
from tests.e2e.conftest import Running


async def _room(running: Running, room: str) -> None:
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Show"})).status_code == 201
        product = {"id": f"{room}-p", "title": "Mixer", "price_minor": 9900, "currency": "USD"}
        assert (await http.post("/products", json=product)).status_code == 201


async def test_moderation_takes_effect_for_every_viewer(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("mod")
    await _room(running, room)
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {room: ["host"]}))
    ann = await Client.open(url, running.token("ann", {room: ["viewer"]}))
    bob = await Client.open(url, running.token("bob", {room: ["viewer"]}))
    try:
        for client in (host, ann, bob):
            await client.result("subscribe", room=room)
        await host.result("mute", room=room, user_id="ann", seconds=300)
        for client in (host, ann, bob):
            await client.wait_event("user_muted", user_id="ann")
        refused = await ann.request("chat", room=room, text="can you hear me?")
        assert refused["error"]["code"] == "muted"
        assert "muted for" in refused["error"]["message"]
        said = await bob.result("chat", room=room, text="bob here")
        await ann.wait_event("chat", text="bob here")

        await host.result("delete_message", room=room, message_id=said["message_id"])
        for client in (ann, bob):
            await client.wait_event("message_deleted", message_id=said["message_id"])

        # The same operations over HTTP, with the same rules.
        async with running.http() as http:
            response = await http.post(
                f"/rooms/{room}/actions/chat_settings", json={"slow_mode": 30}
            )
            assert response.status_code == 200, response.text
            response = await http.post(f"/rooms/{room}/actions/ban", json={"user_id": "bob"})
            assert response.status_code == 200, response.text
            bad = await http.post(f"/rooms/{room}/actions/mute", json={"user_id": "x"})
            assert bad.status_code == 422
            assert bad.json()["error"]["details"][0]["field"] == "seconds"
            unknown = await http.post(f"/rooms/{room}/actions/teleport", json={})
            assert unknown.json()["error"]["code"] == "unknown_op"
        await ann.wait_event("chat_settings")
        await bob.wait_for(lambda: any(p["push"] == "kicked" for p in bob.pushes))
        assert (await bob.request("chat", room=room, text="hi"))["error"]["code"] == "banned"
        again = await bob.request("subscribe", room=room)
        assert again["error"]["code"] == "banned"
        # Bob is out of the room: he gets nothing more of it.
        await host.result("chat", room=room, text="after the ban")
        await ann.wait_event("chat", text="after the ban")
        assert all(e.get("text") != "after the ban" for e in bob.events(room))
    finally:
        for client in (host, ann, bob):
            await client.close()


async def test_polls_questions_giveaways_roles_and_recovery_after_a_kill(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("show")
    await _room(running, room)
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {room: ["host"]}))
    viewers = [
        await Client.open(
            url, running.token(f"v{i}", {room: ["viewer"]}, badges={room: ["follower"]})
        )
        for i in range(3)
    ]
    try:
        joined = await host.result("subscribe", room=room)
        for v in viewers:
            await v.result("subscribe", room=room)
        await running.list_product(f"{room}-p", room)
        await host.result("pin_product", room=room, product_id=f"{room}-p")
        poll = await host.result(
            "create_poll", room=room, question="Colour?", options=["red", "blue"], duration=600
        )
        for i, v in enumerate(viewers):
            await v.result("vote", room=room, poll_id=poll["poll_id"], option=i % 2)
        again = await viewers[0].request("vote", room=room, poll_id=poll["poll_id"], option=1)
        assert again["error"]["code"] == "already_done"
        await host.wait_for(
            lambda: any(
                p.get("state", {}).get("polls", {}).get(str(poll["poll_id"])) == [2, 1]
                for p in host.pushes
            )
        )
        question = await viewers[1].result("ask", room=room, text="Is it dishwasher safe?")
        await viewers[2].result("upvote", room=room, question_id=question["question_id"])
        await host.result("answer", room=room, question_id=question["question_id"])

        giveaway = await host.result(
            "open_giveaway", room=room, prize="A mixer", eligibility=["follower"]
        )
        for v in viewers:
            await v.result("enter_giveaway", room=room, giveaway_id=giveaway["giveaway_id"])
        drawn = await host.result(
            "draw_giveaway", room=room, giveaway_id=giveaway["giveaway_id"], winners=1,
            seed="announced-seed",
        )  # fmt: skip
        assert drawn["winners"] == draw_winners(["v0", "v1", "v2"], 1, "announced-seed")
        await viewers[0].wait_event("giveaway_drawn", seed="announced-seed")

        # A co-host invited live can moderate; removed, they cannot.
        await host.result("grant_role", room=room, user_id="v0", role="cohost")
        await viewers[0].result("chat_settings", room=room, audience="followers")
        await host.result("revoke_role", room=room, user_id="v0", role="cohost")
        refused = await viewers[0].request("chat_settings", room=room, audience="everyone")
        assert refused["error"]["code"] == "forbidden"

        # Kill the room mid-show; everything comes back and clients recover.
        await host.result("chat", room=room, text="last words before the crash")
        last = (await viewers[1].wait_event("chat", text="last words before the crash"))["offset"]
        await asyncio.sleep(STATE_SAVE_INTERVAL + 1.2)  # votes are written behind
        await running.kill_host_of("room", room)
        back = await Client.open(url, running.token("v1", {room: ["viewer"]}))
        reply = await back.result(
            "subscribe", room=room, since={"offset": last, "epoch": joined["epoch"]}
        )
        assert reply["recovered"] is True and reply["events"] == []
        assert reply["pinned"]["product_id"] == f"{room}-p"
        assert reply["polls"][0]["tallies"] == [2, 1]
        assert reply["questions"][0]["answered"] is True
        assert reply["giveaways"][0]["drawn"]["winners"] == drawn["winners"]
        assert reply["chat_settings"]["audience"] == "followers"
        revote = await back.request("vote", room=room, poll_id=poll["poll_id"], option=0)
        assert revote["error"]["code"] == "already_done"  # a vote counted once, even now
        await back.close()
    finally:
        await host.close()
        for v in viewers:
            await v.close()


async def test_gifts_debit_once_credit_the_host_and_rank_senders(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("gift")
    async with running.http() as http:
        body = {"id": room, "title": "Gifts", "host_id": f"{room}-host"}
        assert (await http.post("/rooms", json=body)).status_code == 201
        gift = {"id": f"{room}-rose", "name": "Rose", "price_coins": 10}
        assert (await http.post("/gifts", json=gift)).status_code == 201
        credited = await http.post("/wallets/gw1/credit", json={"coins": 35, "ref": room})
        assert credited.json() == {"user_id": "gw1", "coins": 35}
        again = await http.post("/wallets/gw1/credit", json={"coins": 35, "ref": room})
        assert again.json()["coins"] == 35  # the same ref credits once
    url = running.settings.ws_url
    fan = await Client.open(url, running.token("gw1", {room: ["viewer"]}))
    other = await Client.open(url, running.token("gw2", {room: ["viewer"]}))
    try:
        await fan.result("subscribe", room=room)
        await other.result("subscribe", room=room)
        sent = await fan.result(
            "send_gift", room=room, gift_id=f"{room}-rose", quantity=2, key="k1"
        )
        assert (sent["coins"], sent["balance"], sent["replayed"]) == (20, 15, False)
        event = await other.wait_event("gift", send_id=sent["send_id"])
        assert event["coins"] == 20 and event["recipient_id"] == f"{room}-host"
        await other.wait_for(
            lambda: any(
                p.get("state", {}).get("gift_leaderboard", [{}])[0].get("coins") == 20
                for p in other.pushes
            )
        )
        # A resend with the same key (a retry after a lost reply) pays nothing more.
        replay = await fan.result(
            "send_gift", room=room, gift_id=f"{room}-rose", quantity=2, key="k1"
        )
        assert replay["replayed"] is True and replay["offset"] == sent["offset"]
        assert replay["balance"] == 15
        mismatch = await fan.request(
            "send_gift", room=room, gift_id=f"{room}-rose", quantity=1, key="k1"
        )
        assert mismatch["error"]["code"] == "idempotency_mismatch"
        broke = await fan.request(
            "send_gift", room=room, gift_id=f"{room}-rose", quantity=2, key="k2"
        )
        assert broke["error"]["code"] == "insufficient_coins"
        assert broke["error"]["details"] == {"needed": 20, "balance": 15}
        async with running.http() as http:
            assert (await http.get(f"/wallets/{room}-host")).json()["coins"] == 20
            assert (await http.get("/wallets/gw1")).json()["coins"] == 15
        assert len([e for e in other.events(room) if e["kind"] == "gift"]) == 1
    finally:
        await fan.close()
        await other.close()


async def test_tips_are_gifts_of_one_coin(running: Running, new_id: Callable[[str], str]) -> None:
    room = new_id("tip")
    async with running.http() as http:
        body = {"id": room, "title": "Tips", "host_id": f"{room}-host"}
        assert (await http.post("/rooms", json=body)).status_code == 201
        await http.post(f"/wallets/{room}-fan/credit", json={"coins": 500, "ref": "r"})
    fan = await Client.open(
        running.settings.ws_url, running.token(f"{room}-fan", {room: ["viewer"]})
    )
    try:
        tipped = await fan.result("tip", room=room, coins=250, key="t1")
        assert (tipped["coins"], tipped["balance"]) == (250, 250)
        async with running.http() as http:
            assert (await http.get(f"/wallets/{room}-host")).json()["coins"] == 250
    finally:
        await fan.close()
