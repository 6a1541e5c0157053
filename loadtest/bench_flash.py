"""Hot-SKU flash sale: N buyers race for U units of one SKU.

liveshop: every buyer sends buys through ``SkuClient`` (the gateway's own path: buys gathered
per SKU for a few milliseconds, one actor call per batch) to the SKU actor, which decides each
batch in memory and commits all the decisions waiting in one PostgreSQL transaction (group
commit) before answering. Baseline, same run, same tables: one actor call per purchase, and
one transaction per purchase (the conditional stock update, the order, its line and the
ledger row). Both sell every unit; a decision is durable before its buyer hears of it.

``--poison R`` runs the poison drill instead: the same sale twice on two SKUs, the second
while an attacker sends R requests a second that PostgreSQL cannot store. ``--poison-kind
buy`` (default): buys whose buyer id holds NUL, as a token minted elsewhere could carry
past the edge (the SKU refuses them before deciding). ``--poison-kind restock``: restocks
whose reference holds NUL (refused the same way). ``--poison-kind policy``: restocks that
only PostgreSQL refuses (a trigger the drill installs, as an operator's constraint or a bug
would refuse them): the group commit fails and is bisected until the culprit is alone, each
step going back to an in-memory checkpoint. Each must be refused alone
(``invalid_request``) while every honest buyer is served; the last line compares the honest
buyers' rate with and without the attack, and the books of the attacked SKU are audited.

``--kill K`` runs the kill drill instead: the SKU's host is killed K times at random moments
during the sale; buyers retry with the same idempotency key, as clients do. Afterwards the
database must show: sold + available + reserved == initial, every acknowledged purchase with
its order row, no idempotency key on two orders, no stock below zero.

    .venv/bin/python loadtest/bench_flash.py                  # 10,000 buyers, 50,000 units
    .venv/bin/python loadtest/bench_flash.py --kill 20        # the kill drill
    .venv/bin/python loadtest/bench_flash.py --poison 15      # the poison drill
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import LiveshopUnderTest, add_service_args  # a sibling script

PRODUCT = "flash-product"

#: ``--poison-kind policy``: a refusal no check before PostgreSQL can foresee (as an
#: operator's constraint or a bug would make), on ledger references named so.
POLICY_TRIGGER = """
CREATE OR REPLACE FUNCTION refused_by_policy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ref LIKE 'refused-by-policy%' THEN
        RAISE EXCEPTION 'refused by policy' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER refused_by_policy BEFORE INSERT ON inventory_ledger
    FOR EACH ROW EXECUTE FUNCTION refused_by_policy();
"""


@dataclass
class Sale:
    name: str
    units: int
    buyers: int
    sold: int = 0
    refused: int = 0
    retries: int = 0
    elapsed: float = 0.0
    #: (buyer, key) -> order id of every acknowledged purchase.
    acknowledged: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sold / self.elapsed if self.elapsed else 0.0

    def line(self) -> str:
        return (
            f"{self.name}: {self.sold}/{self.units} units to {self.buyers} buyers in "
            f"{self.elapsed:.2f} s = {self.rate:.0f} durable decisions/s "
            f"({self.refused} refused sold out, {self.retries} retried)"
        )


# -- the baseline: one actor call and one transaction per purchase ---------------------------


class OneByOneSku:
    """The naive SKU service: each purchase is its own call and its own transaction."""

    async def __init__(self, database_url: str, sku: str) -> None:  # type: ignore[misc]
        self.sku = sku
        self.pool = await asyncpg.create_pool(database_url, min_size=8, max_size=8)
        self.seq = 0

    async def buy(self, buyer: str, key: str, quantity: int) -> dict[str, Any] | None:
        self.seq += 1
        order_id = f"{self.sku}~o{self.seq}"
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE skus SET on_hand = on_hand - $2, sold = sold + $2, updated_at = now() "
                "WHERE id = $1 AND on_hand - reserved >= $2 RETURNING price_minor, currency",
                self.sku,
                quantity,
            )
            if row is None:
                return None
            total = row["price_minor"] * quantity
            await conn.execute(
                "INSERT INTO orders (id, buyer_id, currency, subtotal_minor, total_minor, "
                "idem_scope, idem_key, created_at) VALUES ($1, $2, $3, $4, $4, $5, $6, now())",
                order_id, buyer, row["currency"], total, "sku:" + self.sku, key,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO order_lines (order_id, line, sku, product_id, quantity, price_minor) "
                "VALUES ($1, 1, $2, $3, $4, $5)",
                order_id, self.sku, PRODUCT, quantity, row["price_minor"],
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO inventory_ledger (sku, kind, on_hand_delta, reserved_delta, "
                "sold_delta, ref, at) VALUES ($1, 'buy', $2, 0, $3, $4, now())",
                self.sku, -quantity, quantity, order_id,
            )  # fmt: skip
        return {"order": order_id}


async def baseline_sale(database_url: str, sku: str, units: int, buyers: int) -> Sale:
    actor = (
        ray.remote(OneByOneSku).options(max_concurrency=1000, num_cpus=0).remote(database_url, sku)  # type: ignore[attr-defined]
    )
    sale = Sale("baseline (1 call + 1 transaction per purchase)", units, buyers)

    async def buyer(b: int) -> None:
        n = 0
        while True:
            n += 1
            answer = await actor.buy.remote(f"buyer-{b}", f"k{n}", 1)
            if answer is None:
                sale.refused += 1
                return
            sale.sold += 1

    await actor.__ray_ready__.remote()
    started = time.monotonic()
    await asyncio.gather(*(buyer(b) for b in range(buyers)))
    sale.elapsed = time.monotonic() - started
    ray.kill(actor)
    return sale


# -- liveshop --------------------------------------------------------------------------------


@dataclass
class Attack:
    sent: int = 0
    refused: int = 0  # invalid_request: refused alone, as it must be
    other: dict[str, int] = field(default_factory=dict)  # any other outcome (must stay empty)


async def liveshop_sale(
    settings: Any,
    sku: str,
    units: int,
    buyers: int,
    kills: int = 0,
    poison: float = 0.0,
    poison_kind: str = "buy",
) -> tuple[Sale, int, Attack]:
    from liveshop.commerce.inventory import Buy, Restock
    from liveshop.config import NAMESPACE
    from liveshop.errors import LiveshopError, OutOfStock, Unavailable
    from liveshop.mesh import hosts
    from liveshop.mesh.sku_client import SkuClient
    from liveshop.storage.pool import create_pool
    from liveshop.storage.skus import SkuStore

    pool = await create_pool(settings.database_url)
    client = SkuClient(settings, SkuStore(pool))
    name = "liveshop (batched calls, group commit)" + (f", {kills} kills" if kills else "")
    if poison:
        name += f", attacked by {poison:g} refused {poison_kind} requests/s"
    attack = Attack()
    sale = Sale(name, units, buyers)
    await client.view(sku)  # the actor is up and loaded
    done = asyncio.Event()

    async def buyer(b: int) -> None:
        me, n = f"buyer-{b}", 0
        while True:
            n += 1
            key = f"k{n}"
            while True:  # a client retries an unanswered buy with the same key
                try:
                    answer = await client.send(sku, Buy(me, 1, key, "flash-room"))
                    break
                except Unavailable:
                    sale.retries += 1
                    await asyncio.sleep(0.05 + random.random() * 0.1)
                except OutOfStock:
                    sale.refused += 1
                    return
            sale.acknowledged[(me, key)] = answer["order"]
            sale.sold += 1

    async def killer() -> int:
        killed = 0
        while killed < kills and not done.is_set():
            await asyncio.sleep(random.uniform(0.3, 1.5))  # a random moment of the sale
            if done.is_set():
                break
            # The SKU's host: the process, and every entity on it with the SKU.
            name = await hosts.locate(settings, "sku", sku)
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=False)
            killed += 1
        return killed

    async def attacker() -> None:
        """Past the edge: the SKU actor sees what no client may send."""

        async def one(n: int) -> None:
            attack.sent += 1
            try:
                if poison_kind == "restock":
                    await client.send(sku, Restock(1, f"delivery\x00{n}"))
                elif poison_kind == "policy":
                    await client.send(sku, Restock(1, f"refused-by-policy-{n}"))
                else:
                    await client.send(sku, Buy("mallory\x00", 1, f"p{n}", "flash-room"))
                attack.other["accepted"] = attack.other.get("accepted", 0) + 1
            except LiveshopError as exc:
                if exc.code == "invalid_request":
                    attack.refused += 1
                else:
                    attack.other[exc.code] = attack.other.get(exc.code, 0) + 1

        sends: list[asyncio.Future[None]] = []
        n = 0
        while poison and not done.is_set():
            n += 1
            sends.append(asyncio.ensure_future(one(n)))
            await asyncio.sleep(1 / poison)
        await asyncio.gather(*sends)

    started = time.monotonic()
    kill_task = asyncio.ensure_future(killer())
    attack_task = asyncio.ensure_future(attacker())
    await asyncio.gather(*(buyer(b) for b in range(buyers)))
    sale.elapsed = time.monotonic() - started
    done.set()
    killed = await kill_task
    await attack_task
    await client.close()
    await pool.close()
    return sale, killed, attack


async def check_drill(database_url: str, sku: str, initial: int, sale: Sale) -> list[str]:
    """What must hold after the drill; returns the violations (empty: it held)."""
    from liveshop.storage.skus import SkuStore, buy_scope

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        audit = await SkuStore(pool).audit(sku)  # ledger, zero floor, orders, doubled keys
        problems: list[str] = list(audit["problems"])
        if audit["stock_in"] != initial:
            problems.append(f"{audit['stock_in']} units taken in, not {initial}")
        orders = await pool.fetch(
            "SELECT id, buyer_id, idem_key FROM orders WHERE idem_scope = $1", buy_scope(sku)
        )
    finally:
        await pool.close()
    by_key = {(o["buyer_id"], o["idem_key"]): o["id"] for o in orders}
    missing = [k for k, oid in sale.acknowledged.items() if by_key.get(k) != oid]
    if missing:
        problems.append(f"{len(missing)} acknowledged purchases without their order row")
    if len(orders) != len(sale.acknowledged):
        problems.append(f"{len(orders)} orders, {len(sale.acknowledged)} acknowledged purchases")
    return problems


async def create_skus(database_url: str, units: int, skus: list[str]) -> None:
    from liveshop import clock
    from liveshop.commerce.product import Product
    from liveshop.storage.products import ProductStore
    from liveshop.storage.skus import SkuStore

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        product = await ProductStore(pool).create(
            Product(PRODUCT, "Flash sneaker", 4999, "USD"), upsert=True
        )
        for sku in skus:
            await SkuStore(pool).create(
                sku, product, on_hand=units, limit_per_buyer=None, now=clock.now()
            )
    finally:
        await pool.close()


def run(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="liveshop-bench-"))
    liveshop = LiveshopUnderTest(data_dir, args)
    try:
        print(f"flash: {args.buyers} buyers, {args.units} units, one SKU", flush=True)
        liveshop.start()
        settings = liveshop.stack.settings
        suffix = f"{int(time.time())}"
        if args.kill:
            sku = f"drill-{suffix}"
            asyncio.run(create_skus(settings.database_url, args.units, [sku]))
            sale, killed, _ = asyncio.run(
                liveshop_sale(settings, sku, args.units, args.buyers, kills=args.kill)
            )
            print(sale.line(), flush=True)
            problems = asyncio.run(check_drill(settings.database_url, sku, args.units, sale))
            for problem in problems:
                print(f"  VIOLATION: {problem}", flush=True)
            verdict = "held" if not problems else f"FAILED ({len(problems)} violations)"
            print(
                f"kill drill N={args.buyers} units={args.units}: {killed} kills, "
                f"{sale.sold} sold, {len(sale.acknowledged)} acknowledged, "
                f"{sale.retries} retries; invariants {verdict}",
                flush=True,
            )
            return 0 if not problems else 1
        if args.poison:
            return poison_drill(settings, args, suffix)
        ours_sku, base_sku = f"flash-{suffix}", f"baseline-{suffix}"
        asyncio.run(create_skus(settings.database_url, args.units, [ours_sku, base_sku]))
        base = asyncio.run(baseline_sale(settings.database_url, base_sku, args.units, args.buyers))
        print(base.line(), flush=True)
        ours, _, _ = asyncio.run(liveshop_sale(settings, ours_sku, args.units, args.buyers))
        print(ours.line(), flush=True)
    except KeyboardInterrupt:
        print("interrupted; stopping", flush=True)
        return 130
    finally:
        try:
            liveshop.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    ratio = ours.rate / base.rate if base.rate else math.nan
    print(
        f"flash N={args.buyers} units={args.units}: liveshop {ours.rate:.0f} decisions/s, "
        f"baseline {base.rate:.0f} decisions/s, ratio {ratio:.1f}",
        flush=True,
    )
    return 0


async def _sql(database_url: str, sql: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def poison_drill(settings: Any, args: argparse.Namespace, suffix: str) -> int:
    clean_sku, attacked_sku = f"clean-{suffix}", f"attacked-{suffix}"
    asyncio.run(create_skus(settings.database_url, args.units, [clean_sku, attacked_sku]))
    if args.poison_kind == "policy":
        asyncio.run(_sql(settings.database_url, POLICY_TRIGGER))
    clean, _, _ = asyncio.run(liveshop_sale(settings, clean_sku, args.units, args.buyers))
    print(clean.line(), flush=True)
    try:
        attacked, _, attack = asyncio.run(
            liveshop_sale(
                settings,
                attacked_sku,
                args.units,
                args.buyers,
                poison=args.poison,
                poison_kind=args.poison_kind,
            )
        )
    finally:
        if args.poison_kind == "policy":
            asyncio.run(
                _sql(settings.database_url, "DROP TRIGGER refused_by_policy ON inventory_ledger")
            )
    print(attacked.line(), flush=True)
    problems = asyncio.run(check_drill(settings.database_url, attacked_sku, args.units, attacked))
    problems += [f"{n} attacking buys answered {code}" for code, n in attack.other.items()]
    if attacked.sold != args.units:
        problems.append(f"honest buyers got {attacked.sold} of {args.units} units")
    for problem in problems:
        print(f"  VIOLATION: {problem}", flush=True)
    ratio = attacked.rate / clean.rate if clean.rate else math.nan
    verdict = "held" if not problems else f"FAILED ({len(problems)} violations)"
    print(
        f"poison drill N={args.buyers} units={args.units}: {attack.sent} refused "
        f"{args.poison_kind} requests sent, "
        f"{attack.refused} refused alone; honest buyers {attacked.sold}/{args.units} units, "
        f"{attacked.retries} retries; attacked {attacked.rate:.0f} decisions/s, clean "
        f"{clean.rate:.0f} decisions/s, ratio {ratio:.2f}; invariants {verdict}",
        flush=True,
    )
    return 0 if not problems else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buyers", "-n", type=int, default=10_000, help="buyers (N)")
    parser.add_argument("--units", "-u", type=int, default=50_000, help="units on sale (U)")
    parser.add_argument(
        "--kill", type=int, default=0, help="run the kill drill: kill the SKU actor K times"
    )
    parser.add_argument(
        "--poison",
        type=float,
        default=0.0,
        help="run the poison drill: R unstorable buys a second during the sale",
    )
    parser.add_argument(
        "--poison-kind",
        choices=("buy", "restock", "policy"),
        default="buy",
        help="what the poison drill's attacker sends (see above)",
    )
    add_service_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.buyers < 1 or args.units < 1 or args.kill < 0:
        sys.exit("--buyers and --units must be >= 1, --kill >= 0")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
