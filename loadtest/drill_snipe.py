"""Auction snipe drill: N bidders pile in during the last second, again and again.

An auction runs with anti-sniping (``extend``): every bidder holds a secret maximum and, in
the final second before the current end, bids the minimum with that maximum (proxy bid); when
told ``bid_too_low`` it tries again while the minimum is within its maximum. Each accepted
late bid pushes the end out, so the war goes on until only one bidder can still pay. Then a
``sudden_death`` auction with the same bidders, which must not extend.

Checks, from the bidders' answers and PostgreSQL: the extend auction ended later than planned;
the sudden-death one did not; in both, the winner is the bidder with the highest accepted
maximum (the earlier one on a tie) and the price never passes it; the winner's order exists at
that price and the SKU's books are sound.

    .venv/bin/python loadtest/drill_snipe.py            # 200 bidders
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import LiveshopUnderTest, add_service_args  # a sibling script


@dataclass
class War:
    mode: str
    planned_end: float = 0.0
    final_end: float = 0.0
    accepted: list[tuple[str, int, float]] = field(default_factory=list)  # bidder, max, at
    late: int = 0  # accepted in the last second before the end they saw
    refused: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    order: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


async def war(settings: Any, mode: str, bidders: int, duration: float) -> War:
    from liveshop.app.commerce import Commerce
    from liveshop.commerce.product import Product
    from liveshop.errors import AuctionNotLive, BidTooLow, Unavailable
    from liveshop.protocol import AuctionParams, validate_params
    from liveshop.storage.pool import create_pool
    from liveshop.storage.products import ProductStore
    from liveshop.tokens import Identity, Role

    pool = await create_pool(settings.database_url)
    commerce = Commerce(settings, pool)
    sku = f"snipe-{mode}-{int(time.time())}"
    product = await ProductStore(pool).create(
        Product("snipe-card", "Signed card", 100, "USD"), upsert=True
    )
    await commerce.sku_store.create(sku, product, on_hand=1, limit_per_buyer=None, now=time.time())
    await commerce.products.list_in(product.product_id, "demo", by="drill")
    host = Identity("drill-host", "Host", {"demo": frozenset({Role.HOST})}, time.time() + 3600)
    params = validate_params(
        AuctionParams,
        {"room": "demo", "sku": sku, "start_price": 1000, "min_increment": 100,
         "duration": duration, "extend_window": 2, "mode": mode},
        "start_auction",
    )  # fmt: skip
    started = await commerce.run("start_auction", host, params)
    auction_id = started["auction_id"]
    outcome = War(mode, planned_end=started["ends_at"])
    limits = {f"bidder-{i}": 2000 + random.randrange(0, 200_000, 100) for i in range(bidders)}
    ended = asyncio.Event()
    view: dict[str, Any] = {"ends_at": started["ends_at"], "minimum_bid": 1000, "leader": None}

    async def bidder(name: str, ceiling: int) -> None:
        # A third bid by proxy (their maximum, once); the rest bid the minimum each time.
        proxy = random.random() < 0.3
        n = 0
        while not ended.is_set():
            # Wait for a random moment in the last second before the end as last seen.
            wait = view["ends_at"] - time.time() - random.uniform(0.05, 1.0)
            await asyncio.sleep(max(0.0, wait))
            if view["leader"] == name:
                await asyncio.sleep(0.05)
                continue
            amount = view["minimum_bid"]
            while amount <= ceiling and not ended.is_set():
                n += 1
                top = ceiling if proxy else amount
                try:
                    answer = await commerce.auctions.bid(
                        auction_id, name, amount, top if proxy else None, f"s{n}"
                    )
                except BidTooLow as exc:
                    outcome.refused += 1
                    amount = exc.details["minimum"]
                    continue
                except AuctionNotLive:
                    return
                except Unavailable:
                    await asyncio.sleep(0.05)
                    continue
                at = time.time()
                outcome.accepted.append((name, top, at))
                if answer["ends_at"] - at <= 2.0 + 1e-6:  # landed in the extension window
                    outcome.late += 1
                view["ends_at"] = max(view["ends_at"], answer["ends_at"])
                break
            if amount > ceiling:
                return  # priced out
            await asyncio.sleep(0.05)

    async def watcher() -> None:
        while True:
            current = await commerce.auctions.view(auction_id)
            view["ends_at"], view["minimum_bid"] = current["ends_at"], current["minimum_bid"]
            view["leader"] = current["leader"]
            if current["result"] is not None:
                outcome.final_end = current["ends_at"]
                outcome.result = current["result"]
                ended.set()
                return
            await asyncio.sleep(0.05)

    await asyncio.gather(watcher(), *(bidder(n, c) for n, c in limits.items()))
    for _ in range(100):  # the settlement: the order on the held unit
        current = await commerce.auctions.view(auction_id)
        if current["order"]:
            outcome.order = await commerce.orders.get(current["order"])
            break
        await asyncio.sleep(0.1)
    for _ in range(100):
        audit = await commerce.sku_store.audit(sku)
        if audit["sold"] == 1:
            break
        await asyncio.sleep(0.1)
    outcome.problems += audit["problems"]
    check(outcome)
    await commerce.close()
    await pool.close()
    return outcome


def check(w: War) -> None:
    if not w.accepted:
        w.problems.append("no bid was accepted")
        return
    best: dict[str, tuple[int, int]] = {}  # bidder -> (highest maximum, when reached)
    for i, (name, ceiling, _) in enumerate(w.accepted):
        if name not in best or ceiling > best[name][0]:
            best[name] = (ceiling, i)
    top = min(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))[0]
    if w.result.get("winner") != top:
        w.problems.append(f"winner {w.result.get('winner')} is not the highest valid bid {top}")
    price = w.result.get("price") or 0
    if price > best[top][0]:
        w.problems.append(f"price {price} passed the winner's maximum {best[top][0]}")
    if w.order is None or w.order["total_minor"] != price or w.order["buyer_id"] != top:
        w.problems.append(f"no order for {top} at {price}: {w.order}")
    extended = w.final_end > w.planned_end + 1e-6
    if w.mode == "extend" and not extended:
        w.problems.append("late bids did not extend the auction")
    if w.mode == "sudden_death" and extended:
        w.problems.append("a sudden-death auction was extended")


def run(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="liveshop-bench-"))
    liveshop = LiveshopUnderTest(data_dir, args)
    wars: list[War] = []
    try:
        print(f"snipe drill: {args.bidders} bidders", flush=True)
        liveshop.start()
        for mode in ("extend", "sudden_death"):
            w = asyncio.run(war(liveshop.stack.settings, mode, args.bidders, args.duration))
            wars.append(w)
            print(
                f"{mode}: {len(w.accepted)} bids accepted ({w.late} in the extension window), "
                f"{w.refused} too low; end {w.final_end - w.planned_end:+.1f} s vs planned; "
                f"result {w.result}",
                flush=True,
            )
            for problem in w.problems:
                print(f"  VIOLATION: {problem}", flush=True)
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            liveshop.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    ext, sd = wars
    held = not ext.problems and not sd.problems
    print(
        f"snipe drill N={args.bidders}: extend ended {ext.final_end - ext.planned_end:+.1f} s "
        f"late after {ext.late} last-second bids, sudden death "
        f"{sd.final_end - sd.planned_end:+.1f} s; highest valid bid won in both: "
        f"{'held' if held else 'FAILED'}",
        flush=True,
    )
    return 0 if held else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bidders", "-n", type=int, default=200)
    parser.add_argument("--duration", type=float, default=6.0, help="planned length, s")
    add_service_args(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
