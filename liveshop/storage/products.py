"""The product catalog in PostgreSQL."""

from __future__ import annotations

import asyncpg

from liveshop.commerce.product import Product
from liveshop.errors import Conflict, ProductNotFound


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
