"""What viewers see when the publisher stalls or stops, in real browsers with a real RTMP
publisher: the viewer page and the channel page follow what the server decides (`state.stream`,
the channel's `route`). A stall puts the slate up ("the host will be right back") while the
live player stays on the live edge; the end of the show says so and offers the replay, which
plays only when the viewer asks. The recording is never started from 00:00 by surprise."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Page, Request, expect

from tests.browser.conftest import DESKTOP, PHONE, Site, artifact, new_context
from tests.e2e.publisher import RtmpPublisher

ROOM, CHANNEL = "demo", "deals"
BRB = "The host will be right back."
ENDED = "The show has ended."


class Recordings:
    """Every request a page makes for a recording (the replay playlists)."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        if "replay.m3u8" in request.url or "vod.m3u8" in request.url:
            self.urls.append(request.url)


async def _playing(page: Page, timeout: float = 90) -> None:
    await page.wait_for_function(
        "() => { const v = document.querySelector('#video');"
        " return v && v.readyState >= 2 && v.currentTime > 1 && !v.paused; }",
        timeout=timeout * 1000,
    )


async def _position(page: Page) -> float:
    position: float = await page.evaluate("document.querySelector('#video').currentTime")
    return position


async def _on_air(page: Page) -> None:
    await expect(page.locator("#slate")).to_be_hidden(timeout=30_000)
    await expect(page.locator("#live-badge")).to_be_visible()


async def _right_back(page: Page) -> None:
    await expect(page.locator("#slate")).to_be_visible(timeout=30_000)
    await expect(page.locator("#slate-text")).to_have_text(BRB)
    await expect(page.locator("#live-badge")).to_be_hidden()
    await expect(page.locator("#watch-replay")).to_be_hidden()


async def _stream(site: Site) -> dict[str, Any] | None:
    async with site.http() as http:
        response = await http.get(f"/media/rooms/{ROOM}/stream")
        return response.json() if response.status_code == 200 else None


async def _until(check: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.5)


async def test_viewers_follow_the_server_when_the_publisher_stalls_and_stops(
    browser: Browser, site: Site
) -> None:
    async with site.http() as http:
        # A stream of its own: an earlier test's stream (the studio's camera) ends here.
        await http.post(f"/media/rooms/{ROOM}/stream/stop")
        issued = (await http.post(f"/media/rooms/{ROOM}/stream-keys")).json()
    primary = f"{issued['rtmp_url']}/{issued['keys']['primary']}"
    viewer_ctx = await new_context(browser, site, PHONE)
    tv_ctx = await new_context(browser, site, DESKTOP)
    publisher: RtmpPublisher | None = None
    errors: list[str] = []
    try:
        watch = await viewer_ctx.new_page()
        tv = await tv_ctx.new_page()
        for page in (watch, tv):
            page.on("pageerror", lambda exc: errors.append(str(exc)))
        watch_recordings, tv_recordings = Recordings(watch), Recordings(tv)
        viewer = site.token("stall-viewer", {ROOM: ["viewer"]}, "Vera")
        follower = site.token("tv-viewer", {"*": ["viewer"]}, "Tom")
        # The viewer plays HLS (the recording is a request we can see), the channel page
        # plays as it likes (WebRTC while there is room).
        await watch.goto(f"/app/watch/{ROOM}?player=hls#token={viewer}")
        await tv.goto(f"/app/tv/{CHANNEL}#token={follower}")

        publisher = RtmpPublisher(primary, width=640, height=360, fps=15).start()
        await asyncio.gather(_playing(watch), _playing(tv))
        for page in (watch, tv):
            await _on_air(page)

        # The encoder hangs (the connection stays open): the server puts the slate on air.
        before = await _position(watch)
        publisher.pause()
        for page in (watch, tv):
            await _right_back(page)
        await watch.screenshot(path=artifact("watch-stalled-phone.png"))
        view = await _stream(site)
        assert view and view["status"] == "slate", view
        # The live player stayed on the live edge (the slate picture), not the recording.
        await asyncio.sleep(3)
        assert await _position(watch) >= before
        assert not watch_recordings.urls and not tv_recordings.urls

        # It delivers again: back on air, the slate gone.
        publisher._paused.clear()
        for page in (watch, tv):
            await _on_air(page)
        assert not watch_recordings.urls and not tv_recordings.urls

        # The publisher stops (OBS "Stop streaming"): the server keeps the slate up until
        # the show ends, and so do the pages.
        publisher.stop()
        publisher = None
        for page in (watch, tv):
            await _right_back(page)
        await asyncio.sleep(3)
        await expect(watch.locator("#slate-text")).to_have_text(BRB)
        assert not watch_recordings.urls and not tv_recordings.urls

        # The host ends the show: the viewer page says so and offers the replay; the player
        # stops instead of starting the recording.
        async with site.http() as http:
            ended = await http.post(f"/media/rooms/{ROOM}/stream/stop")
            assert ended.status_code == 200, ended.text
        await expect(watch.locator("#slate-text")).to_have_text(ENDED, timeout=30_000)
        await expect(watch.locator("#watch-replay")).to_be_visible()
        await expect(watch.locator("#live-badge")).to_be_hidden()
        assert await watch.evaluate("document.querySelector('#video').paused")
        await watch.screenshot(path=artifact("watch-ended-phone.png"))
        await asyncio.sleep(2)
        assert not watch_recordings.urls

        # The channel page plays what the channel routes to now (its replay loop or slate).
        async def routed() -> dict[str, Any] | None:
            async with site.http() as http:
                route: dict[str, Any] = (await http.get(f"/channels/{CHANNEL}")).json()["route"]
            return route if route["source"] != "live" else None

        route = await _until(routed)
        if route["playlist"] is None:
            await expect(tv.locator("#slate")).to_be_visible(timeout=30_000)
            await expect(tv.locator("#slate-text")).not_to_have_text(BRB)
            assert not tv_recordings.urls
        else:
            await expect(tv.locator("#slate")).to_be_hidden(timeout=30_000)
            await _playing(tv)
        await tv.screenshot(path=artifact("tv-after-the-show-desktop.png"))

        # The replay plays when the viewer asks, from its start, with the player's controls.
        await watch.click("#watch-replay")
        await expect(watch.locator("#slate")).to_be_hidden()
        await _playing(watch)
        assert watch_recordings.urls
        assert await watch.evaluate("document.querySelector('#video').controls")
        assert not errors, errors
    finally:
        if publisher is not None:
            publisher.stop()
        await viewer_ctx.close()
        await tv_ctx.close()
