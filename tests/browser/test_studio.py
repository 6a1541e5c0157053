"""The host studio sells from the catalog: products and SKUs are picked (GET /products, GET
/skus?product_id=), prices are typed in the currency's units ("12.50") and sent in minor units;
a price the currency cannot have is refused next to its field, before anything is sent."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.conftest import DESKTOP, Site, artifact, new_context

ROOM = "demo"
LIPSTICK = "sku-lipstick"  # the demo's: 18.50 USD, its one SKU has the product's id


async def test_the_studio_picks_from_the_catalog_and_prices_in_currency_units(
    browser: Browser, site: Site
) -> None:
    context = await new_context(browser, site, DESKTOP)
    errors: list[str] = []
    try:
        host = await context.new_page()
        host.on("pageerror", lambda exc: errors.append(str(exc)))
        token = site.token("demo-host", {ROOM: ["host"]}, "Demo host")
        await host.goto(f"/app/studio/{ROOM}#token={token}")

        # Pin from the catalog: the picker names products and their prices.
        picker = host.locator("#pin-product-id")
        await expect(picker.locator(f"option[value='{LIPSTICK}']")).to_have_text(
            "Velvet matte lipstick · $18.50"
        )
        await picker.select_option(LIPSTICK)
        await host.click("#pin-button")
        await expect(host.locator("#pinned")).to_contain_text("Velvet matte lipstick")

        # Selling follows the pinned product; its SKUs come from the catalog.
        await expect(host.locator("#sell-product")).to_have_value(LIPSTICK)
        await expect(host.locator("#sell-sku")).to_have_value(LIPSTICK)
        await expect(host.locator("#sell-sku-info")).to_contain_text("$18.50")
        await expect(host.locator("label[for=deal-price]")).to_contain_text("(USD)")

        # A price with a third decimal is not a USD price: refused on the page.
        await host.fill("#deal-price", "12.505")
        await host.fill("#deal-quantity", "5")
        await host.click("#deal-form button[value=start_deal]")
        await expect(host.locator("#deal-price-error")).to_be_visible()
        await expect(host.locator("#deal-price")).to_have_attribute("aria-invalid", "true")
        async with site.http() as http:
            assert (await http.get(f"/skus/{LIPSTICK}")).json()["deal"] is None

        # 12.5 is 1250 cents.
        await host.fill("#deal-price", "12.5")
        await host.click("#deal-form button[value=start_deal]")
        await expect(host.locator("#toasts")).to_contain_text("Deal started")
        await expect(host.locator("#deal-price-error")).to_be_hidden()
        async with site.http() as http:
            deal = (await http.get(f"/skus/{LIPSTICK}")).json()["deal"]
        assert deal["price_minor"] == 1250 and deal["quantity"] == 5, deal
        await host.screenshot(path=artifact("studio-deal-desktop.png"), full_page=True)
        await host.click("#deal-form button[value=end_deal]")
        await expect(host.locator("#toasts")).to_contain_text("Deal ended")

        # An auction's prices too: 20 opens at 2000 cents, with 0.50 steps.
        await host.fill("#auction-start", "20")
        await host.fill("#auction-increment", "0.50")
        await host.fill("#auction-duration", "30")
        await host.click("#auction-form button[type=submit]")
        await expect(host.locator("#toasts")).to_contain_text("Auction started")
        await expect(host.locator("#auctions")).to_contain_text("opening bid $20.00")
        assert not errors, errors
    finally:
        await context.close()
