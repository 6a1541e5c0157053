"""A live show in real browsers: the host goes live from the studio with Chromium's fake
camera and pins a product; two viewers (one on WebRTC, one on HLS) see the video play, the
pin and each other's chat; one buys and both see the stock counter drop; the other's network
drops and, back online, it has missed nothing."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.browser.conftest import DESKTOP, PHONE, Site, artifact, new_context

ROOM = "demo"
KETTLE, HEADPHONES = "sku-kettle", "sku-headphones"


async def _playing(page: Page, timeout: float = 90) -> None:
    """The video element advances: frames decode and play (not just a poster)."""
    await page.wait_for_function(
        "() => { const v = document.querySelector('#video');"
        " return v && v.readyState >= 2 && v.currentTime > 1 && !v.paused; }",
        timeout=timeout * 1000,
    )


class Network:
    """A viewer's network as the WebSocket sees it: `drop()` cuts the live connection and
    refuses new ones (like a tunnel or a lift) until `restore()`. Chromium's offline mode
    does not cut WebSockets, so the page's socket is routed through here."""

    def __init__(self) -> None:
        self.up = True
        self.routes: list[WebSocketRoute] = []

    async def attach(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"^ws://"), self._route)

    async def _route(self, ws: WebSocketRoute) -> None:
        if not self.up:
            await ws.close(code=1011, reason="network down")
            return
        ws.connect_to_server()
        self.routes.append(ws)

    async def drop(self, page: Page) -> None:
        self.up = False
        await page.context.set_offline(True)
        for ws in self.routes:
            await ws.close(code=1011, reason="network down")
        self.routes.clear()

    async def restore(self, page: Page) -> None:
        self.up = True
        await page.context.set_offline(False)


async def _chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.click("#chat-send")
    await expect(page.locator("#chat-input")).to_have_value("")


def _stock(text: str) -> int:
    match = re.match(r"(\d+) left", text)
    assert match, text
    return int(match.group(1))


async def test_a_live_show_in_real_browsers(browser: Browser, site: Site) -> None:
    host_ctx = await new_context(browser, site, DESKTOP)
    ann_ctx = await new_context(browser, site, PHONE)
    bob_ctx = await new_context(browser, site, PHONE)
    errors: list[str] = []
    try:
        host = await host_ctx.new_page()
        ann = await ann_ctx.new_page()
        bob = await bob_ctx.new_page()
        for page in (host, ann, bob):
            page.on("pageerror", lambda exc: errors.append(str(exc)))
        bob_net = Network()
        await bob_net.attach(bob)

        # The host goes live from the browser camera (WHIP) and pins the kettle.
        host_token = site.token("demo-host", {ROOM: ["host"]}, "Demo host")
        await host.goto(f"/app/studio/{ROOM}#token={host_token}")
        await host.click("#go-live")
        await expect(host.locator("#onair")).to_be_visible(timeout=60_000)
        await host.select_option("#pin-product-id", KETTLE)
        await host.click("#pin-button")

        # Two viewers: Ann plays WebRTC (the room offers it: few viewers), Bob HLS.
        ann_token = site.token("ann", {ROOM: ["viewer"]}, "Ann")
        bob_token = site.token("bob", {ROOM: ["viewer"]}, "Bob")
        await ann.goto(f"/app/watch/{ROOM}#token={ann_token}")
        await bob.goto(f"/app/watch/{ROOM}?player=hls#token={bob_token}")
        for page in (ann, bob):
            await expect(page.locator("#pinned-title")).to_have_text("Gooseneck kettle")
        await asyncio.gather(_playing(ann), _playing(bob))
        await expect(ann.locator("#mode")).to_have_text("WebRTC")
        await expect(bob.locator("#mode")).to_have_text("HLS")
        await ann.screenshot(path=artifact("watch-live-phone.png"))

        # Each sees the other's chat.
        await _chat(ann, "hello from Ann")
        await _chat(bob, "hi Ann, Bob here")
        for page in (ann, bob):
            await expect(page.locator("#chat-log")).to_contain_text("hello from Ann")
            await expect(page.locator("#chat-log")).to_contain_text("hi Ann, Bob here")

        # Ann buys (her first purchase: she saves a card inline) and both counters drop.
        # (The room reads the pinned SKU's counters after the pin: they may follow it.)
        await expect(ann.locator("#stock")).to_have_text(re.compile(r"^\d+ left$"))
        before = _stock(await ann.locator("#stock").inner_text())
        await expect(bob.locator("#stock")).to_have_text(f"{before} left")
        await ann.click("#buy")
        await ann.get_by_label("Card number").fill("4242 4242 4242 4242")
        await ann.get_by_label("Expiry month").select_option("12")
        await ann.get_by_label("Expiry year").select_option(index=4)
        await ann.click("#card-form button[type=submit]")
        await expect(ann.locator("#toasts")).to_contain_text("Bought!")
        for page in (ann, bob):
            await expect(page.locator("#stock")).to_have_text(f"{before - 1} left")
        # A second purchase is one tap (the saved card).
        await ann.click("#buy")
        for page in (ann, bob):
            await expect(page.locator("#stock")).to_have_text(f"{before - 2} left")

        # Bob's network drops; meanwhile the show goes on: chat, a new pin, a sale.
        await bob_net.drop(bob)
        await expect(bob.locator("#conn")).to_have_text("Reconnecting…")
        missed = [f"while you were away {i}" for i in range(3)]
        for text in missed:
            await _chat(ann, text)
        await host.select_option("#pin-product-id", HEADPHONES)
        await host.click("#pin-button")
        await expect(ann.locator("#pinned-title")).to_have_text("Noise-cancelling headphones")
        await asyncio.sleep(1)
        await bob_net.restore(bob)
        await expect(bob.locator("#conn")).to_have_text("Live", timeout=30_000)
        # Back: every missed message exactly once, in order, and the new pin.
        await expect(bob.locator("#pinned-title")).to_have_text("Noise-cancelling headphones")
        log = await bob.locator("#chat-log li").all_inner_texts()
        seen = [line for line in log if "while you were away" in line]
        assert [line.split("Ann", 1)[-1].strip() for line in seen] == missed, log
        await _playing(bob)
        await bob.screenshot(path=artifact("watch-recovered-phone.png"))
        assert not errors, errors
    finally:
        for context in (host_ctx, ann_ctx, bob_ctx):
            await context.close()
