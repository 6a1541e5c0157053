"""Refusals over HTTP that tell nothing and never fail, through the real API: an admin key
with bytes outside ASCII is a plain 401 (it was a 500), and someone else's order is a 404
exactly like a missing one (a 403 told that the order number exists, and numbers are
sequential: anyone could count the shop's orders)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.e2e.conftest import Running


async def test_an_admin_key_outside_ascii_is_refused_not_a_500(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anonymous:
        key = running.settings.admin_key.encode()
        for given in (
            b"\xff\xfe",
            "caf\u00e9".encode(),
            "caf\u00e9".encode("latin-1"),
            key + b"\x80",
        ):
            response = await anonymous.post(
                "/dev/tokens", json={"user_id": "u"}, headers={b"X-Admin-Key": given}
            )
            assert response.status_code == 401, (given, response.text)
            assert response.json()["error"]["code"] == "unauthenticated"
        minted = await anonymous.post(
            "/dev/tokens", json={"user_id": "u"}, headers={b"X-Admin-Key": key}
        )
        assert minted.status_code == 201, minted.text


async def test_someone_elses_order_is_not_found_like_a_missing_one(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room, sku = new_id("orders"), new_id("sku")
    ann = {"Authorization": f"Bearer {running.token('ann', {room: ['viewer']})}"}
    bob = {"Authorization": f"Bearer {running.token('bob', {room: ['viewer']})}"}
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Orders"})).status_code == 201
        product = {"id": sku, "title": "Lamp", "price_minor": 2500, "currency": "EUR"}
        assert (await http.post("/products", json=product)).status_code == 201
        stock = {"id": sku, "product_id": sku, "on_hand": 5}
        assert (await http.post("/skus", json=stock)).status_code == 201
        await running.list_product(sku, room)
        bought = await http.post(
            f"/rooms/{room}/commerce/buy", json={"sku": sku, "key": "k1"}, headers=ann
        )
        assert bought.status_code == 200, bought.text
        order_id = bought.json()["order"]
        mine = await http.get(f"/orders/{order_id}", headers=ann)
        assert mine.status_code == 200 and mine.json()["buyer_id"] == "ann", mine.text
        number = mine.json()["number"]
        missing_number = f"LS-{int(number.removeprefix('LS-')) + 10**6}"
        for ref, missing in ((order_id, f"{order_id}x"), (number, missing_number)):
            theirs = await http.get(f"/orders/{ref}", headers=bob)
            nothing = await http.get(f"/orders/{missing}", headers=bob)
            assert theirs.status_code == nothing.status_code == 404, (theirs.text, nothing.text)
            told = theirs.json()["error"]
            assert told == {**nothing.json()["error"], "message": f"no order {ref!r}"}
            assert told["code"] == "order_not_found"
            # Services see every order; nobody sees one without a token, found or not.
            assert (await http.get(f"/orders/{ref}")).status_code == 200
            async with httpx.AsyncClient(base_url=running.settings.http_url) as anonymous:
                for path in (f"/orders/{ref}", f"/orders/{missing}"):
                    assert (await anonymous.get(path)).status_code == 401
