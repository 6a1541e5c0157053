"""Ownership over the real gateway and API: every operation on a product, SKU, deal or
auction is authorised against its seller and the rooms the seller allows, never on the room
a request names (docs/protocol.md, "Ownership")."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.client import Client
from tests.e2e.conftest import Running


@dataclass
class Market:
    """Seller ``acme`` sells a mug, listed in its partner's room; a rival hosts another
    room (also a show, with a host token there only)."""

    partner_room: str
    rival_room: str
    own_room: str
    mug: str
    seller: str
    partner: Client
    rival: Client
    buyer: Client


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def market(running: Running, new_id: Callable[[str], str]) -> AsyncIterator[Market]:
    seller, mug = new_id("acme"), new_id("mug")
    partner_room, rival_room, own_room = new_id("partner"), new_id("rival"), new_id("own")
    async with running.http() as http:
        for room, host in ((partner_room, "partner"), (rival_room, "rival"), (own_room, seller)):
            made = await http.post("/rooms", json={"id": room, "title": room, "host_id": host})
            assert made.status_code == 201, made.text
        product = {"id": mug, "title": "Mug", "price_minor": 1500, "currency": "USD",
                   "seller_id": seller}  # fmt: skip
        assert (await http.post("/products", json=product)).status_code == 201
        made = await http.post("/skus", json={"id": mug, "product_id": mug, "on_hand": 50})
        assert made.status_code == 201, made.text
        # The seller lists the mug in its partner's room with its own token.
        listed = await http.put(
            f"/products/{mug}/rooms/{partner_room}", headers=_as(running.token(seller, {}))
        )
        assert listed.status_code == 200 and listed.json()["changed"] is True, listed.text
    url = running.settings.ws_url
    partner = await Client.open(url, running.token("partner", {partner_room: ["host"]}))
    rival = await Client.open(
        url, running.token("rival", {rival_room: ["host"], partner_room: ["viewer"]})
    )
    buyer = await Client.open(url, running.token("buyer", {"*": ["viewer"]}))
    try:
        yield Market(partner_room, rival_room, own_room, mug, seller, partner, rival, buyer)
    finally:
        for client in (partner, rival, buyer):
            await client.close()
        # The auction's actor is named by its id, which holds no fragment of ours: its
        # room's and SKU's ids do, and auction actors end by themselves once settled.
        await running.retire(partner_room, rival_room, own_room, mug, "cart:buyer")


def _code(reply: dict[str, object]) -> object:
    error = reply.get("error")
    return error.get("code") if isinstance(error, dict) else None


async def test_a_room_the_seller_does_not_allow_cannot_promote_its_product(
    running: Running, market: Market
) -> None:
    m = market
    deal = {"price_minor": 0, "duration": 60, "quantity": 50}
    # The attack: a host starts a free deal on someone else's stock in their own room...
    assert _code(await m.rival.request("start_deal", room=m.rival_room, sku=m.mug, **deal)) == (
        "forbidden"
    )
    # ...or names the room where it is sold, where their token grants no host role.
    assert _code(await m.rival.request("start_deal", room=m.partner_room, sku=m.mug, **deal)) == (
        "forbidden"
    )
    for op, params in [
        ("pin_product", {"product_id": m.mug}),
        ("queue_product", {"product_id": m.mug}),
        ("start_auction", {"sku": m.mug, "start_price": 0, "min_increment": 1, "duration": 60}),
    ]:
        reply = await m.rival.request(op, room=m.rival_room, **params)
        assert _code(reply) == "forbidden", (op, reply)
        assert "does not sell" in reply["error"]["message"], reply
    # Buying at the seller's price is open in any room: nothing was discounted.
    bought = await m.buyer.result("buy", room=m.rival_room, sku=m.mug, key="b1")
    assert bought["price_minor"] == 1500
    # The partner's room and the seller's own room may.
    await m.partner.result("pin_product", room=m.partner_room, product_id=m.mug)
    owner = await Client.open(
        running.settings.ws_url, running.token(m.seller, {m.own_room: ["host"]})
    )
    await owner.result("pin_product", room=m.own_room, product_id=m.mug)
    await owner.close()
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
        catalog = (await anon.get(f"/rooms/{m.partner_room}/products")).json()
        assert [p["product_id"] for p in catalog] == [m.mug]
        assert (await anon.get(f"/rooms/{m.rival_room}/products")).json() == []
        rooms = (await anon.get(f"/products/{m.mug}/rooms")).json()
        assert rooms == {"product_id": m.mug, "seller_id": m.seller, "rooms": [m.partner_room]}


async def test_a_deal_belongs_to_the_room_that_runs_it(running: Running, market: Market) -> None:
    m = market
    async with running.http() as http:  # a service lists the mug in the rival's room too
        assert (await http.put(f"/products/{m.mug}/rooms/{m.rival_room}")).status_code == 200
    started = await m.partner.result(
        "start_deal", room=m.partner_room, sku=m.mug, price_minor=900, duration=60, quantity=10
    )
    assert started["deal"]["room_id"] == m.partner_room
    # Another room (allowed to sell it) can neither end nor replace the deal...
    assert _code(await m.rival.request("end_deal", room=m.rival_room, sku=m.mug)) == "forbidden"
    again = await m.rival.request(
        "start_deal", room=m.rival_room, sku=m.mug, price_minor=0, duration=60, quantity=10
    )
    assert _code(again) == "conflict"
    # ...and its buyers pay the regular price; the deal's room gets the deal.
    elsewhere = await m.buyer.result("buy", room=m.rival_room, sku=m.mug, key="b-rival")
    here = await m.buyer.result("buy", room=m.partner_room, sku=m.mug, key="b-partner")
    assert (elsewhere["price_minor"], here["price_minor"]) == (1500, 900)
    ended = await m.partner.result("end_deal", room=m.partner_room, sku=m.mug)
    assert ended["deal"]["phase"] == "ended"
    # The seller takes the room back mid-deal: the room's host may still end its deal, and
    # the seller ends it with their own token (no role in the room needed).
    await m.partner.result(
        "start_deal", room=m.partner_room, sku=m.mug, price_minor=0, duration=600, quantity=5
    )
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
        seller = _as(running.token(m.seller, {}))
        unlisted = await anon.delete(f"/products/{m.mug}/rooms/{m.partner_room}", headers=seller)
        assert unlisted.json()["changed"] is True
        ended = await anon.post(
            f"/rooms/{m.partner_room}/commerce/end_deal", json={"sku": m.mug}, headers=seller
        )
        assert ended.status_code == 200 and ended.json()["deal"]["phase"] == "ended", ended.text


async def test_an_auction_takes_bids_in_its_own_room_only(running: Running, market: Market) -> None:
    m = market
    auction = await m.partner.result(
        "start_auction", room=m.partner_room, sku=m.mug, start_price=1000, min_increment=100,
        duration=60,
    )  # fmt: skip
    elsewhere = await m.buyer.request(
        "bid", room=m.rival_room, auction=auction["auction_id"], amount=1000, key="x1"
    )
    assert _code(elsewhere) == "auction_not_found"
    here = await m.buyer.result(
        "bid", room=m.partner_room, auction=auction["auction_id"], amount=1000, key="x2"
    )
    assert here["leading"] is True and here["price"] == 1000


async def test_only_the_seller_or_a_service_lists_a_product(
    running: Running, market: Market
) -> None:
    m = market
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
        path = f"/products/{m.mug}/rooms/{m.rival_room}"
        assert (await anon.put(path)).status_code == 401
        for intruder in (
            running.token("rival", {m.rival_room: ["host"]}),
            running.token("mod", {"*": ["moderator"]}),
        ):
            refused = await anon.put(path, headers=_as(intruder))
            assert refused.status_code == 403, refused.text
        seller = _as(running.token(m.seller, {}))
        assert (await anon.put(path, headers=seller)).json()["changed"] is True
        assert (await anon.put(path, headers=seller)).json()["changed"] is False  # idempotent
        assert (await anon.delete(path, headers=seller)).json()["listed"] is False
        missing = await anon.put(f"/products/{m.mug}/rooms/no-such-room", headers=seller)
        assert missing.status_code == 404
        assert (
            await anon.put(f"/products/nope/rooms/{m.rival_room}", headers=seller)
        ).status_code == 404
    # Unlisted again: the rival's room may not pin it.
    reply = await m.rival.request("pin_product", room=m.rival_room, product_id=m.mug)
    assert _code(reply) == "forbidden"


async def test_holds_and_carts_keep_to_the_platform_window_and_the_room_roles(
    running: Running, market: Market
) -> None:
    m = market
    window = running.settings.hold_seconds
    long_hold = await m.partner.request(
        "commerce_settings", room=m.partner_room, stock_policy="hold", hold_seconds=window * 10
    )
    assert _code(long_hold) == "invalid_request"  # a room cannot keep stock from everyone
    await m.partner.result(
        "commerce_settings", room=m.partner_room, stock_policy="hold", hold_seconds=window
    )
    held = await m.buyer.result("reserve", room=m.partner_room, sku=m.mug, key="h", ttl=86400)
    assert held["expires_at"] - time.time() <= window + 5  # a viewer's hold: the window
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anon:
        token = running.token("carter", {m.rival_room: ["viewer"]})
        refused = await anon.post(
            "/users/carter/cart/items",
            json={"sku": m.mug, "quantity": 1, "room_id": m.partner_room},
            headers=_as(token),
        )
        assert refused.status_code == 403, refused.text  # no role in the room it names
    # A service (the platform, for the seller) ends a deal whatever room runs it.
    await m.partner.result(
        "start_deal", room=m.partner_room, sku=m.mug, price_minor=900, duration=60, quantity=5
    )
    async with running.http() as http:
        ended = await http.post(f"/rooms/{m.partner_room}/commerce/end_deal", json={"sku": m.mug})
        assert ended.status_code == 200 and ended.json()["deal"]["phase"] == "ended", ended.text
