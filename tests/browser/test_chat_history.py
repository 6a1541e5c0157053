"""Chat scrollback comes from the room's history (the `history` read), not only from the
snapshot's recent chat: a viewer who scrolls to the top of the chat gets older messages, page
by page, back to the first one, in order and each once."""

from __future__ import annotations

import re
import secrets

from playwright.async_api import Browser, expect

from tests.browser.conftest import PHONE, Site, artifact, new_context

ROOM = "demo"
COUNT = 130  # more than the snapshot's recent chat (50) and more than one history page (50)


async def test_scrolling_up_loads_the_chat_history(browser: Browser, site: Site) -> None:
    tag = f"history-{secrets.token_hex(3)}"
    async with site.http() as http:
        for i in range(COUNT):
            sent = await http.post(f"/rooms/{ROOM}/messages", json={"text": f"{tag} {i:03d}"})
            assert sent.status_code == 201, sent.text
    context = await new_context(browser, site, PHONE)
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        token = site.token("scroller", {ROOM: ["viewer"]}, "Sam")
        await page.goto(f"/app/watch/{ROOM}?player=hls#token={token}")
        log = page.locator("#chat-log")
        await expect(log).to_contain_text(f"{tag} {COUNT - 1:03d}")
        # Scroll to the top until the first message is there (a page per scroll).
        for _ in range(20):
            if await log.get_by_text(f"{tag} 000", exact=True).count():
                break
            await log.evaluate("(l) => { l.scrollTop = 0; l.dispatchEvent(new Event('scroll')); }")
            await page.wait_for_timeout(400)
        await expect(log.get_by_text(f"{tag} 000", exact=True)).to_have_count(1)
        # ... where the reader can scroll to it.
        first = log.get_by_text(f"{tag} 000", exact=True)
        await first.scroll_into_view_if_needed()
        await expect(first).to_be_in_viewport()
        await page.screenshot(path=artifact("watch-chat-history-phone.png"))
        lines = [
            int(m.group(1))
            for text in await log.locator("li").all_inner_texts()
            if (m := re.fullmatch(rf"{tag} (\d+)", text.strip()))
        ]
        assert lines == list(range(COUNT)), lines
        # Offsets ascend through the whole log: history pages went above, live below.
        offsets = await log.locator("li[data-offset]").evaluate_all(
            "(items) => items.map((li) => Number(li.dataset.offset))"
        )
        assert offsets == sorted(set(offsets)), offsets
        assert not errors, errors
    finally:
        await context.close()
