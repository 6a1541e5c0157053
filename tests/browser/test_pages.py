"""Every page at phone and desktop widths: it renders from liveshop alone (no request leaves
loopback), every control has an accessible name, nothing overflows a 390-pixel screen, and
no script fails. Screenshots are saved as test artifacts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Request

from tests.browser.conftest import DESKTOP, PHONE, Site, artifact, new_context

#: (name, path, the roles its token holds, an element that shows the page has loaded)
PAGES = [
    ("home", "/app/", None, "[data-channel]"),
    ("watch", "/app/watch/demo", {"demo": ["viewer"]}, "#pinned-title:not(:empty)"),
    ("tv", "/app/tv/deals", {"*": ["viewer"]}, "#title:not(:has-text('Loading'))"),
    ("studio", "/app/studio/demo", {"demo": ["host"]}, "#go-live"),
    ("ops", "/app/ops", {"*": ["service"]}, "#gmv"),
    ("cart", "/app/cart", {"*": ["viewer"]}, "main h1"),
    ("checkout", "/app/checkout", {"*": ["viewer"]}, "#checkout-form"),
    ("orders", "/app/orders", {"*": ["viewer"]}, "#orders"),
]


async def _names_missing(page: Page) -> list[dict[str, Any]]:
    """Visible form controls, buttons and links a screen reader could not name."""
    missing: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
          .filter((e) => e.offsetParent !== null && e.type !== 'hidden')
          .filter((e) => {
            const labelled = e.labels && e.labels.length > 0;
            const aria = e.getAttribute('aria-label') || e.getAttribute('aria-labelledby');
            const text = (e.textContent || '').trim();
            return !(labelled || aria || text || e.getAttribute('title'));
          })
          .map((e) => ({tag: e.tagName, id: e.id, cls: e.className}))"""
    )
    return missing


@pytest.mark.parametrize(("name", "path", "rooms", "ready"), PAGES, ids=[p[0] for p in PAGES])
async def test_each_page_at_phone_and_desktop_widths(
    browser: Browser, site: Site, name: str, path: str, rooms: dict[str, list[str]] | None,
    ready: str,
) -> None:  # fmt: skip
    token = site.token(f"{name}-user", rooms) if rooms else None
    url = path + (f"#token={token}" if token else "")
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await new_context(browser, site, viewport)
        try:
            await _check(await context.new_page(), url, ready, viewport["width"],
                         f"{name}-{label}.png")  # fmt: skip
        finally:
            await context.close()


async def _check(page: Page, url: str, ready: str, width: int, screenshot: str) -> None:
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def leaves_loopback(request: Request) -> None:
        if urlsplit(request.url).hostname not in ("127.0.0.1", "localhost", None):
            outside.append(request.url)

    page.on("request", leaves_loopback)
    await page.goto(url)
    await page.locator(ready).first.wait_for(timeout=30_000)
    await page.wait_for_timeout(500)  # let live data arrive before the picture
    await page.screenshot(path=artifact(screenshot), full_page=True)
    assert await _names_missing(page) == []
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{screenshot}: the page overflows {width}px"
    assert not outside, outside
    assert not errors, errors


#: Where things are on the viewer page, in CSS pixels of the viewport.
GEOMETRY = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    const fixed = getComputedStyle(e).position === 'fixed';
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height,
            width: r.width, shown: e.offsetParent !== null || fixed}; };
  const one = (s) => box(document.querySelector(s));
  return {
    video: one('#video'), buy: one('#buy'), price: one('#pinned-price'), chat: one('#chat-input'),
    log: one('#chat-log'), header: one('header.top'),
    reactions: [...document.querySelectorAll('[data-react]')].map(box),
    nav: [...document.querySelectorAll('header.top nav a')].map(box),
    scrollY: window.scrollY, width: document.documentElement.scrollWidth,
  };
}"""


async def test_the_viewer_page_is_the_show_full_screen_on_a_phone(
    browser: Browser, site: Site
) -> None:
    """Live shopping on a phone: the video fills the screen, with the pinned product, its
    price and Buy, the chat and the reactions over it, all without scrolling; the header's
    links stay on one line. On a desktop the same controls are on the first screen too."""
    token = site.token("phone-viewer", {"demo": ["viewer"]})
    async with site.http() as http:  # something in the chat
        said = await http.post("/rooms/demo/messages", json={"text": "Welcome to the show!"})
        assert said.status_code == 201, said.text
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await new_context(browser, site, viewport)
        try:
            page = await context.new_page()
            await page.goto(f"/app/watch/demo?player=hls#token={token}")
            await page.locator("#pinned-title:not(:empty)").wait_for()
            await page.locator("#chat-log li").first.wait_for()
            await page.wait_for_timeout(500)
            await page.screenshot(path=artifact(f"watch-first-screen-{label}.png"))
            g = await page.evaluate(GEOMETRY)
            width, height = viewport["width"], viewport["height"]
            assert g["scrollY"] == 0 and g["width"] <= width, g
            for name in ("buy", "price", "chat", "log"):
                part = g[name]
                assert part["shown"] and part["height"] > 0, (label, name, part)
                assert part["top"] >= 0 and part["bottom"] <= height, (label, name, part)
                assert part["left"] >= 0 and part["right"] <= width, (label, name, part)
            for button in g["reactions"]:
                assert button["top"] >= 0 and button["bottom"] <= height, (label, button)
            tops = {round(a["top"]) for a in g["nav"]}
            assert len(tops) == 1, f"{label}: the navigation wraps: {g['nav']}"
            assert all(a["right"] <= width for a in g["nav"]), g["nav"]
            video = g["video"]
            if label == "phone":
                # Edge to edge, top to bottom: the header lies over the video.
                assert video["top"] <= 0 and video["bottom"] >= height - 1, video
                assert video["left"] <= 0 and video["right"] >= width - 1, video
                assert g["header"]["bottom"] <= 80, g["header"]
            else:
                assert video["height"] >= 0.8 * height, video
        finally:
            await context.close()
