"""The operations overview in PostgreSQL: GMV, orders and buyers over a window, the top shows,
products and creators, and what each channel has on air.

Money is summed in SQL per currency and returned as ``int`` minor units (PostgreSQL's
``sum(bigint)`` is ``numeric``, exact; it is never a float). Currencies are never added
together: a top list is ordered by its entry's largest single-currency sum, then by its
order (or unit) count, then by id, so the order is stable.

Counted orders: not cancelled, ``created_at`` in ``[start, end)``. An order's GMV is its
``total_minor`` (tax and shipping included, as show analytics count it); a product's is its
lines' ``quantity * price_minor``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from liveshop.commerce.order import STATUSES
from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.schedule import MAX_SHOW, Show
from liveshop.storage.channels import channel_from_row, show_from_row

#: Every status but ``cancelled``, spelled out so ``orders_status (status, created_at)``
#: serves the window (``status <> 'cancelled'`` cannot use that index).
COUNTED = [s for s in STATUSES if s != "cancelled"]
TOP = 10

# The window's orders; $1 the counted statuses, $2 and $3 the window.
_WINDOW = (
    "WITH o AS (SELECT * FROM orders WHERE status = ANY($1::text[]) "
    "AND created_at >= $2 AND created_at < $3)"
)

# Per (key, currency): ``gmv`` and ``n`` (orders, or units for products), then the first
# $4 keys by their largest currency sum. Each top list fills in ``per`` and ``info``.
_TOP = (
    _WINDOW + ", per AS ({per}), ranked AS (SELECT key, max(gmv) AS top, sum(n) AS n "
    "FROM per GROUP BY key ORDER BY top DESC, n DESC, key LIMIT $4) "
    "SELECT r.key, r.n, p.currency, p.gmv{info} FROM ranked r JOIN per p USING (key) {join} "
    "ORDER BY r.top DESC, r.n DESC, r.key, p.currency"
)

_SHOWS = _TOP.format(
    # An order counts for a show when it was placed in the show's room while it was on.
    per="SELECT s.id AS key, o.currency, sum(o.total_minor) AS gmv, count(*) AS n FROM o "
    "JOIN shows s ON s.room_id = o.room_id AND s.status <> 'cancelled' "
    "AND o.created_at >= to_timestamp(s.starts_at) "
    "AND o.created_at < to_timestamp(COALESCE(s.ended_at, s.ends_at)) "
    "GROUP BY s.id, o.currency",
    info=", s.title, s.channel_id, s.room_id",
    join="JOIN shows s ON s.id = r.key",
)

_PRODUCTS = _TOP.format(
    # Per SKU (what is sold), named by its product.
    per="SELECT l.sku AS key, o.currency, sum(l.quantity * l.price_minor) AS gmv, "
    "sum(l.quantity) AS n FROM o JOIN order_lines l ON l.order_id = o.id "
    "GROUP BY l.sku, o.currency",
    info=", k.product_id, p2.title",
    join="JOIN skus k ON k.id = r.key LEFT JOIN products p2 ON p2.id = k.product_id",
)

_CREATORS = _TOP.format(
    # The creator of a sale is the host of the room it was placed in.
    per="SELECT m.host_id AS key, o.currency, sum(o.total_minor) AS gmv, count(*) AS n "
    "FROM o JOIN rooms m ON m.id = o.room_id WHERE m.host_id IS NOT NULL "
    "GROUP BY m.host_id, o.currency",
    info="",
    join="",
)


@dataclass(frozen=True)
class OnAir:
    channel: ChannelInfo
    #: The show in its slot now (scheduled or live), as the grid shows it; None between shows.
    now: Show | None
    #: An operator's override (cut to slate, switched stream), as stored; None if none.
    override: dict[str, Any] | None


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _ranked(rows: list[asyncpg.Record]) -> list[tuple[asyncpg.Record, dict[str, int], int]]:
    """Rows of one top list (one per key and currency, in rank order) → one entry per key:
    its first row, its GMV per currency, its count."""
    out: dict[str, tuple[asyncpg.Record, dict[str, int], int]] = {}
    for row in rows:
        entry = out.setdefault(row["key"], (row, {}, int(row["n"])))
        entry[1][row["currency"].strip()] = int(row["gmv"])
    return list(out.values())


class OverviewStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def overview(self, start: float, end: float, *, top: int = TOP) -> dict[str, Any]:
        """Sales in ``[start, end)``: ``gmv_minor`` per currency, ``orders``, ``buyers`` and
        the ``top`` shows, products (SKUs) and creators."""
        args = (COUNTED, _ts(start), _ts(end))
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):  # one snapshot: the totals and the top lists agree
            totals = await conn.fetch(
                _WINDOW + " SELECT currency, count(*) AS orders, sum(total_minor) AS gmv "
                "FROM o GROUP BY currency ORDER BY currency",
                *args,
            )
            buyers = await conn.fetchval(_WINDOW + " SELECT count(DISTINCT buyer_id) FROM o", *args)
            shows = _ranked(await conn.fetch(_SHOWS, *args, top))
            products = _ranked(await conn.fetch(_PRODUCTS, *args, top))
            creators = _ranked(await conn.fetch(_CREATORS, *args, top))
        return {
            "gmv_minor": {r["currency"].strip(): int(r["gmv"]) for r in totals},
            "orders": sum(int(r["orders"]) for r in totals),
            "buyers": int(buyers),
            "top_shows": [
                {"show_id": r["key"], "title": r["title"], "channel_id": r["channel_id"],
                 "room_id": r["room_id"], "gmv_minor": gmv, "orders": n}
                for r, gmv, n in shows
            ],
            "top_products": [
                {"product_id": r["product_id"], "sku": r["key"], "title": r["title"],
                 "units": n, "gmv_minor": gmv}
                for r, gmv, n in products
            ],
            "top_creators": [
                {"creator_id": r["key"], "gmv_minor": gmv, "orders": n} for r, gmv, n in creators
            ],
        }  # fmt: skip

    async def on_air(self, now: float) -> list[OnAir]:
        """Every channel (by id) with the show in its slot at ``now`` (the grid's rule: an
        active show with ``starts_at <= now < ends_at``, the earliest if several). No show
        lasts over ``MAX_SHOW``: only recent starts are searched, not a channel's history."""
        async with self.pool.acquire() as conn:
            channels = await conn.fetch("SELECT * FROM channels ORDER BY id")
            shows = await conn.fetch(
                "SELECT DISTINCT ON (channel_id) * FROM shows "
                "WHERE status IN ('scheduled', 'live') AND starts_at <= $1 AND ends_at > $1 "
                "AND starts_at > $2 ORDER BY channel_id, starts_at",
                now, now - MAX_SHOW,
            )  # fmt: skip
        by_channel = {r["channel_id"]: show_from_row(r) for r in shows}
        return [
            OnAir(channel_from_row(r), by_channel.get(r["id"]), r["override"]) for r in channels
        ]
