"""Entity density: how many carts, SKUs and rooms this machine hosts, and what a hot SKU
keeps of its speed among them.

Through the real clients (CartClient, SkuClient, RoomClient: the gateway's and the API's own
path) against a local liveshop: activate R rooms, M SKUs and N carts (each cart with a
line, written to PostgreSQL), and print per kind the activations per second, the op latency
p50/p99, and the resident memory each idle entity adds to the hosts (their RSS growth over
the phase, divided by the count); the Ray worker process count before and after (it must
not follow the entities); cart operations at a steady offered rate (p50/p99); a passivation
pass (every cart leaves memory) and reactivations from PostgreSQL.

Last line: a flash sale on a hot SKU hosted among all of that, against the same sale on a
SKU in a Ray actor process of its own (the one-actor-per-SKU design before entity hosts),
in the same run: decisions/s and the ratio.

    .venv/bin/python loadtest/bench_density.py                     # 100,000 carts, ...
    .venv/bin/python loadtest/bench_density.py --carts 10000 --skus 1000 --rooms 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import LIVESHOP_OVERRIDES, _raise_interrupt, _say, add_service_args

from liveshop import gctune
from liveshop.config import NAMESPACE, Settings
from liveshop.mesh.client import ActorClient

KIB = 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Phase:
    kind: str
    count: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    rss_before: int = 0
    rss_after: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def per_entity(self) -> float:
        return (self.rss_after - self.rss_before) / max(1, self.count)

    def line(self) -> str:
        errors = f", errors {self.errors}" if self.errors else ""
        return (
            f"{self.kind}: {self.count} activated in {self.seconds:.1f} s = {self.rate:.0f}/s, "
            f"latency p50 {percentile(self.latencies, 0.5) * 1000:.1f} ms "
            f"p99 {percentile(self.latencies, 0.99) * 1000:.1f} ms; hosts grew "
            f"{(self.rss_after - self.rss_before) / 2**20:.0f} MiB = "
            f"{self.per_entity / KIB:.1f} KiB per resident idle {self.kind}{errors}"
        )


async def run_all(
    count: int, concurrency: int, one: Callable[[int], Awaitable[Any]], phase: Phase
) -> None:
    """``one(i)`` for i in range(count), ``concurrency`` at a time, timed each."""
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            started = time.perf_counter()
            try:
                await one(i)
            except Exception as exc:
                code = getattr(exc, "code", type(exc).__name__)
                phase.errors[code] = phase.errors.get(code, 0) + 1
                continue
            phase.latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.seconds = time.monotonic() - started


# -- what the machine runs ----------------------------------------------------------------------


def ray_worker_processes() -> int:
    """Ray worker processes on this machine (``ray::`` processes: actors, replicas, idle
    workers), which must not grow with the entities."""
    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and cmdline[0].startswith("ray::"):
            count += 1
    return count


def host_pids(settings: Settings) -> dict[str, int]:
    from liveshop.actors.hosting import wanted

    pids = {}
    for name in wanted(settings).hosts:
        handle = ray.get_actor(name, namespace=NAMESPACE)
        pids[name] = int(ray.get(handle.__ray_call__.remote(lambda _self: os.getpid()), timeout=60))
    return pids


def rss(pids: dict[str, int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids.values())


# -- the one-actor-per-SKU design, for the baseline ---------------------------------------------


class SoloSku:
    """One SKU in a Ray actor process of its own, with its own pool: what every SKU was
    before entity hosts. The same SkuActor code decides and commits."""

    async def __init__(self, sku: str, settings: Settings) -> None:  # type: ignore[misc]
        from liveshop.actors.resources import Resources
        from liveshop.actors.sku_actor import SkuActor
        from liveshop.mesh.room_client import RoomClient
        from liveshop.mesh.sku_client import SkuClient
        from liveshop.payments.cashier import Cashier
        from liveshop.storage.broker import RedisPublisher
        from liveshop.storage.owners import OwnerStore
        from liveshop.storage.pool import connect_retrying
        from liveshop.storage.rooms import RoomStore
        from liveshop.storage.skus import SkuStore

        assert settings.database_url and settings.redis_url
        name = f"solo:{sku}"
        pool = await connect_retrying(settings.database_url, max_size=3, who=name)
        res = Resources(
            host=name, settings=settings, pool=pool, publisher=RedisPublisher(settings.redis_url),
            rooms=RoomClient(settings, RoomStore(pool)), skus=SkuClient(settings, SkuStore(pool)),
            cashier=Cashier.using(settings, pool),
        )  # fmt: skip
        self.entity = SkuActor(sku, res, await OwnerStore(pool).claim("sku", sku, name))
        await self.entity.start()

    async def handle(self, batch: list[Any]) -> list[Any]:
        return await self.entity.handle(batch)

    async def views(self, batch: list[None]) -> list[dict[str, Any]]:
        return await self.entity.views(batch)


class SoloClient(ActorClient):
    """SkuClient's batching, pointed at the solo actor."""

    kind = "SKU"
    entity = "sku"
    solo: Any = None

    async def actor(self, key: str) -> Any:
        return self.solo


async def flash_sale(client: ActorClient, sku: str, buyers: int) -> tuple[int, float]:
    """Buyers buy one unit at a time until sold out: (sold, seconds)."""
    from liveshop.commerce.inventory import Buy
    from liveshop.errors import OutOfStock, Unavailable

    sold = 0

    async def buyer(b: int) -> None:
        nonlocal sold
        n = 0
        while True:
            n += 1
            while True:
                try:
                    await client.submit(sku, "handle", Buy(f"fb{b}", 1, f"k{n}", "flash-room"))
                    break
                except Unavailable:
                    await asyncio.sleep(0.05)
                except OutOfStock:
                    return
            sold += 1

    started = time.monotonic()
    await asyncio.gather(*(buyer(b) for b in range(buyers)))
    return sold, time.monotonic() - started


# -- the run --------------------------------------------------------------------------------------


async def seed(settings: Settings, args: argparse.Namespace, prefix: str) -> None:
    from liveshop import clock
    from liveshop.commerce.product import Product
    from liveshop.rooms.room import RoomInfo
    from liveshop.storage.pool import create_pool
    from liveshop.storage.products import ProductStore
    from liveshop.storage.rooms import RoomStore
    from liveshop.storage.skus import SkuStore

    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    try:
        product = await ProductStore(pool).create(
            Product(f"{prefix}-product", "Density sneaker", 4999, "USD"), upsert=True
        )
        skus, rooms = SkuStore(pool), RoomStore(pool)
        hot = [f"{prefix}-hot", f"{prefix}-solo"]

        async def sku(i: int) -> None:
            await skus.create(f"{prefix}-sku{i}", product, on_hand=1_000_000,
                              limit_per_buyer=None, now=clock.now())  # fmt: skip

        async def room(i: int) -> None:
            await rooms.create_room(RoomInfo(f"{prefix}-room{i}", f"Room {i}"), epoch="e1")

        phase = Phase("seed", 0)
        await run_all(args.skus, 8, sku, phase)
        await run_all(args.rooms, 8, room, phase)
        for name in hot:
            await skus.create(name, product, on_hand=args.units, limit_per_buyer=None,
                              now=clock.now())  # fmt: skip
        assert not phase.errors, phase.errors
    finally:
        await pool.close()


async def measure(settings: Settings, args: argparse.Namespace, prefix: str) -> str:
    from liveshop.mesh.cart_client import CartClient
    from liveshop.mesh.room_client import RoomClient
    from liveshop.mesh.sku_client import SkuClient
    from liveshop.storage.pool import create_pool
    from liveshop.storage.rooms import RoomStore
    from liveshop.storage.skus import SkuStore

    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    skus = SkuClient(settings, SkuStore(pool))
    rooms = RoomClient(settings, RoomStore(pool))
    carts = CartClient(settings, pool)
    # The client is a gateway or API process: tuned the same way (liveshop/gctune.py).
    gctune.tune()
    client_gc = gctune.Pauses()
    pids = await asyncio.to_thread(host_pids, settings)
    workers_before = ray_worker_processes()
    print(f"hosts {sorted(pids)}; Ray worker processes {workers_before}", flush=True)

    async def phase(kind: str, count: int, one: Callable[[int], Awaitable[Any]]) -> Phase:
        result = Phase(kind, count)
        await asyncio.sleep(2)  # let the hosts settle before reading their memory
        result.rss_before = rss(pids)
        await run_all(count, args.concurrency, one, result)
        await asyncio.sleep(2)
        result.rss_after = rss(pids)
        print(result.line(), flush=True)
        return result

    room_phase = await phase("room", args.rooms, lambda i: rooms.call(f"{prefix}-room{i}", "stats"))
    sku_phase = await phase("SKU", args.skus, lambda i: skus.view(f"{prefix}-sku{i}"))

    def add(i: int) -> Awaitable[Any]:
        sku = f"{prefix}-sku{i % max(1, args.skus)}"
        return carts.run(f"{prefix}-u{i}", "add", sku, 1, None)

    cart_phase = await phase("cart", args.carts, add)
    workers_after = ray_worker_processes()
    print(f"Ray worker processes: {workers_before} before, {workers_after} with "
          f"{args.carts + args.skus + args.rooms} entities resident", flush=True)  # fmt: skip

    # Cart operations at a steady offered rate, on random resident carts.
    ops: list[float] = []
    errors = 0
    pending: set[asyncio.Task[None]] = set()

    async def op(i: int) -> None:
        nonlocal errors
        user = f"{prefix}-u{random.randrange(args.carts)}"
        started = time.perf_counter()
        try:
            if random.random() >= args.writes:
                await carts.run(user, "view")
            else:
                sku = f"{prefix}-sku{random.randrange(max(1, args.skus))}"
                await carts.run(user, "set_quantity", sku, 1 + i % 3)
        except Exception:
            errors += 1
            return
        ops.append(time.perf_counter() - started)

    before = {n: await ray.get_actor(n, namespace=NAMESPACE).stats.remote() for n in pids}
    client_before = client_gc.view()
    total = int(args.rate * args.seconds)
    started = time.monotonic()
    for i in range(total):
        delay = started + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(op(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    for name in pids:
        stats = await ray.get_actor(name, namespace=NAMESPACE).stats.remote()
        stalls = stats["loop_lag"]["stalls"] - before[name]["loop_lag"]["stalls"]
        print(f"  {name} during the ops: collector {_pauses(before[name]['gc'], stats['gc'])}; "
              f"{stalls} event-loop stalls of 20 ms or more (longest ever "
              f"{stats['loop_lag']['longest'] * 1000:.0f} ms)", flush=True)  # fmt: skip
    print(f"  client collector during the ops: {_pauses(client_before, client_gc.view())}",
          flush=True)  # fmt: skip
    print(f"cart ops at {args.rate:.0f}/s offered for {args.seconds:.0f} s: {len(ops)} done, "
          f"p50 {percentile(ops, 0.5) * 1000:.1f} ms p99 {percentile(ops, 0.99) * 1000:.1f} ms, "
          f"{errors} errors", flush=True)  # fmt: skip

    # Passivation: every cart leaves memory; then some come back from PostgreSQL.
    started = time.monotonic()
    passivated = 0
    for name in pids:
        host = ray.get_actor(name, namespace=NAMESPACE)
        passivated += await host.passivate_matching.remote([f"cart:{prefix}-u"])
    took = time.monotonic() - started
    await asyncio.sleep(2)
    print(f"passivated {passivated} carts in {took:.1f} s; hosts now "
          f"{rss(pids) / 2**20:.0f} MiB", flush=True)  # fmt: skip
    back = Phase("cart (reactivated)", min(args.carts, args.reactivate))
    await run_all(back.count, args.concurrency,
                  lambda i: carts.run(f"{prefix}-u{i}", "view"), back)  # fmt: skip
    print(f"reactivated {back.count} carts from PostgreSQL: {back.rate:.0f}/s, p50 "
          f"{percentile(back.latencies, 0.5) * 1000:.1f} ms p99 "
          f"{percentile(back.latencies, 0.99) * 1000:.1f} ms", flush=True)  # fmt: skip

    # The hot SKU among all of that, against a SKU in a process of its own.
    hot, solo_sku = f"{prefix}-hot", f"{prefix}-solo"
    await skus.view(hot)
    hot_sold, hot_seconds = await flash_sale(skus, hot, args.buyers)
    solo = SoloClient(settings, pool, exists=lambda _k: _true(), missing=_missing)
    solo.solo = (
        ray.remote(SoloSku)
        .options(max_concurrency=1000, num_cpus=0)
        .remote(  # type: ignore[attr-defined]
            solo_sku, settings
        )
    )
    await solo.solo.__ray_ready__.remote()
    solo_sold, solo_seconds = await flash_sale(solo, solo_sku, args.buyers)
    ray.kill(solo.solo)
    ours, theirs = hot_sold / hot_seconds, solo_sold / solo_seconds
    for client in (skus, rooms, carts, solo):
        await client.close()
    await pool.close()
    limits = (
        f"per idle entity: cart {cart_phase.per_entity / KIB:.1f} KiB (goal <= 64), "
        f"SKU {sku_phase.per_entity / KIB:.1f} KiB (<= 256), room "
        f"{room_phase.per_entity / KIB:.0f} KiB (<= 2048); cart ops p99 "
        f"{percentile(ops, 0.99) * 1000:.1f} ms at {args.rate:.0f}/s (<= 20)"
    )
    print(limits, flush=True)
    return (
        f"density {args.carts} carts + {args.skus} SKUs + {args.rooms} rooms in "
        f"{len(pids)} host processes ({workers_after} Ray workers): hot SKU among them "
        f"{ours:.0f} decisions/s ({hot_sold} sold), one actor per SKU {theirs:.0f} "
        f"decisions/s ({solo_sold} sold), ratio {ours / theirs:.2f}"
    )


def _pauses(before: dict[str, list[float]], after: dict[str, list[float]]) -> str:
    counts = [int(a - b) for a, b in zip(after["count"], before["count"], strict=True)]
    seconds = [a - b for a, b in zip(after["seconds"], before["seconds"], strict=True)]
    return (f"{counts} collections (gen 0/1/2), {sum(seconds) * 1000:.0f} ms in all, longest "
            f"ever {max(after['longest']) * 1000:.0f} ms")  # fmt: skip


async def _true() -> bool:
    return True


def _missing(key: str) -> Any:
    from liveshop.errors import SkuNotFound

    return SkuNotFound(f"no SKU {key!r}")


async def _scratch_database(server_url: str, name: str, *, drop: bool) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        if drop:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--carts", type=int, default=100_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=200, help="activations in flight")
    parser.add_argument("--rate", type=float, default=1000.0, help="cart ops/s offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="of cart ops")
    parser.add_argument(
        "--writes",
        type=float,
        default=0.5,
        help="share of cart ops that change the cart (set_quantity), the rest view it",
    )
    parser.add_argument("--reactivate", type=int, default=10_000, help="carts brought back")
    parser.add_argument("--buyers", type=int, default=2_000, help="flash-sale buyers")
    parser.add_argument("--units", type=int, default=20_000, help="flash-sale units")
    add_service_args(parser)
    args = parser.parse_args(argv)

    from liveshop.stack import Stack
    from liveshop.storage.embedded import free_port

    data_dir = Path(tempfile.mkdtemp(prefix="liveshop-density-"))
    database_url, scratch = args.database_url, None
    if database_url:
        # A database of its own on the configured server, dropped at the end: a run leaves
        # nothing behind, and none measures the rows of the runs before it (a dozen runs'
        # leftovers moved the cart p99 from 13 to 20 ms; loadtest/README.md).
        scratch = f"liveshop_density_{secrets.token_hex(3)}"
        asyncio.run(_scratch_database(database_url, scratch, drop=False))
        database_url = _with_database(database_url, scratch)
    settings = Settings.from_env(
        data_dir=data_dir, http_port=free_port(), ws_port=free_port(),
        dashboard_port=free_port(), rtmp_port=free_port(), database_url=database_url,
        redis_url=args.redis_url, gateways=1, passivate_after=3600.0, **LIVESHOP_OVERRIDES,
    ).with_keys()  # fmt: skip
    stack = Stack(settings)
    say = _say("liveshop")
    try:
        stack.start_storage(say)
        os.environ["RAY_ADDRESS"] = "local"
        stack.start_ray(None, say)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        stack.deploy(say)
        prefix = f"d{secrets.token_hex(3)}"
        print(f"density: {args.carts} carts, {args.skus} SKUs, {args.rooms} rooms", flush=True)
        asyncio.run(seed(stack.settings, args, prefix))
        print(asyncio.run(measure(stack.settings, args, prefix)), flush=True)
        return 0
    finally:
        stack.stop(say)
        shutil.rmtree(data_dir, ignore_errors=True)
        if scratch is not None:
            asyncio.run(_scratch_database(args.database_url, scratch, drop=True))


if __name__ == "__main__":
    sys.exit(main())
