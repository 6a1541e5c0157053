"""The product catalog in PostgreSQL."""

from __future__ import annotations

import builtins

import asyncpg

from liveshop.commerce.listing import Listing
from liveshop.commerce.product import Product
from liveshop.errors import Conflict, ProductNotFound, RoomNotFound, SkuNotFound

#: A room's catalog page (``in_room``: room, after, limit): the products of its host read in
#: id order from ``products (seller_id, id)`` (the host a constant for the planner, so the
#: index gives the order and the read stops at the page size), the products listed in it
#: from ``product_rooms (room_id, product_id)``, each branch at most a page; the union
#: (a product of the host listed in its room is one row) cut to the page.
ROOM_CATALOG = (
    "(SELECT p.* FROM products p"
    "  WHERE p.seller_id = (SELECT host_id FROM rooms WHERE id = $1) AND p.id > $2"
    "  ORDER BY p.id LIMIT $3)"
    " UNION "
    "(SELECT p.* FROM product_rooms l JOIN products p ON p.id = l.product_id"
    "  WHERE l.room_id = $1 AND l.product_id > $2 ORDER BY l.product_id LIMIT $3)"
    " ORDER BY id LIMIT $3"
)


def _product(row: asyncpg.Record) -> Product:
    return Product(
        product_id=row["id"],
        title=row["title"],
        price_minor=row["price_minor"],
        currency=row["currency"],
        image_url=row["image_url"],
        seller_id=row["seller_id"],
    )


class ProductStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, product: Product, *, upsert: bool = False) -> Product:
        conflict = (
            "ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, "
            "price_minor = EXCLUDED.price_minor, currency = EXCLUDED.currency, "
            "image_url = EXCLUDED.image_url, seller_id = EXCLUDED.seller_id"
            if upsert
            else ""
        )
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO products (id, title, price_minor, currency, image_url, seller_id) "
                f"VALUES ($1, $2, $3, $4, $5, $6) {conflict} RETURNING *",
                product.product_id,
                product.title,
                product.price_minor,
                product.currency,
                product.image_url,
                product.seller_id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"product {product.product_id!r} already exists") from None
        assert row is not None
        return _product(row)

    async def get(self, product_id: str) -> Product:
        row = await self.pool.fetchrow("SELECT * FROM products WHERE id = $1", product_id)
        if row is None:
            raise ProductNotFound(f"no product {product_id!r}")
        return _product(row)

    async def list(self, *, limit: int = 100, after: str | None = None) -> list[Product]:
        rows = await self.pool.fetch(
            "SELECT * FROM products WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
            after,
            limit,
        )
        return [_product(r) for r in rows]

    # -- where products may be promoted (commerce/listing.py) ----------------------------

    async def listing(self, product_id: str, room_id: str) -> Listing:
        """The product as seen from ``room_id``: its seller, the room's host, and whether the
        seller listed it there (product_not_found / room_not_found when either is missing)."""
        row = await self.pool.fetchrow(
            "SELECT p.seller_id, r.id AS room, r.host_id, "
            "EXISTS (SELECT 1 FROM product_rooms l WHERE l.product_id = p.id "
            "        AND l.room_id = r.id) AS listed "
            "FROM products p LEFT JOIN rooms r ON r.id = $2 WHERE p.id = $1",
            product_id,
            room_id,
        )
        if row is None:
            raise ProductNotFound(f"no product {product_id!r}")
        if row["room"] is None:
            raise RoomNotFound(f"no room {room_id!r}")
        return Listing(product_id, row["seller_id"], room_id, row["host_id"], row["listed"])

    async def sku_listing(self, sku: str, room_id: str) -> Listing:
        """:meth:`listing` of the product a SKU belongs to."""
        product_id = await self.pool.fetchval("SELECT product_id FROM skus WHERE id = $1", sku)
        if product_id is None:
            raise SkuNotFound(f"no SKU {sku!r}")
        return await self.listing(product_id, room_id)

    async def promotable(self, product_id: str, room_id: str, what: str) -> Product:
        """The product, if its seller allows ``room_id`` to promote it (``what``: pin...)."""
        (await self.listing(product_id, room_id)).require(what)
        return await self.get(product_id)

    async def list_in(self, product_id: str, room_id: str, *, by: str) -> bool:
        """The seller lets ``room_id`` promote the product; False if it already could."""
        try:
            status = await self.pool.execute(
                "INSERT INTO product_rooms (product_id, room_id, granted_by) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                product_id,
                room_id,
                by,
            )
        except asyncpg.ForeignKeyViolationError:
            raise RoomNotFound(f"no room {room_id!r}") from None
        return bool(status.endswith(" 1"))

    async def unlist_in(self, product_id: str, room_id: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM product_rooms WHERE product_id = $1 AND room_id = $2", product_id, room_id
        )
        return bool(status.endswith(" 1"))

    async def rooms_of(self, product_id: str) -> builtins.list[str]:
        """The rooms the product is listed in (besides its seller's own rooms)."""
        rows = await self.pool.fetch(
            "SELECT room_id FROM product_rooms WHERE product_id = $1 ORDER BY room_id", product_id
        )
        return [r["room_id"] for r in rows]

    async def in_room(
        self, room_id: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[Product]:
        """The products ``room_id`` may promote: listed there, or sold by its host; by id,
        after ``after``. Two index range reads (migration 0016), each at most ``limit``
        rows past ``after``: never a scan of the catalog ('' sorts before any id)."""
        rows = await self.pool.fetch(ROOM_CATALOG, room_id, after or "", limit)
        return [_product(r) for r in rows]
