"""Demo data for `liveshop up --demo`: a channel with today's show on it in a live room, a
few products with stock."""

from __future__ import annotations

import contextlib
import datetime as dt

from liveshop import clock
from liveshop.commerce.product import Product
from liveshop.errors import Conflict
from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.gift import Gift
from liveshop.rooms.room import RoomInfo
from liveshop.rooms.schedule import Show
from liveshop.storage.channels import ChannelStore
from liveshop.storage.pool import create_pool
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.storage.skus import SkuStore
from liveshop.storage.wallets import WalletStore

CHANNEL_ID = "deals"
ROOM_ID = "demo"
#: Viewers seeded with coins; `liveshop up --demo` prints a token for the first.
VIEWERS = ("viewer-1", "viewer-2", "viewer-3")
HOST_ID = "demo-host"
DEMO_STOCK = 100
GIFTS = [Gift("rose", "Rose", 1), Gift("heart", "Heart", 10), Gift("rocket", "Rocket", 500)]
PRODUCTS = [
    Product("sku-headphones", "Noise-cancelling headphones", 12999, "USD",
            "/app/static/img/demo/headphones.svg"),
    Product("sku-lipstick", "Velvet matte lipstick", 1850, "USD",
            "/app/static/img/demo/lipstick.svg"),
    Product("sku-kettle", "Gooseneck kettle", 5400, "USD", "/app/static/img/demo/kettle.svg"),
]  # fmt: skip


async def seed(database_url: str) -> bool:
    """Idempotent: running it on an already seeded database changes nothing. Returns whether
    the demo room was created now (the first run on this database): only then is the demo's
    product pinned, so a restart keeps what the host pinned since."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        rooms = RoomStore(pool)
        channels = ChannelStore(pool)
        await channels.save_channel(ChannelInfo(CHANNEL_ID, "Deals", "Deals"), epoch="demo-1")
        created = True
        try:
            await rooms.create_room(
                RoomInfo(ROOM_ID, "Demo: Friday flash deals", CHANNEL_ID, host_id=HOST_ID),
                epoch="demo-1",
            )
        except Conflict:
            created = False
        # Today's show (UTC day) is on in the demo room: the channel plays it once its host
        # goes live, and a replay or the slate until then.
        day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        show = Show(f"demo-{day:%Y%m%d}", CHANNEL_ID, "Friday flash deals", day.timestamp(),
                    day.timestamp() + 86400 - 60, (HOST_ID,), room_id=ROOM_ID)  # fmt: skip
        with contextlib.suppress(Conflict):  # booked by an earlier run today
            await channels.book(show, create_room=False, epoch="demo-1")
        products = ProductStore(pool)
        skus = SkuStore(pool)
        for product in PRODUCTS:
            await products.create(product, upsert=True)
            # The platform (the demo's seller) lets the demo room promote its products.
            await products.list_in(product.product_id, ROOM_ID, by="demo")
            # One SKU per demo product, id = product id, so a pinned product can be bought.
            with contextlib.suppress(Conflict):
                await skus.create(
                    product.product_id, product, on_hand=DEMO_STOCK, limit_per_buyer=5,
                    now=clock.now(),
                )  # fmt: skip
        wallets = WalletStore(pool)
        for gift in GIFTS:
            await wallets.create_gift(gift)
        # Every demo viewer starts with some coins (once: the credit is idempotent).
        for viewer in VIEWERS:
            await wallets.credit(viewer, 1000, ref="demo-welcome")
        return created
    finally:
        await pool.close()
