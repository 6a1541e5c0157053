"""The road to a million viewers: one room actor and Redis at a 1,000,000-viewer show's rates.

    python loadtest/bench_show.py          # 1,000,000 viewers on 100 gateways, 20 s
    python loadtest/bench_show.py --viewers 100000 --gateways 10 --duration 10    # quick

No WebSockets here: bench_room.py measured that one gateway process serves ~10,000 viewers per
core, so a 1,000,000-viewer show is ~100 gateway processes. What they cost the *room* is what
this benchmark measures. Each simulated gateway is what a real one holds for the room: one
``RoomClient`` (its own batcher, so its own stream of batched calls to the room actor) and one
``RedisSubscriber`` (its own pub/sub connection to the room's channel). So the room actor gets
G independent call streams and Redis fans every room message out to G subscribers. The
gateways run in ``--workers`` processes (Ray drivers) besides this one, on uvloop.

Offered load of the whole show, split evenly over the G gateways on one fixed schedule
(global command j of a kind goes to gateway j mod G at t0 + j / rate), for ``--duration`` s.
Defaults are these assumptions about a show of V viewers:

* chat: 1% of viewers chat once per 30 s (V / 3,000 per s; 333/s at 1M), spread over V/100
  user ids so that nobody hits the room's per-user chat limit (20 per 30 s);
* reactions: 5% of viewers tap once a second (V / 20 per s; 50,000/s at 1M), one ``React``
  per tap inside the gateway's batches, as a gateway sends them today (``count`` stays 1);
* joins: the audience arrives over 10 minutes (V / 600 ``Joined`` per s; 1,667/s at 1M);
* presence: each gateway's ``ReportViewers(gateway_id, V / G)`` once a second, so the room
  counts V viewers and stretches its tick to ``max_tick``.

Baseline, in the same run, on the same G call streams and subscribers: a bare Ray actor with
the room actor's Ray options that only counts the batches it gets, and a bare Redis publisher
sending messages of the room's mean size at the room's tick rate. Figures: commands offered and
applied (answered), calls/s and mean batch, answer latency, ticks/s, publish-to-deliver latency
at the subscribers (room messages carry ``sent``), messages lost, CPU of every process, Redis
messages out.

A gateway keeps at most ``max_calls_in_flight`` (2) calls out per room and sends what gathered
meanwhile in the next one (liveshop/mesh/batcher.py), so the actor is never asked for more
calls than it answers and its batches grow with the load. After the room phase the benchmark
*calibrates* each actor's CPU per call at the batch size the phase saw, and its verdict says
what share of a core the offered commands need at that size (the CPU line says who set the
pace; on 2 cores the simulated gateways may). The last line is

    show viewers=.. gateways=..: room applied X cmd/s of Y offered (..), fan-out p99 .. ms
    to G subscribers, Redis .. msg/s; bare actor .. cmd/s (..); keeps up ratio X/Y

(one line; 1.00 keeps up). Loopback only; every phase has a time limit; everything started
here is stopped, also on Ctrl-C and errors.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import functools
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import (  # sibling scripts, not installed modules
    Conn,
    LiveshopUnderTest,
    _answer,
    _raise_fd_limit,
    _raise_interrupt,
    _say,
    _stop_process,
    add_service_args,
)
from bench_room import CpuMeter, _percentiles

from liveshop.config import NAMESPACE, Settings
from liveshop.errors import NotFound
from liveshop.mesh.client import ActorClient
from liveshop.mesh.room_client import RoomClient
from liveshop.rooms.commands import Actor, Chat, Command, Joined, React, ReportViewers
from liveshop.storage.broker import RedisPublisher, RedisSubscriber
from liveshop.tokens import Role

#: Measured (loadtest/README.md, bench_room.py): one gateway process, one core.
VIEWERS_PER_GATEWAY = 10_000
#: The show's assumptions (module docstring).
CHAT_SHARE, CHAT_EVERY = 0.01, 30.0
REACT_SHARE, REACT_EVERY = 0.05, 1.0
ARRIVAL_SECONDS = 600.0
REPORT_EVERY = 1.0
REACTION_KINDS = ("heart", "fire", "clap", "wow")
VIEWER_ROLES = frozenset({Role.VIEWER})
#: Time limits (s) of the phases that do not depend on the flags.
WORKER_SETUP_LIMIT = 180.0
STATS_LIMIT = 15.0
#: Calls of the calibration (per actor) and its time limit, s.
CALIBRATE_CALLS = 2000
CALIBRATE_LIMIT = 120.0
#: After the schedule ends the subscribers keep listening this long past one max tick, so
#: that the last ticks of the window arrive.
LISTEN_AFTER = 1.5


# -- the simulated gateways (worker processes) -----------------------------------------------


class _Counted:
    """Counts the batched calls a client makes, and those the actor answered (not timed out),
    without touching the client's path (the mixin sits before the real client)."""

    calls: int = 0
    items: int = 0
    answered: int = 0

    async def call(self, actor_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method != "handle":
            return await super().call(actor_id, method, *args, **kwargs)  # type: ignore[misc]
        self.calls += 1
        self.items += len(args[0])
        result = await super().call(actor_id, method, *args, **kwargs)  # type: ignore[misc]
        self.answered += 1
        return result


class CountingRoomClient(_Counted, RoomClient):
    """The gateway's own ``RoomClient``, counting its calls."""


class CountingActorClient(_Counted, ActorClient):
    """The same batching client, pointed at the bare actor (a Ray actor of its own, not an
    entity: the baseline is one process doing nothing but counting)."""

    bare_actor = ""
    _bare: Any = None

    async def actor(self, key: str) -> Any:
        if self._bare is None:
            self._bare = await asyncio.to_thread(_bare_handle, self.bare_actor)
        return self._bare


def _bare_handle(name: str) -> Any | None:
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


async def _exists(_key: str) -> bool:
    return True


@dataclass
class WorkerPlan:
    """What one worker process needs (picklable)."""

    ray_address: str
    settings: Settings
    room: str
    bare_room: str
    bare_actor: str
    gateways: list[int]
    total_gateways: int
    viewers: int
    rates: dict[str, float]
    chatters: int
    reactors: int
    step: float


@dataclass(eq=False)
class SimGateway:
    """One simulated gateway: its own call streams and its own pub/sub connection."""

    index: int
    gateway_id: str
    room: CountingRoomClient
    bare: CountingActorClient
    subscriber: RedisSubscriber | None = None
    #: Per channel (room id): (sent, received, bytes, events) of every message.
    messages: dict[str, list[tuple[float, float, int, int]]] = field(default_factory=dict)
    last_offset: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    dups: dict[str, int] = field(default_factory=dict)

    def on_message(self, room_id: str, payload: bytes) -> None:
        """As a gateway's hub: decode once; then check offsets and time the delivery."""
        received = time.time()
        message = msgpack.unpackb(payload, raw=False)
        events = message.get("events") or ()
        self.messages.setdefault(room_id, []).append(
            (float(message.get("sent") or math.nan), received, len(payload), len(events))
        )
        if not events:
            return
        first, last = events[0]["offset"], events[-1]["offset"]
        held = self.last_offset.get(room_id)
        if held is not None:
            if first > held + 1:
                self.gaps[room_id] = self.gaps.get(room_id, 0) + 1
                self.missing[room_id] = self.missing.get(room_id, 0) + first - held - 1
            elif first <= held:
                self.dups[room_id] = self.dups.get(room_id, 0) + 1
        self.last_offset[room_id] = max(last, held or 0)


@dataclass
class Stream:
    """One kind of command on the global schedule: command j at t0 + j / rate."""

    kind: str
    rate: float
    total: int
    make: Callable[[int, SimGateway], Command]
    next: int = 0


class Tally:
    """Answers of one phase in one worker."""

    def __init__(self) -> None:
        self.submitted = 0
        self.ok: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.outstanding = 0
        #: Answer latency of every command from its submit (the gateway's view), and once per
        #: pacing step how late this process submitted the oldest command due (its own lag).
        self.latency = array.array("d")
        self.lag = array.array("d")
        self.skipped = 0
        self.t_last_ok = 0.0
        self.done = asyncio.Event()
        self.schedule_over = False

    def answered(self, kind: str, submitted: float, fut: asyncio.Future[Any]) -> None:
        now = time.monotonic()
        self.outstanding -= 1
        exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
        if exc is None:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            self.latency.append(now - submitted)
            self.t_last_ok = now
        else:
            code = f"{kind}:{getattr(exc, 'code', type(exc).__name__)}"
            self.errors[code] = self.errors.get(code, 0) + 1
        if self.schedule_over and self.outstanding <= 0:
            self.done.set()


def _local_count(a: int, b: int, gateways: int, local: dict[int, SimGateway]) -> int:
    """How many of the global indices a <= j < b go to this worker's gateways."""

    def below(n: int, g: int) -> int:
        return max(0, (n - g + gateways - 1) // gateways)

    return sum(below(b, g) - below(a, g) for g in local)


class Worker:
    """Some of the show's gateways, in one process."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.gateways: list[SimGateway] = []
        self.local: dict[int, SimGateway] = {}
        self._pool: Any = None

    async def setup(self) -> dict[str, Any]:
        from liveshop.storage.pool import create_pool
        from liveshop.storage.rooms import RoomStore

        p, s = self.plan, self.plan.settings
        started = time.monotonic()
        assert s.database_url and s.redis_url
        self._pool = await create_pool(s.database_url, min_size=1, max_size=2)
        store = RoomStore(self._pool)
        for g in p.gateways:
            bare = CountingActorClient(
                s,
                self._pool,
                exists=_exists,
                missing=lambda key: NotFound(f"no bare actor {key!r}"),
            )
            bare.bare_actor = p.bare_actor
            gw = SimGateway(g, f"bench-gw-{g}", CountingRoomClient(s, store), bare)
            self.gateways.append(gw)
            self.local[g] = gw

        async def connect(gw: SimGateway) -> None:
            assert s.redis_url
            gw.subscriber = RedisSubscriber(s.redis_url, gw.on_message)
            await gw.subscriber.start()
            await gw.subscriber.subscribe(p.room)
            await gw.subscriber.subscribe(p.bare_room)
            # Warm up both call paths (actor lookup, first connection) and report this
            # gateway's viewers, so that the room's tick is already stretched at t0.
            report = ReportViewers(gw.gateway_id, p.viewers // p.total_gateways)
            await gw.room.send(p.room, report)
            await gw.bare.submit(p.bare_actor, "handle", report)

        await asyncio.gather(*(connect(gw) for gw in self.gateways))
        return {"pid": os.getpid(), "gateways": len(self.gateways),
                "seconds": time.monotonic() - started}  # fmt: skip

    def _streams(self, duration: float) -> list[Stream]:
        p = self.plan
        per_gateway = p.viewers // p.total_gateways

        def viewer(n: int) -> Actor:
            return Actor(f"viewer-{n}", f"Viewer {n}", VIEWER_ROLES)

        def chat(j: int, _gw: SimGateway) -> Command:
            return Chat(viewer(j % p.chatters), f"love this deal, is it in blue? #{j}")

        def react(j: int, _gw: SimGateway) -> Command:
            return React(viewer(j % p.reactors), REACTION_KINDS[j % len(REACTION_KINDS)])

        def join(j: int, _gw: SimGateway) -> Command:
            return Joined(viewer(p.viewers + j))  # new arrivals: ids nobody else uses

        def report(_j: int, gw: SimGateway) -> Command:
            return ReportViewers(gw.gateway_id, per_gateway)

        makers = {"chat": chat, "react": react, "join": join, "report": report}
        return [
            Stream(kind, rate, int(rate * duration), makers[kind])
            for kind, rate in p.rates.items()
            if rate > 0
        ]

    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        """Send this worker's share of the schedule to ``arg['target']`` (room or bare),
        wait for the answers and the last ticks, and report everything raw."""
        p = self.plan
        target, t0, duration = arg["target"], arg["t0"], arg["duration"]
        channel = p.room if target == "room" else p.bare_room
        key = p.room if target == "room" else p.bare_actor
        for gw in self.gateways:
            gw.messages[channel] = []
            client = gw.room if target == "room" else gw.bare
            client.calls = client.items = client.answered = 0
        tally = Tally()
        streams = self._streams(duration)
        G = p.total_gateways
        local = self.local
        monotonic = time.monotonic
        end = t0 + duration
        cutoff = end + max(duration, 10.0)
        await asyncio.sleep(max(0.0, t0 - monotonic()))
        while True:
            now = monotonic()
            elapsed = now - t0
            pending = False
            for st in streams:
                due = min(st.total, int(elapsed * st.rate) + 1)
                if due > st.next:
                    tally.lag.append(now - (t0 + st.next / st.rate))
                answered = functools.partial(tally.answered, st.kind, now)
                for j in range(st.next, due):
                    sim = local.get(j % G)
                    if sim is None:
                        continue
                    client = sim.room if target == "room" else sim.bare
                    fut = client.submit(key, "handle", st.make(j, sim))
                    tally.submitted += 1
                    tally.outstanding += 1
                    fut.add_done_callback(answered)
                st.next = due
                pending = pending or st.next < st.total
            if not pending:
                break
            if now > cutoff:  # this process cannot keep up with the schedule: stop offering
                tally.skipped = sum(_local_count(st.next, st.total, G, local) for st in streams)
                break
            await asyncio.sleep(p.step)
        tally.schedule_over = True
        if tally.outstanding <= 0:
            tally.done.set()
        # Every call ends within actor_call_timeout (then "unavailable"): wait for all of them,
        # so that nothing of this phase is still in flight in the next one.
        over = max(end, monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.done.wait(), max(0.0, over + arg["drain"] - monotonic()))
        await asyncio.sleep(max(0.0, end + arg["listen"] - monotonic()))
        clients = [gw.room if target == "room" else gw.bare for gw in self.gateways]
        return {
            "submitted": tally.submitted,
            "ok": tally.ok,
            "errors": tally.errors,
            "unanswered": tally.outstanding,
            "skipped": tally.skipped,
            "latency": tally.latency.tobytes(),
            "lag": tally.lag.tobytes(),
            "t_last_ok": tally.t_last_ok,
            "calls": sum(c.calls for c in clients),
            "items": sum(c.items for c in clients),
            "answered_calls": sum(c.answered for c in clients),
            "messages": [gw.messages[channel] for gw in self.gateways],
            "gaps": sum(gw.gaps.get(channel, 0) for gw in self.gateways),
            "missing": sum(gw.missing.get(channel, 0) for gw in self.gateways),
            "dups": sum(gw.dups.get(channel, 0) for gw in self.gateways),
            "reconnects": sum(gw.subscriber.reconnects for gw in self.gateways if gw.subscriber),
        }

    async def close(self) -> None:
        async def one(gw: SimGateway) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(gw.room.close(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(gw.bare.close(), 5)
            if gw.subscriber is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(gw.subscriber.close(), 5)

        await asyncio.gather(*(one(gw) for gw in self.gateways))
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)


async def _worker_loop(conn: Conn, plan: WorkerPlan) -> None:
    worker = Worker(plan)
    try:
        conn.send(("ready", await worker.setup()))
        while True:
            command, arg = await asyncio.to_thread(conn.recv)
            if command == "run":
                conn.send(("done", await worker.run(arg)))
            else:  # exit
                return
    finally:
        await worker.close()


def worker_process(conn: Conn) -> None:
    """A process of simulated gateways: a Ray driver on the benchmark's cluster."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    import ray

    command, plan = conn.recv()
    assert command == "setup"
    ray.init(
        address=plan.ray_address, namespace=NAMESPACE, log_to_driver=False,
        configure_logging=False,
    )  # fmt: skip
    try:
        uvloop.run(_worker_loop(conn, plan))
    finally:
        ray.shutdown()


# -- the baseline ------------------------------------------------------------------------------


class BareCounter:
    """The baseline actor: takes the room actor's batches and only counts them."""

    def __init__(self) -> None:
        self.batches = 0
        self.commands = 0

    async def handle(self, batch: list[Any]) -> list[dict[str, Any]]:
        self.batches += 1
        self.commands += len(batch)
        return [{} for _ in batch]

    async def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "commands": self.commands, "flushes": 0}

    async def pid(self) -> int:
        return os.getpid()


async def bare_publish(
    redis_url: str, room: str, t0: float, duration: float, rate: float, size: int
) -> int:
    """Publish ``size``-byte messages (msgpack, with offsets and ``sent``, like a room's) to
    ``room``'s channel at ``rate``/s over the window; returns how many."""
    publisher = RedisPublisher(redis_url)
    base = {"room": room, "epoch": "bare", "events": [{"offset": 0}], "state": {}, "sent": 0.0}
    pad = b"x" * max(0, size - len(msgpack.packb(base)) - 8)
    sent = 0
    try:
        while True:
            at = t0 + sent / rate
            if at >= t0 + duration:
                return sent
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            message = {"room": room, "epoch": "bare", "events": [{"offset": sent + 1}],
                       "state": {"pad": pad}, "sent": time.time()}  # fmt: skip
            await publisher.publish(room, msgpack.packb(message, use_bin_type=True))
            sent += 1
    finally:
        await publisher.close()


# -- CPU ---------------------------------------------------------------------------------------


class ShowCpu(CpuMeter):
    """bench_room's meter, keeping the figures (to say who set the pace) and the machine's
    total (others share this machine)."""

    def __init__(self, procs: dict[str, list[psutil.Process]]) -> None:
        super().__init__(procs)
        self.shares: dict[str, float] = {}
        self.machine = math.nan

    def start(self) -> None:
        super().start()
        psutil.cpu_percent(None)

    def stop(self) -> str:
        for name, procs in self.procs.items():
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.cpu_percent(None)
            self.shares[name] = total
        cores = psutil.cpu_count() or 1
        self.machine = psutil.cpu_percent(None) * cores
        others = max(0.0, self.machine - sum(self.shares.values()))
        parts = [f"{name} {share:.0f}%" for name, share in self.shares.items()]
        return (
            "CPU (100% = one core): " + ", ".join(parts)
            + f"; machine {self.machine:.0f}% of {cores * 100}% (others {others:.0f}%)"
        )  # fmt: skip

    def pace(self) -> str:
        """Who set the pace: a saturated process, else the machine when it was full."""
        if not self.shares:
            return "n/a"
        cores = psutil.cpu_count() or 1
        name, share = max(self.shares.items(), key=lambda kv: kv[1])
        gateways = sum(v for k, v in self.shares.items() if k.startswith("worker"))
        actor = sum(v for k, v in self.shares.items() if k.endswith("actor"))
        text = (
            f"busiest {name} {share:.0f}%; simulated gateways {gateways:.0f}% in all, "
            f"actor {actor:.0f}%"
        )
        if share >= 90:
            return f"{name} saturated one core and set the pace ({text})"
        if self.machine >= 90 * cores:
            return (
                f"the machine was full ({self.machine:.0f}% of {cores * 100}%): the "
                f"{cores} cores set the pace, shared by callers and callee ({text})"
            )
        return f"nobody saturated ({text})"


def _cpu_seconds(pid: int | None) -> float:
    if not pid:
        return math.nan
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return math.nan
    return float(t.user + t.system)


# -- the run -----------------------------------------------------------------------------------


class ShowStack(LiveshopUnderTest):
    """bench_fanout's stack without the Serve apps: storage and Ray only, because the
    gateways here are simulated (their client halves only)."""

    def start(self) -> None:
        say = _say("liveshop")
        self.stack.start_storage(say)
        os.environ["RAY_ADDRESS"] = "local"  # see LiveshopUnderTest.start
        self.stack.start_ray(None, say)
        signal.signal(signal.SIGTERM, _raise_interrupt)


@dataclass
class Phase:
    target: str
    workers: list[dict[str, Any]]
    cpu: ShowCpu
    cpu_line: str
    stats_before: dict[str, Any] | None
    stats_after: dict[str, Any] | None
    #: CPU seconds over the whole phase (load and drain) of the actor and of the workers.
    actor_cpu: float
    workers_cpu: float
    published: int = 0


def _room_setup(settings: Settings, room: str) -> tuple[Any, int]:
    """Create the room in PostgreSQL, then its actor the way a gateway does (RoomClient);
    returns the handle and the actor's process id."""
    import ray

    from liveshop.rooms.room import RoomInfo
    from liveshop.storage.pool import create_pool
    from liveshop.storage.rooms import RoomStore

    async def go() -> Any:
        assert settings.database_url
        pool = await create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            store = RoomStore(pool)
            await store.create_room(RoomInfo(room, "A million-viewer show"), epoch="show-1")
            client = RoomClient(settings, store)
            await asyncio.wait_for(client.call(room, "stats"), 60)  # activated
            return await client.actor(room)
        finally:
            await pool.close()

    handle = asyncio.run(go())
    # The room's host process (the room is its only entity in this benchmark).
    pid = ray.get(handle.host.__ray_call__.remote(lambda _self: os.getpid()), timeout=60)
    return handle, int(pid)


def _stats(handle: Any) -> dict[str, Any] | None:
    """The actor's counters, or None if it does not answer in time (a backlog)."""
    import ray

    try:
        stats: dict[str, Any] = ray.get(handle.stats.remote(), timeout=STATS_LIMIT)
    except Exception:
        return None
    return stats


def _processes(pids: dict[str, int | None]) -> dict[str, list[psutil.Process]]:
    """The named processes, and the rest of our descendants (Ray's GCS, raylet, idle
    workers, ...) as 'ray system'."""
    procs: dict[str, list[psutil.Process]] = {}
    known: set[int] = set()
    for name, pid in pids.items():
        if pid:
            with contextlib.suppress(psutil.Error):
                procs[name] = [psutil.Process(pid)]
                known.add(pid)
    rest = [p for p in psutil.Process().children(recursive=True) if p.pid not in known]
    procs["ray system"] = rest
    return procs


def run_phase(
    target: str,
    conns: list[Conn],
    handle: Any,
    pids: dict[str, int | None],
    args: argparse.Namespace,
    redis_url: str,
    bare: dict[str, Any] | None = None,
) -> Phase:
    """One timed phase against the room or the bare actor (and the bare publisher)."""
    actor_pid = pids.get("room actor" if target == "room" else "bare actor")
    worker_pids = [pid for name, pid in pids.items() if name.startswith("worker")]
    stats_before = _stats(handle)
    cpu_before = _cpu_seconds(actor_pid), sum(_cpu_seconds(pid) for pid in worker_pids)
    meter = ShowCpu(_processes(pids))
    lead = 1.5
    t0 = time.monotonic() + lead
    t0_wall = time.time() + lead
    for conn in conns:
        conn.send(("run", {"target": target, "t0": t0, "t0_wall": t0_wall,
                           "duration": args.duration, "drain": args.drain,
                           "listen": args.max_tick_seen + LISTEN_AFTER}))  # fmt: skip
    time.sleep(max(0.0, t0 - time.monotonic()))
    meter.start()
    published = 0
    if bare is not None:
        published = uvloop.run(
            bare_publish(redis_url, bare["room"], t0, args.duration, bare["rate"], bare["size"])
        )
    time.sleep(max(0.0, t0 + args.duration - time.monotonic()))
    cpu_line = meter.stop()
    # The workers stop offering 1 x duration late at most, then drain.
    limit = 2 * args.duration + 10 + args.drain + args.max_tick_seen + LISTEN_AFTER + 60
    results = [_answer(conn, "done", max(1.0, t0 + limit - time.monotonic())) for conn in conns]
    for r in results:
        r["t0"], r["t0_wall"] = t0, t0_wall
    stats_after = _stats(handle)
    actor_cpu = _cpu_seconds(actor_pid) - cpu_before[0]
    workers_cpu = sum(_cpu_seconds(pid) for pid in worker_pids) - cpu_before[1]
    return Phase(target, results, meter, cpu_line, stats_before, stats_after, actor_cpu,
                 workers_cpu, published)  # fmt: skip


def calibrate(handle: Any, pid: int, batch: int, calls: int) -> tuple[float, float]:
    """CPU seconds the actor spends per call of ``batch`` reactions (the bulk of the show's
    commands), over ``calls`` calls from this process, 64 in flight; and the calls/s that
    one caller got through. The phase's own figure mixes in ticks, commits and whatever
    the simulated gateways' lateness did to the batches; this one is the actor's cost alone
    at the batch size the gateways' batchers settled on."""
    commands = [React(Actor(f"cal-{i}", f"Cal {i}", VIEWER_ROLES), "heart") for i in range(batch)]

    async def go() -> None:
        gate = asyncio.Semaphore(64)

        async def one() -> None:
            async with gate:
                await handle.handle.remote(commands)

        await asyncio.gather(*(one() for _ in range(calls)))

    before, started = _cpu_seconds(pid), time.monotonic()
    asyncio.run(asyncio.wait_for(go(), CALIBRATE_LIMIT))
    took = time.monotonic() - started
    return (_cpu_seconds(pid) - before) / calls, calls / took


def _ms(p: dict[str, float] | None, key: str) -> str:
    return f"{p[key] * 1000:.1f}" if p else "n/a"


@dataclass
class Summary:
    offered: float
    applied: float
    calls: float
    batch: float
    answer: dict[str, float] | None
    fanout: dict[str, float] | None
    ticks: float
    size: float
    redis_out: float
    #: The actor's CPU seconds per call it handled (nan if unknown).
    per_call: float
    lines: list[str]


def summarize(phase: Phase, args: argparse.Namespace, offered_total: int) -> Summary:
    """Merge the workers' raw figures into the phase's figures and report lines."""
    ws = phase.workers
    d, G = args.duration, args.gateways
    t0, t0_wall = ws[0]["t0"], ws[0]["t0_wall"]
    ok: dict[str, int] = {}
    errors: dict[str, int] = {}
    for w in ws:
        for k, n in w["ok"].items():
            ok[k] = ok.get(k, 0) + n
        for k, n in w["errors"].items():
            errors[k] = errors.get(k, 0) + n
    ok_total = sum(ok.values())
    submitted = sum(w["submitted"] for w in ws)
    skipped = sum(w["skipped"] for w in ws)
    unanswered = sum(w["unanswered"] for w in ws)
    t_last = max((w["t_last_ok"] for w in ws), default=0.0)
    span = max(d, t_last - t0) if t_last else d
    applied = ok_total / span
    calls = sum(w["calls"] for w in ws)
    items = sum(w["items"] for w in ws)
    arrays = {k: array.array("d") for k in ("latency", "lag")}
    for w in ws:
        for k, a in arrays.items():
            a.frombytes(w[k])
    answer = _percentiles(arrays["latency"])
    lag = _percentiles(arrays["lag"])
    # Subscribers: the messages published within the window.
    counts: list[int] = []
    delivery = array.array("d")
    sizes = events = 0
    for w in ws:
        for msgs in w["messages"]:
            inside = [m for m in msgs if t0_wall <= m[0] < t0_wall + d]
            counts.append(len(inside))
            delivery.extend(m[1] - m[0] for m in inside)
            sizes += sum(m[2] for m in inside)
            events += sum(m[3] for m in inside)
    received = sum(counts)
    fanout = _percentiles(delivery)
    ticks = received / G / d
    size = sizes / received if received else 0.0
    per_message = events / received if received else 0.0
    missed = sum(max(counts) - c for c in counts) if counts else 0
    gaps, missing, dups, reconnects = (
        sum(w[k] for w in ws) for k in ("gaps", "missing", "dups", "reconnects")
    )
    batch = items / calls if calls else 0.0
    lines = [
        f"  commands: offered {offered_total / d:.0f}/s ({offered_total} in {d:g} s), "
        f"submitted {submitted}" + (f" ({skipped} never: we fell too far behind)" if skipped
                                    else "")
        + f", answered ok {ok_total} = {applied:.0f}/s over {span:.1f} s {ok}, errors "
        f"{errors or 'none'}" + (f", unanswered {unanswered} (still in flight after the "
                                 "drain: they may disturb the next phase)" if unanswered else ""),
        f"  calls: {calls} = {calls / d:.0f}/s from {G} streams, mean batch {batch:.1f}; "
        f"answer ms from submit p50 {_ms(answer, 'p50')} p99 {_ms(answer, 'p99')} max "
        f"{_ms(answer, 'max')} (our own lateness on the schedule p50 {_ms(lag, 'p50')} p99 "
        f"{_ms(lag, 'p99')})",
        f"  fan-out: {ticks:.2f} ticks/s ({received} messages to {G} subscribers, {size:.0f} B "
        f"and {per_message:.1f} events each), publish->deliver ms p50 {_ms(fanout, 'p50')} "
        f"p99 {_ms(fanout, 'p99')} max {_ms(fanout, 'max')}; missed {missed} (offset gaps "
        f"{gaps}, {missing} events skipped, {dups} repeats, {reconnects} reconnects); Redis "
        f"out {G * ticks:.0f} msg/s, {G * ticks * size / 1e6:.2f} MB/s",
    ]  # fmt: skip
    before, after = phase.stats_before, phase.stats_after
    per_call = math.nan
    if before and after:
        batches = after["batches"] - before["batches"]
        commands = after["commands"] - before["commands"]
        flushes = after["flushes"] - before["flushes"]
        if batches and phase.actor_cpu > 0:
            per_call = phase.actor_cpu / batches
        lines.append(
            f"  the actor's own count: {commands} commands in {batches} calls (batch "
            f"{commands / batches if batches else 0:.1f})"
            + (f", {flushes} ticks published, viewers {after.get('viewers')}"
               if phase.target == "room" else "")
            + f"; its CPU {phase.actor_cpu:.1f} s = {per_call * 1e6:.0f} us per call, "
            f"{phase.actor_cpu / commands * 1e6 if commands else math.nan:.1f} us per command: "
            f"one core takes ~{1 / per_call if per_call > 0 else math.nan:.0f} calls/s"
        )  # fmt: skip
    else:
        # Still working through a backlog: count the calls it answered before the callers
        # gave up on them (fewer than it handled: the cost per call is an upper bound).
        done = sum(w["answered_calls"] for w in ws)
        if done and phase.actor_cpu > 0:
            per_call = phase.actor_cpu / done
        lines.append(
            f"  the actor's own count: n/a (no answer to stats within {STATS_LIMIT:.0f} s: "
            f"a backlog); it answered {done} calls in time; its CPU {phase.actor_cpu:.1f} s = "
            f"<= {per_call * 1e6:.0f} us per call"
        )
    if calls:
        lines.append(
            f"  simulated gateways' CPU {phase.workers_cpu:.1f} s = "
            f"{phase.workers_cpu / calls * 1e6:.0f} us per call made (submits, answers and "
            "their pub/sub reading included)"
        )
    if phase.published:
        lines.append(f"  bare publisher: {phase.published} messages sent")
    lines.append(f"  {phase.cpu_line}")
    lines.append(f"  pace: {phase.cpu.pace()}")
    return Summary(offered_total / d, applied, calls / d, batch, answer, fanout, ticks, size,
                   G * ticks, per_call, lines)  # fmt: skip


def _redis_pid(stack: Any, url: str) -> int | None:
    if stack.redis is not None:
        pid: int | None = stack.redis.pid()
        return pid
    port = int(url.rsplit(":", 1)[-1].split("/")[0])
    with contextlib.suppress(psutil.Error):
        for c in psutil.net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return int(c.pid)
    return None


def rates(args: argparse.Namespace) -> dict[str, float]:
    v = args.viewers
    return {
        "chat": args.chat_rate if args.chat_rate is not None else v * CHAT_SHARE / CHAT_EVERY,
        "react": args.react_rate if args.react_rate is not None else v * REACT_SHARE / REACT_EVERY,
        "join": args.join_rate if args.join_rate is not None else v / ARRIVAL_SECONDS,
        "report": args.gateways / REPORT_EVERY,
    }


def run(args: argparse.Namespace) -> int:
    import ray

    from liveshop.actors.room_actor import tick_interval
    from liveshop.mesh.options import HOST_ACTOR_OPTIONS

    r = rates(args)
    offered_total = sum(int(rate * args.duration) for rate in r.values())
    G, W = args.gateways, min(args.workers, args.gateways)
    print(
        f"show: {args.viewers} viewers on {G} gateways ({args.viewers // G} each) in {W} "
        f"worker processes, {args.duration:g} s; offered/s: chat {r['chat']:.0f}, reactions "
        f"{r['react']:.0f}, joins {r['join']:.0f}, viewer reports {r['report']:.0f} "
        f"(total {offered_total / args.duration:.0f}/s, {offered_total / args.duration / G:.0f}/s "
        "per gateway)",
        flush=True,
    )
    _raise_fd_limit(8 * G + 256)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Ray
    data_dir = Path(tempfile.mkdtemp(prefix="liveshop-show-"))
    procs: list[tuple[multiprocessing.process.BaseProcess, Conn]] = []
    stack: ShowStack | None = None
    finished = False
    try:
        started = time.monotonic()
        stack = ShowStack(data_dir, argparse.Namespace(**{**vars(args), "gateways": 1}))
        stack.start()
        settings = stack.stack.settings
        assert settings.database_url and settings.redis_url and stack.stack.ray_address
        args.max_tick_seen = settings.max_tick
        tick = tick_interval(settings, args.viewers)
        room = f"show-{secrets.token_hex(3)}"
        handle, room_pid = _room_setup(settings, room)
        bare_name = f"bench-bare-{secrets.token_hex(3)}"
        options = {k: v for k, v in HOST_ACTOR_OPTIONS.items() if k != "lifetime"}
        bare_handle = ray.remote(BareCounter).options(name=bare_name, **options).remote()
        bare_pid = int(ray.get(bare_handle.pid.remote(), timeout=60))
        print(f"  room {room!r} actor pid {room_pid}, bare actor pid {bare_pid}; room tick at "
              f"{args.viewers} viewers: {tick * 1000:.0f} ms; ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        chatters = max(1, round(r["chat"] * CHAT_EVERY))
        reactors = max(1, round(args.viewers * REACT_SHARE))
        for w in range(W):
            plan = WorkerPlan(
                ray_address=stack.stack.ray_address, settings=settings, room=room,
                bare_room=f"{room}-bare", bare_actor=bare_name,
                gateways=[g for g in range(G) if g % W == w], total_gateways=G,
                viewers=args.viewers, rates=r, chatters=chatters, reactors=reactors,
                step=args.step,
            )  # fmt: skip
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_process, args=(child,), name=f"show-gw-{w}",
                               daemon=True)  # fmt: skip
            proc.start()
            procs.append((proc, parent))
            parent.send(("setup", plan))
        for w, (_proc, conn) in enumerate(procs):
            ready = _answer(conn, "ready", WORKER_SETUP_LIMIT)
            print(f"  worker {w}: {ready['gateways']} gateways ready in {ready['seconds']:.1f} s",
                  flush=True)  # fmt: skip
        conns = [conn for _, conn in procs]
        pids: dict[str, int | None] = {
            "room actor": room_pid,
            "redis": _redis_pid(stack.stack, settings.redis_url),
            "postgres": stack.stack.postgres.pid() if stack.stack.postgres else None,
            **{f"worker {w}": proc.pid for w, (proc, _) in enumerate(procs)},
            "main": os.getpid(),
        }
        print(f"room: {G} call streams -> room actor, {G} subscribers", flush=True)
        room_phase = run_phase("room", conns, handle, pids, args, settings.redis_url)
        ours = summarize(room_phase, args, offered_total)
        print("\n".join(ours.lines), flush=True)
        batch = max(1, round(ours.batch))
        cal_room, through_room = calibrate(handle, room_pid, batch, CALIBRATE_CALLS)
        cal_bare, through_bare = calibrate(bare_handle, bare_pid, batch, CALIBRATE_CALLS)
        print(f"calibration: {CALIBRATE_CALLS} calls of {batch} reactions (the room phase's "
              f"mean batch) cost the room actor {cal_room * 1e6:.0f} us of CPU each, the bare "
              f"actor {cal_bare * 1e6:.0f} us; one caller, 64 in flight, got "
              f"{through_room:.0f} and {through_bare:.0f} calls/s through", flush=True)  # fmt: skip
        # A backlog must not run on into the baseline's time.
        with contextlib.suppress(Exception):
            ray.kill(handle.host, no_restart=True)
        bare_rate = ours.ticks if ours.ticks > 0 else 1 / tick
        bare_size = round(ours.size) if ours.size > 0 else 1024
        print(f"bare: {G} call streams -> bare actor, bare publisher {bare_rate:.2f} msg/s of "
              f"{bare_size} B -> {G} subscribers", flush=True)  # fmt: skip
        pids = {**pids, "room actor": None, "bare actor": bare_pid}
        bare_phase = run_phase(
            "bare", conns, bare_handle, pids, args, settings.redis_url,
            bare={"room": f"{room}-bare", "rate": bare_rate, "size": bare_size},
        )  # fmt: skip
        theirs = summarize(bare_phase, args, offered_total)
        print("\n".join(theirs.lines), flush=True)
        finished = True
    except KeyboardInterrupt:
        print("interrupted; stopping", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for worker_proc, conn in procs:
            if not finished:  # a worker in the middle of a phase reads no "exit" until its end
                worker_proc.terminate()
            _stop_process(worker_proc, conn, ("exit", {}))
        try:
            if stack is not None:
                stack.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    # Gateways keep at most max_calls_in_flight calls out per room, so the actor is never
    # asked for more calls than it answers: its load is commands, in batches of this size.
    need = ours.offered / batch * cal_room
    print(
        f"verdict: {G} gateways' batchers ({settings.max_calls_in_flight} calls in flight each) "
        f"sent batches of ~{batch} commands; at {cal_room * 1e6:.0f} us of the room actor's CPU "
        f"per call (bare actor {cal_bare * 1e6:.0f} us) the offered {ours.offered:.0f} cmd/s "
        f"take {need:.2f} of a core: it {'keeps up' if need <= 1.0 else 'cannot keep up'} "
        f"(one core: ~{batch / cal_room:.0f} cmd/s at that batch)",
        flush=True,
    )
    ratio = ours.applied / ours.offered if ours.offered else math.nan
    print(
        f"show viewers={args.viewers} gateways={G}: room applied {ours.applied:.0f} cmd/s of "
        f"{ours.offered:.0f} offered ({ours.calls:.0f} calls/s, batch {ours.batch:.1f}), fan-out "
        f"p99 {_ms(ours.fanout, 'p99')} ms to {G} subscribers, Redis {ours.redis_out:.0f} msg/s; "
        f"bare actor {theirs.applied:.0f} cmd/s ({theirs.calls:.0f} calls/s, fan-out p99 "
        f"{_ms(theirs.fanout, 'p99')} ms); room actor needs {need:.2f} core at batch {batch}; "
        f"keeps up ratio {ratio:.2f}",
        flush=True,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        conflict_handler="resolve",  # our --gateways replaces bench_fanout's
    )
    add_service_args(parser)
    parser.add_argument("--viewers", type=int, default=1_000_000, help="the show's audience")
    parser.add_argument(
        "--gateways", type=int, default=100,
        help=f"simulated gateway processes (default 100: ~{VIEWERS_PER_GATEWAY} viewers each)",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--chat-rate", type=float, help="chats/s (default viewers/3000)")
    parser.add_argument("--react-rate", type=float, help="reaction taps/s (default viewers/20)")
    parser.add_argument("--join-rate", type=float, help="joins/s (default viewers/600)")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes the simulated gateways are spread over"
    )
    parser.add_argument(
        "--step", type=float, default=0.001, help="the schedule's pacing step in a worker, s"
    )
    parser.add_argument(
        "--drain", type=float, default=30.0,
        help="seconds to wait for the last answers after the schedule (a call times out 10 s "
        "after it leaves, but an overloaded worker starts its calls late)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.viewers < 1 or args.gateways < 1 or args.workers < 1 or args.duration <= 0:
        sys.exit("--viewers, --gateways and --workers must be >= 1, --duration > 0")
    if any(x is not None and x < 0 for x in (args.chat_rate, args.react_rate, args.join_rate)):
        sys.exit("rates must be >= 0")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
