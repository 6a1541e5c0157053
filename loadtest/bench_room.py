"""Room benchmarks: latency under load, memory per idle connection, reconnect storm.

    python loadtest/bench_room.py --scenario latency [--clients 10000] [--duration 20]
    python loadtest/bench_room.py --scenario memory  [--clients 10000]
    python loadtest/bench_room.py --scenario storm   [--clients 10000]

The viewers run in one separate process (asyncio + uvloop, no compression), the publishers in
this process; liveshop is a whole local stack (as in bench_fanout.py: embedded PostgreSQL and
Redis unless configured, Ray, the Serve-managed gateway, room ``demo``). The baseline is a bare
``websockets`` server in its own process speaking just enough of the protocol.

* ``latency``: N viewers, one room, ``--chat-rate`` chat messages/s (host tokens, several
  connections) and ``--react-rate`` reactions/s (viewer tokens, several connections) for
  ``--duration`` s. Each chat text carries its send time (``time.time()``); each viewer takes
  receive time - send time for every chat event. Same clients and schedule against the bare
  server (which broadcasts each chat at once and the reaction counts every 50 ms).
  Last line: ``latency N=.. chat=../s react=../s: liveshop p50 .. ms p99 .. ms, bare p50 ..
  p99 .., p99 ratio R`` (R = liveshop p99 / bare p99).
* ``memory``: RSS of the gateway replica process before and after N idle subscribed
  connections, per connection; the same for the bare server. Last line: ``memory N=..:
  liveshop X KiB/conn, bare Y KiB/conn, ratio X/Y``.
* ``storm``: N viewers subscribed while a host chats at ``--storm-rate``/s; every viewer
  closes and reconnects within ``--storm-spread`` s, resubscribing with ``since`` = its last
  (offset, epoch); afterwards every viewer must hold every offset from its first to the last
  chat. The bare server cannot recover, so the ratio is viewers complete / viewers. Last
  line: ``storm N=..: .. complete, recovered true .. false .., all recovered in .. s, ratio R``.

Only loopback traffic; every phase has a time limit; everything started here is stopped.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import random
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import (  # a sibling script, not an installed module
    CONNECT_CONCURRENCY,
    ROOM,
    Conn,
    LiveshopUnderTest,
    _answer,
    _ask,
    _dumps,
    _reply,
    add_service_args,
    harness,
)
from lean_ws import LeanSocket

#: Reconnects in flight at once during the storm (the drops are spread over time anyway).
STORM_CONCURRENCY = 256


# -- the viewers (their own process) -------------------------------------------------------


@dataclass(eq=False)
class Viewer:
    token: str
    sock: LeanSocket
    epoch: str
    last_offset: int
    first_offset: int
    got: int = 0
    gaps: int = 0
    dups: int = 0
    recovered: bool | None = None
    reconnect_s: float | None = None
    retries: int = 0
    closed: str | None = None
    done: bool = False


class Crowd:
    """N viewers of one room, in one of three modes: latency, idle (memory), track (storm).

    Each viewer is one ``LeanSocket`` whose pushes arrive as callbacks: no task per viewer.
    """

    def __init__(self, url: str, mode: str, marker: str, sample: int = 0) -> None:
        self.url = url
        self.mode = mode
        self.marker = marker
        self.marker_bytes = marker.encode()
        #: Latency: how many viewers (chosen at random) decode pushes and time every chat;
        #: the others count the chats in each push without decoding it (bytes.count), so
        #: that one process can follow 10,000 viewers at 100 chats/s.
        self.sample = sample
        self.viewers: list[Viewer] = []
        self.failures: list[str] = []
        self.latencies = array.array("d")
        #: The same deliveries split at the event's ``ts`` (when the room applied it): send to
        #: room, room to viewer. Tells whether time is lost on the way in or on the way out.
        self.to_room = array.array("d")
        self.expected = 0
        self.remaining = 0
        self.all_done = asyncio.Event()
        self.t_last: float | None = None
        self.final_offset: int | None = None
        #: Storm: seconds each reconnect spent opening the socket, on connect, on subscribe.
        self.phases: dict[str, array.array[float]] = {
            k: array.array("d") for k in ("open", "connect", "subscribe")
        }
        self.on_push = {
            "latency": self._on_latency,
            "track": self._on_track,
            "idle": None,
        }[mode]

    # opening

    async def open(self, tokens: list[str], limit: float) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        step = max(1000, len(tokens) // 10)
        joined = 0

        async def one(token: str) -> None:
            nonlocal joined
            async with gate:
                try:
                    viewer = await asyncio.wait_for(self._join(token, None), limit)
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    return
            self.viewers.append(viewer)
            joined += 1
            if joined % step == 0:
                print(f"    {joined} viewers subscribed after {time.monotonic() - started:.1f} s",
                      flush=True)  # fmt: skip

        await asyncio.gather(*(one(t) for t in tokens))
        if self.mode == "latency":
            n = len(self.viewers)
            timed = set(random.sample(range(n), min(self.sample, n)))
            for i, v in enumerate(self.viewers):
                if i not in timed:
                    v.sock.on_raw = self._on_latency_raw
        return {
            "opened": len(self.viewers),
            "failed": len(self.failures),
            "errors": sorted(set(self.failures))[:5],
            "seconds": time.monotonic() - started,
        }

    async def _join(self, token: str, old: Viewer | None) -> Viewer:
        pending: list[dict[str, Any]] = []
        t0 = time.monotonic()
        sock = await LeanSocket.open(
            self.url, lambda _sock, push: pending.append(push), self._on_close
        )
        try:
            t1 = time.monotonic()
            await sock.request({"id": 1, "op": "connect", "token": token})
            t2 = time.monotonic()
            subscribe: dict[str, Any] = {"id": 2, "op": "subscribe", "room": ROOM}
            if old is not None:
                subscribe["since"] = {"offset": old.last_offset, "epoch": old.epoch}
            snap = await sock.request(subscribe)
        except BaseException:
            sock.abort()
            raise
        if old is not None:
            for name, took in zip(
                self.phases, (t1 - t0, t2 - t1, time.monotonic() - t2), strict=True
            ):
                self.phases[name].append(took)
        offset, epoch = int(snap.get("offset", 0)), str(snap.get("epoch", ""))
        if old is None:
            viewer = Viewer(token, sock, epoch, last_offset=offset, first_offset=offset)
        else:
            viewer = old
            viewer.sock = sock
            viewer.recovered = bool(snap.get("recovered"))
            if viewer.recovered and epoch == viewer.epoch:
                self._apply(viewer, snap.get("events") or [])
                if viewer.last_offset != offset:  # the reply must bring us up to its offset
                    viewer.gaps += 1
            viewer.epoch = epoch
            viewer.last_offset = max(viewer.last_offset, offset)
        viewer.closed = None
        sock.owner = viewer
        if self.mode == "latency":
            sock.filter = self.marker_bytes  # reaction-only pushes: nothing to time
        elif self.mode == "idle":
            sock.on_raw = _ignore  # idle viewers decode nothing
        for push in pending:  # pushes are not expected before the reply; keep them anyway
            if self.on_push is not None:
                self.on_push(sock, push)
        sock.on_push = self.on_push
        return viewer

    # reading

    def _on_close(self, sock: LeanSocket) -> None:
        v: Viewer | None = sock.owner
        if v is None:
            return  # still joining (the join fails) or an old socket of a reconnected viewer
        v.closed = str(sock.close_code) if sock.close_code is not None else "no close frame"
        if self.mode == "latency" and not v.done:
            v.done = True
            self.remaining -= 1
            if self.remaining <= 0:
                self.all_done.set()

    def _on_track(self, sock: LeanSocket, message: dict[str, Any]) -> None:
        v: Viewer | None = sock.owner
        if v is None or message.get("push") != "room":
            return
        if message.get("epoch") != v.epoch:
            v.gaps += 1  # a new epoch: the history was reset under us
            v.epoch = message.get("epoch", "")
        self._apply(v, message.get("events") or [])

    def _apply(self, v: Viewer, events: list[dict[str, Any]]) -> None:
        """Storm mode: every event's offset must follow the last one held."""
        for event in events:
            offset = event["offset"]
            if offset <= v.last_offset:
                v.dups += 1
                continue
            if offset != v.last_offset + 1:
                v.gaps += 1
            v.last_offset = offset
        self._check_done(v)

    def _check_done(self, v: Viewer) -> None:
        if self.final_offset is not None and not v.done and v.last_offset >= self.final_offset:
            v.done = True
            self.remaining -= 1
            if self.remaining <= 0:
                self.all_done.set()

    def _on_latency_raw(self, sock: LeanSocket, payload: bytes) -> None:
        counted = payload.count(self.marker_bytes)
        if counted:
            self._count(sock.owner, counted)

    def _count(self, v: Viewer, counted: int) -> None:
        v.got += counted
        self.t_last = time.monotonic()
        if not v.done and v.got >= self.expected:
            v.done = True
            self.remaining -= 1
            if self.remaining <= 0:
                self.all_done.set()

    def _on_latency(self, sock: LeanSocket, message: dict[str, Any]) -> None:
        t = time.time()
        v: Viewer = sock.owner
        marker = self.marker
        counted = 0
        for event in message.get("events", ()):
            if event.get("kind") != "chat":
                continue
            text = event.get("text", "")
            if not text.startswith(marker):
                continue
            sent = float(text.rpartition(" ")[2])
            self.latencies.append(t - sent)
            self.to_room.append(event.get("ts", 0) / 1000 - sent)
            counted += 1
        if counted:
            self._count(v, counted)

    # the scenarios' waits

    async def wait_latency(self, expected: int, deadline: float) -> dict[str, Any]:
        self.expected = expected
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), max(0.0, deadline - time.monotonic()))
        closed = [v.closed for v in self.viewers if v.closed is not None]
        return {
            "received": sum(v.got for v in self.viewers),
            "timed": len(self.latencies),
            "complete": sum(1 for v in self.viewers if v.got >= expected),
            "viewers": len(self.viewers),
            "t_last": self.t_last,
            "percentiles": _percentiles(self.latencies),
            "to_room": _percentiles(self.to_room),
            "closed": len(closed),
            "close_reasons": sorted(set(closed))[:5],
        }

    async def storm(self, spread: float, limit: float) -> dict[str, Any]:
        """Every viewer drops its connection at a random time within ``spread`` s (no close
        handshake, like a phone losing its network) and resubscribes with ``since``."""
        gate = asyncio.Semaphore(STORM_CONCURRENCY)
        dups_before = sum(v.dups for v in self.viewers)
        t0 = time.monotonic()
        deadline = t0 + limit
        failures: list[str] = []
        progress = {"n": 0}
        step = max(1000, len(self.viewers) // 10)

        async def one(v: Viewer) -> None:
            await asyncio.sleep(random.uniform(0, spread))
            old = v.sock
            old.owner = None  # whatever it still delivers is not this viewer's any more
            old.abort()
            dropped = time.monotonic()
            async with gate:
                while True:
                    left = deadline - time.monotonic()
                    try:
                        if left <= 0:
                            raise TimeoutError("storm time limit reached")
                        await asyncio.wait_for(self._join(v.token, v), left)
                        break
                    except Exception as exc:
                        v.retries += 1
                        if time.monotonic() >= deadline:
                            failures.append(f"{type(exc).__name__}: {exc}"[:200])
                            v.closed = "never reconnected"
                            return
                        await asyncio.sleep(0.2 + random.random() * 0.5)
            v.reconnect_s = time.monotonic() - dropped
            progress["n"] += 1
            if progress["n"] % step == 0:
                print(f"    {progress['n']} viewers resubscribed after "
                      f"{time.monotonic() - t0:.1f} s", flush=True)  # fmt: skip

        await asyncio.gather(*(one(v) for v in self.viewers))
        took = [v.reconnect_s for v in self.viewers if v.reconnect_s is not None]
        return {
            "seconds": time.monotonic() - t0,
            "reconnected": len(took),
            "failed": len(failures),
            "errors": sorted(set(failures))[:5],
            "retries": sum(v.retries for v in self.viewers),
            "reconnect": _percentiles(array.array("d", took)),
            "recovered_true": sum(1 for v in self.viewers if v.recovered is True),
            "recovered_false": sum(1 for v in self.viewers if v.recovered is False),
            "dups_before": dups_before,
            "phases": {name: _percentiles(values) for name, values in self.phases.items()},
        }

    async def finish(self, final_offset: int, deadline: float) -> dict[str, Any]:
        """Until every viewer holds ``final_offset`` or ``deadline``; then count the gaps."""
        self.final_offset = final_offset
        self.remaining = sum(1 for v in self.viewers if not v.done)
        for v in self.viewers:
            self._check_done(v)
        if self.remaining <= 0:
            self.all_done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), max(0.0, deadline - time.monotonic()))
        complete = [v for v in self.viewers if v.done and v.gaps == 0 and v.recovered is not False]
        return {
            "viewers": len(self.viewers),
            "complete": len(complete),
            "with_gaps": sum(1 for v in self.viewers if v.gaps),
            "gaps": sum(v.gaps for v in self.viewers),
            "dups": sum(v.dups for v in self.viewers),
            "with_dups": sum(1 for v in self.viewers if v.dups),
            "behind": sum(1 for v in self.viewers if not v.done),
            "first_offset": min((v.first_offset for v in self.viewers), default=0),
            "closed": sum(1 for v in self.viewers if v.closed is not None),
        }

    async def close(self) -> None:
        for v in self.viewers:
            v.sock.owner = None
            v.sock.close()
        await asyncio.sleep(0.5)  # let the close frames go out before the process moves on
        for v in self.viewers:
            v.sock.abort()


def _ignore(_sock: LeanSocket, _payload: bytes) -> None:
    pass


def _percentiles(values: array.array[float]) -> dict[str, float] | None:
    if not values:
        return None
    import numpy as np

    data = np.frombuffer(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(data.max()),
        "mean": float(data.mean()),
    }


async def _clients_loop(conn: Conn) -> None:
    crowd: Crowd | None = None
    while True:
        command, arg = await asyncio.to_thread(conn.recv)
        if command == "open":
            crowd = Crowd(arg["url"], arg["mode"], arg.get("marker", ""), arg.get("sample", 0))
            conn.send(("ready", await crowd.open(arg["tokens"], arg["timeout"])))
        elif command == "latency":
            assert crowd is not None
            crowd.remaining = len(crowd.viewers)
            conn.send(("done", await crowd.wait_latency(arg["expected"], arg["deadline"])))
        elif command == "storm":
            assert crowd is not None
            conn.send(("stormed", await crowd.storm(arg["spread"], arg["limit"])))
        elif command == "finish":
            assert crowd is not None
            conn.send(("finished", await crowd.finish(arg["final_offset"], arg["deadline"])))
        elif command == "close":
            if crowd is not None:
                await crowd.close()
                crowd = None
            conn.send(("closed", {}))
        elif command == "exit":
            if crowd is not None:
                await crowd.close()
            return


def clients_process(conn: Conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    uvloop.run(_clients_loop(conn))


# -- the publishers (this process) ---------------------------------------------------------


@dataclass
class Publisher:
    """One connection sending requests on a schedule and counting the replies."""

    url: str
    token: str
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    last_offset: int = 0
    sent: int = 0

    async def run(self, make: Callable[[int], dict[str, Any]], times: Iterator[float],
                  limit: float) -> None:  # fmt: skip
        async with connect(self.url, compression=None, ping_interval=None, open_timeout=30) as ws:
            await ws.send(_dumps({"id": 0, "op": "connect", "token": self.token}))
            await asyncio.wait_for(_reply(ws, 0), limit)
            reader = asyncio.create_task(self._read(ws))
            try:
                for at in times:
                    delay = at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self.sent += 1
                    await ws.send(_dumps({"id": self.sent, **make(self.sent)}))
                end = time.monotonic() + limit
                while self.ok + sum(self.errors.values()) < self.sent and time.monotonic() < end:
                    await asyncio.sleep(0.05)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reader

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            reply = json.loads(frame)
            if "push" in reply or not isinstance(reply.get("id"), int):
                continue
            if "error" in reply:
                code = str(reply["error"].get("code"))
                self.errors[code] = self.errors.get(code, 0) + 1
            else:
                self.ok += 1
                offset = (reply.get("result") or {}).get("offset")
                if isinstance(offset, int):
                    self.last_offset = max(self.last_offset, offset)

    async def connect_only(self, limit: float) -> None:
        """Check the token works before the timed part (raises otherwise)."""
        async with connect(self.url, compression=None, ping_interval=None, open_timeout=30) as ws:
            await ws.send(_dumps({"id": 0, "op": "connect", "token": self.token}))
            await asyncio.wait_for(_reply(ws, 0), limit)


def _schedule(t0: float, rate: float, total: int, index: int, stride: int) -> Iterator[float]:
    """Send times of messages index, index+stride, ... of a global schedule at ``rate``/s."""
    for j in range(index, total, stride):
        yield t0 + j / rate


def _errors(pubs: list[Publisher]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for p in pubs:
        for code, n in p.errors.items():
            merged[code] = merged.get(code, 0) + n
    return merged


# -- process lookups and CPU -----------------------------------------------------------------


def _ray_processes(*needles: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if cmd.startswith("ray::") and all(n in cmd for n in needles):
            found.append(proc)
    return found


def _gateway_processes() -> list[psutil.Process]:
    procs = _ray_processes("ServeReplica:", "gateway")
    if not procs:
        raise RuntimeError("no ray::ServeReplica:...gateway process found")
    return procs


def _rss(procs: list[psutil.Process]) -> int:
    return sum(p.memory_info().rss for p in procs)


class CpuMeter:
    """Average CPU % of some processes between ``start()`` and ``stop()``."""

    def __init__(self, procs: dict[str, list[psutil.Process]]) -> None:
        self.procs = {k: v for k, v in procs.items() if v}

    def start(self) -> None:
        for procs in self.procs.values():
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.cpu_percent(None)

    def stop(self) -> str:
        parts = []
        for name, procs in self.procs.items():
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.cpu_percent(None)
            parts.append(f"{name} {total:.0f}%")
        return "CPU (100% = one core): " + ", ".join(parts)


# -- the scenarios -------------------------------------------------------------------------


@dataclass
class Env:
    args: argparse.Namespace
    clients: Conn
    clients_pid: int
    bare_url: str
    bare_pid: int
    liveshop: LiveshopUnderTest

    def targets(self) -> list[tuple[str, str]]:
        return [("bare websockets", self.bare_url), ("liveshop", self.liveshop.url)]

    def viewer_tokens(self, n: int) -> list[str]:
        return [self.liveshop.token(f"viewer-{i}", "viewer") for i in range(n)]

    def open_crowd(self, url: str, mode: str, marker: str = "") -> dict[str, Any]:
        n = self.args.clients
        limit = max(60.0, n / 20)
        opened = _ask(
            self.clients,
            ("open", {"url": url, "mode": mode, "marker": marker, "sample": self.args.sample,
                      "tokens": self.viewer_tokens(n), "timeout": limit}),
            "ready",
            limit * 2 + n / 10 + 30,
        )  # fmt: skip
        print(f"  {opened['opened']}/{n} viewers subscribed in {opened['seconds']:.1f} s"
              + (f", {opened['failed']} failed: {opened['errors']}" if opened["failed"] else ""),
              flush=True)  # fmt: skip
        return opened

    def close_crowd(self) -> None:
        """Close the viewers; skips a late answer to an earlier command that timed out."""
        self.clients.send(("close", {}))
        deadline = time.monotonic() + 180
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.clients.poll(left):
                raise TimeoutError("the viewers did not close within 180 s")
            kind, _payload = self.clients.recv()
            if kind == "closed":
                return

    def cpu(self, target: str) -> CpuMeter:
        procs: dict[str, list[psutil.Process]] = {"viewers": [psutil.Process(self.clients_pid)]}
        if target == "liveshop":
            procs["gateway"] = _gateway_processes()
            # The room's entity host (the bench's one room; its neighbours are idle).
            procs["room host"] = _ray_processes("EntityHost")
            redis = self.liveshop.stack.redis
            pid = redis.pid() if redis is not None else None
            procs["redis"] = [psutil.Process(pid)] if pid else []
        else:
            procs["bare server"] = [psutil.Process(self.bare_pid)]
        procs["publishers"] = [psutil.Process()]
        return CpuMeter(procs)


def _ms(p: dict[str, float] | None, key: str) -> str:
    return f"{p[key] * 1000:.1f}" if p else "n/a"


async def _latency_publish(
    env: Env,
    marker: str,
    hosts: list[Publisher],
    reactors: list[Publisher],
    chats: int,
    reacts: int,
    limit: float,
    meter: CpuMeter,
    went: list[bool],
) -> float:
    """Connect every publisher, start the viewers' clock, then run the chat and reaction
    schedules; returns the monotonic time of the first scheduled send."""
    a = env.args
    await asyncio.gather(*(p.connect_only(30) for p in hosts + reactors))
    t0 = time.monotonic() + 0.5
    env.clients.send(("latency", {"expected": chats, "deadline": t0 + limit}))
    went[0] = True
    meter.start()

    def chat(_i: int) -> dict[str, Any]:
        return {"op": "chat", "room": ROOM, "text": f"{marker} {time.time():.6f}"}

    def react(_i: int) -> dict[str, Any]:
        return {"op": "react", "room": ROOM, "kind": "heart"}

    await asyncio.gather(
        *(p.run(chat, _schedule(t0, a.chat_rate, chats, k, len(hosts)), a.timeout)
          for k, p in enumerate(hosts)),
        *(p.run(react, _schedule(t0, a.react_rate, reacts, k, len(reactors)), a.timeout)
          for k, p in enumerate(reactors)),
    )  # fmt: skip
    return t0


def scenario_latency(env: Env) -> str:
    a = env.args
    chats = int(a.chat_rate * a.duration)
    reacts = int(a.react_rate * a.duration)
    summary: dict[str, dict[str, Any]] = {}
    for name, url in env.targets():
        print(f"{name}: {a.clients} viewers", flush=True)
        marker = f"lat-{secrets.token_hex(4)}"
        opened = env.open_crowd(url, "latency", marker)
        hosts = [Publisher(url, env.liveshop.token(f"bench-host-{i}", "host"))
                 for i in range(a.publishers)]  # fmt: skip
        reactors = [Publisher(url, env.liveshop.token(f"bench-fan-{i}", "viewer"))
                    for i in range(a.reactors)]  # fmt: skip
        limit = a.duration + a.timeout
        went = [False]  # the viewers were told to wait: collect their answer
        meter = env.cpu(name)
        try:
            if not opened["opened"]:
                summary[name] = {"p": None, "rate": 0.0}
                continue

            t0 = uvloop.run(
                _latency_publish(env, marker, hosts, reactors, chats, reacts, limit, meter, went)
            )
            went[0] = False
            done = _answer(env.clients, "done", limit + 60)
            cpu = meter.stop()
        finally:
            if went[0]:
                _answer(env.clients, "done", limit + 60)
            env.close_crowd()
        p, to_room = done["percentiles"], done["to_room"]
        elapsed = done["t_last"] - t0 if done["t_last"] else math.nan
        rate = done["received"] / elapsed if elapsed > 0 else 0.0
        expected = chats * opened["opened"]
        print(
            f"  chat {sum(h.sent for h in hosts)} sent, {sum(h.ok for h in hosts)} acknowledged"
            f", errors {_errors(hosts)}; reactions {sum(r.sent for r in reactors)} sent, "
            f"{sum(r.ok for r in reactors)} acknowledged, errors {_errors(reactors)}"
        )
        print(
            f"  latency ms: p50 {_ms(p, 'p50')} p90 {_ms(p, 'p90')} p99 {_ms(p, 'p99')} "
            f"max {_ms(p, 'max')} mean {_ms(p, 'mean')}; of which send to room (the event's "
            f"ts) p50 {_ms(to_room, 'p50')} p99 {_ms(to_room, 'p99')}"
        )
        print(
            f"  delivered {done['received']}/{expected} chat messages (timed "
            f"{done['timed']} at {min(a.sample, opened['opened'])} sampled viewers) "
            f"({done['complete']}/{done['viewers']} viewers complete), {rate:.0f} msg/s "
            f"(offered {a.chat_rate * opened['opened']:.0f} msg/s) over {elapsed:.1f} s"
            + (f"; INCOMPLETE after {limit:.0f} s" if done["received"] < expected else "")
        )
        if done["closed"]:
            print(f"  {done['closed']} viewers closed by the server: {done['close_reasons']}")
        print(f"  {cpu}", flush=True)
        summary[name] = {"p": p, "rate": rate}
    ours, theirs = summary["liveshop"]["p"], summary["bare websockets"]["p"]
    ratio = ours["p99"] / theirs["p99"] if ours and theirs and theirs["p99"] > 0 else math.nan
    return (
        f"latency N={a.clients} chat={a.chat_rate:g}/s react={a.react_rate:g}/s: liveshop p50 "
        f"{_ms(ours, 'p50')} ms p99 {_ms(ours, 'p99')} ms "
        f"({summary['liveshop']['rate']:.0f} msg/s), bare p50 {_ms(theirs, 'p50')} ms p99 "
        f"{_ms(theirs, 'p99')} ms ({summary['bare websockets']['rate']:.0f} msg/s), "
        f"p99 ratio {ratio:.2f}"
    )


def scenario_memory(env: Env) -> str:
    a = env.args
    per_conn: dict[str, float] = {}
    for name, url in env.targets():
        procs = _gateway_processes() if name == "liveshop" else [psutil.Process(env.bare_pid)]
        print(f"{name}: pids {[p.pid for p in procs]}", flush=True)
        time.sleep(a.settle)
        before = _rss(procs)
        opened = env.open_crowd(url, "idle")
        try:
            time.sleep(a.settle)  # let joins, presence reports and GC settle
            after = _rss(procs)
            n = opened["opened"]
            kib = (after - before) / n / 1024 if n else math.nan
            per_conn[name] = kib
            print(f"  RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB with {n} idle "
                  f"connections: {kib:.1f} KiB per connection", flush=True)  # fmt: skip
        finally:
            env.close_crowd()
    ours, theirs = per_conn["liveshop"], per_conn["bare websockets"]
    ratio = ours / theirs if theirs > 0 else math.nan
    return (
        f"memory N={a.clients}: liveshop gateway {ours:.1f} KiB/conn, bare websockets "
        f"{theirs:.1f} KiB/conn, ratio {ratio:.2f} (goal <= 20 KiB/conn)"
    )


def scenario_storm(env: Env) -> str:
    a = env.args
    url = env.liveshop.url
    print(f"liveshop: {a.clients} viewers, chat {a.storm_rate:g}/s, storm over "
          f"{a.storm_spread:g} s", flush=True)  # fmt: skip
    opened = env.open_crowd(url, "track")
    n = opened["opened"]
    host = Publisher(url, env.liveshop.token("bench-host", "host"))
    storm_limit = a.storm_spread + a.timeout + n / 100
    stop = asyncio.Event()
    results: dict[str, Any] = {}

    async def chatter() -> None:
        t0 = time.monotonic()

        def times() -> Iterator[float]:
            j = 0
            while not stop.is_set():
                yield t0 + j / a.storm_rate
                j += 1

        await host.run(lambda i: {"op": "chat", "room": ROOM, "text": f"storm {i}"}, times(),
                       a.timeout)  # fmt: skip

    async def drive() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(chatter())
        try:
            await asyncio.sleep(3)  # chat flows before the storm
            meter = env.cpu("liveshop")
            meter.start()
            env.clients.send(("storm", {"spread": a.storm_spread, "limit": storm_limit}))
            results["storm"] = await loop.run_in_executor(
                None, _answer, env.clients, "stormed", storm_limit + 60
            )
            results["cpu"] = meter.stop()
            await asyncio.sleep(3)  # chat flows after the storm
        finally:
            stop.set()
            await task
        final = host.last_offset
        results["final"] = final
        env.clients.send(("finish", {"final_offset": final, "deadline": time.monotonic() + 30}))
        results["finish"] = await loop.run_in_executor(None, _answer, env.clients, "finished", 90)

    try:
        uvloop.run(drive())
    except TimeoutError as exc:
        # The viewer process is still busy (typically overloaded): it is terminated on exit.
        print(f"  storm: {exc}", flush=True)
        return (
            f"storm N={a.clients}: INCOMPLETE, the storm did not finish within "
            f"{storm_limit + 60:.0f} s; complete ratio 0.00"
        )
    finally:
        if "storm" in results:
            env.close_crowd()
    s, f = results["storm"], results["finish"]
    r = s["reconnect"]
    print(
        f"  chat: {host.sent} sent, {host.ok} acknowledged, errors {host.errors}; offsets "
        f"{f['first_offset']}..{results['final']}"
    )
    print(
        f"  storm: {s['reconnected']}/{n} resubscribed in {s['seconds']:.1f} s "
        f"(drops spread over {a.storm_spread:g} s), {s['failed']} never, {s['retries']} "
        f"retries; reconnect p50 {_ms(r, 'p50')} ms p99 {_ms(r, 'p99')} ms max {_ms(r, 'max')} "
        f"ms" + (f"; errors {s['errors']}" if s["errors"] else "")
    )
    print(
        "  reconnect phases (p50/p99 ms): "
        + ", ".join(f"{name} {_ms(p, 'p50')}/{_ms(p, 'p99')}" for name, p in s["phases"].items())
    )
    print(f"  recovered true {s['recovered_true']}, false {s['recovered_false']}")
    print(
        f"  after: {f['complete']}/{f['viewers']} viewers complete, {f['with_gaps']} with gaps "
        f"({f['gaps']} gaps), {f['behind']} behind, {f['dups']} duplicate events at "
        f"{f['with_dups']} viewers ({s['dups_before']} before the storm), "
        f"{f['closed']} closed"
    )
    print(f"  {results['cpu']}", flush=True)
    ratio = f["complete"] / n if n else math.nan
    return (
        f"storm N={a.clients}: {f['complete']}/{n} viewers complete, {f['with_gaps']} with gaps, "
        f"recovered true {s['recovered_true']} false {s['recovered_false']}, all resubscribed "
        f"in {s['seconds']:.1f} s; bare websockets cannot recover; complete ratio {ratio:.2f}"
    )


SCENARIOS = {"latency": scenario_latency, "memory": scenario_memory, "storm": scenario_storm}


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    banner = f"room {args.scenario}: {args.clients} viewers"
    fds = args.clients + 2 * STORM_CONCURRENCY
    try:
        with harness(args, clients_process, fds, banner) as h:
            env = Env(args, h.viewers, h.viewers_pid, h.bare_url, h.bare_pid, h.liveshop)
            line = SCENARIOS[args.scenario](env)
    except KeyboardInterrupt:
        print("interrupted; stopping", flush=True)
        return 130
    print(line, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--clients", "-n", type=int, default=10_000, help="viewers (N)")
    parser.add_argument("--duration", type=float, default=20.0, help="latency: seconds")
    parser.add_argument("--chat-rate", type=float, default=100.0, help="latency: chats/s")
    parser.add_argument("--react-rate", type=float, default=1000.0, help="latency: reactions/s")
    parser.add_argument("--publishers", type=int, default=4, help="latency: host connections")
    parser.add_argument("--reactors", type=int, default=4, help="latency: reacting connections")
    parser.add_argument(
        "--sample", type=int, default=500, help="latency: viewers that time every chat"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="memory: seconds to settle")
    parser.add_argument("--storm-rate", type=float, default=20.0, help="storm: chats/s")
    parser.add_argument("--storm-spread", type=float, default=10.0, help="storm: drop window, s")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for delivery or recovery"
    )
    add_service_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.timeout <= 0:
        sys.exit("--clients must be >= 1, --duration and --timeout > 0")
    if min(args.chat_rate, args.react_rate, args.storm_rate) <= 0:
        sys.exit("rates must be > 0")
    if args.publishers < 1 or args.reactors < 1:
        sys.exit("--publishers and --reactors must be >= 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
