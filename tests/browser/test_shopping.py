"""Shopping in a real browser: a guest (no account, no link) adds the pinned product to the
cart from the stream, checks out with a new card and an address, finds the paid order in the
order history; the next checkout is one tap with the card saved the first time."""

from __future__ import annotations

from urllib.parse import quote, unquote

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import PHONE, Site, artifact, new_context


async def _add_pinned_to_cart(page: Page) -> None:
    await page.goto("/app/watch/demo?player=hls")
    await expect(page.locator("#pinned-title")).not_to_be_empty()
    await expect(page.locator("#add-to-cart")).to_be_enabled()
    await page.click("#add-to-cart")
    await expect(page.locator("#toasts")).to_contain_text("Added to cart")


async def test_a_guest_checks_out_then_buys_again_in_one_tap(browser: Browser, site: Site) -> None:
    context = await new_context(browser, site, PHONE)
    try:
        page = await context.new_page()
        await _add_pinned_to_cart(page)
        await page.goto("/app/cart")
        await expect(page.locator("main")).to_contain_text("Checkout")
        await page.screenshot(path=artifact("cart-with-a-line-phone.png"), full_page=True)

        await page.goto("/app/checkout")
        await page.fill("#name", "Grace Guest")
        await page.fill("#line1", "1 Main St")
        await page.fill("#city", "New York")
        await page.select_option("#country", "US")
        await page.fill("#region", "NY")
        await page.fill("#postcode", "10001")
        await page.fill("#email", "grace@example.com")
        await page.get_by_label("Card number").fill("4242 4242 4242 4242")
        await page.get_by_label("Expiry month").select_option("12")
        await page.get_by_label("Expiry year").select_option(index=4)
        await expect(page.locator("#quote-body")).to_contain_text("Total")  # tax + shipping
        await page.click("#pay-button")
        await expect(page.locator("#confirmation")).to_contain_text("paid", timeout=30_000)
        await page.screenshot(path=artifact("checkout-paid-phone.png"), full_page=True)

        await page.goto("/app/orders")
        await expect(page.locator("#order-list")).to_contain_text("Paid")
        await expect(page.locator("#order-list > *")).to_have_count(1)
        # Orders go by their readable number (LS-...), not their internal id.
        link = page.locator("#order-list a").first
        order_id = unquote((await link.get_attribute("href") or "").rsplit("/", 1)[-1])
        async with site.http() as http:
            order = (await http.get(f"/orders/{quote(order_id, safe='')}")).json()
        assert order["id"] == order_id, order
        if order.get("number"):
            await expect(link).to_have_text(f"Order {order['number']}")
            await link.click()
            await expect(page.locator("#order-title")).to_have_text(f"Order {order['number']}")

        # Again: the card saved by the first checkout makes it one tap.
        await _add_pinned_to_cart(page)
        await page.goto("/app/checkout")
        await expect(page.locator("#saved")).to_be_visible()
        await expect(page.locator("#method")).to_contain_text("4242")
        await page.click("#pay-button")
        await expect(page.locator("#confirmation")).to_contain_text("paid", timeout=30_000)
        await page.goto("/app/orders")
        await expect(page.locator("#order-list > *")).to_have_count(2)
    finally:
        await context.close()
