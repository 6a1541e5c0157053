"""The pages as the server serves them: the routes, their security headers, static files,
the page configuration and guest tokens (which a real socket accepts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.e2e.client import Client
from tests.e2e.conftest import Running


async def test_pages_static_files_and_their_headers(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as http:
        root = await http.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/app/"
        for path in (
            "/app/",
            "/app/watch/demo",
            "/app/tv/deals",
            "/app/studio/demo",
            "/app/ops",
            "/app/cart",
            "/app/checkout",
            "/app/orders",
            "/app/orders/o-1",
        ):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert f"connect-src 'self' {running.settings.ws_url}" in csp
            assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        script = await http.get("/app/static/js/live.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.headers["cache-control"] == "no-cache" and script.headers.get("etag")
        again = await http.get("/app/static/js/live.js",
                               headers={"If-None-Match": script.headers["etag"]})  # fmt: skip
        assert again.status_code == 304
        vendor = await http.get("/app/static/vendor/hls.min.js")
        assert vendor.status_code == 200 and len(vendor.content) > 100_000
        assert vendor.headers["content-encoding"] == "gzip"  # 389 kB → about 120 kB
        for bad in ("/app/static/../../config.py", "/app/static/%2e%2e/%2e%2e/config.py",
                    "/app/static/nothing.js"):  # fmt: skip
            assert (await http.get(bad)).status_code == 404, bad
        config = (await http.get("/app/config")).json()
        assert config["ws_url"] == running.settings.ws_url and config["guest_tokens"] is True


async def test_a_guest_token_watches_chats_and_is_limited(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("guests")
    async with running.http() as service:
        assert (await service.post("/rooms", json={"id": room, "title": "G"})).status_code == 201
    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as http:
        # Guests are limited per address, and other tests (test_openapi's fuzzing) may have
        # used this address's allowance just now: wait for it to refill.
        for _ in range(60):
            made = await http.post("/auth/guest", json={"name": "Grace"})
            if made.status_code != 429:
                break
            await asyncio.sleep(1)
        assert made.status_code == 201, made.text
        guest = made.json()
        assert guest["user"]["name"] == "Grace" and guest["user"]["id"].startswith("guest-")
        too_long = await http.post("/auth/guest", json={"name": "x" * 41})
        assert too_long.status_code == 422
        # Names follow the text rules: no NUL or controls; invisible characters removed.
        for bad in ("Eve\x00", "Eve\x1b[2J", "\x85"):
            refused = await http.post("/auth/guest", json={"name": bad})
            assert refused.status_code == 422 and refused.json()["error"]["code"] == (
                "invalid_request"
            )
        await asyncio.sleep(5)  # one more guest token
        disguised = await http.post("/auth/guest", json={"name": "\u200bGr\u202eace\u200d"})
        assert disguised.status_code == 201, disguised.text
        assert disguised.json()["user"]["name"] == "Grace"
        client = await Client.open(running.settings.ws_url, guest["token"])
        try:
            await client.result("subscribe", room=room)
            chat = await client.result("chat", room=room, text="hello as a guest")
            assert chat["offset"] >= 1
            refused = await client.request("system_message", room=room, text="I am staff")
            assert refused["error"]["code"] == "forbidden"  # a viewer, nothing more
        finally:
            await client.close()
        # Each guest is a new user to the chat limits: minting is limited per address.
        codes = [(await http.post("/auth/guest", json={})).status_code for _ in range(12)]
        assert 429 in codes
        limited = await http.post("/auth/guest", json={})
        assert limited.json()["error"]["code"] == "rate_limited"
