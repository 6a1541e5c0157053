"""Fan-out benchmark: one room, N WebSocket viewers, M chat messages; liveshop vs bare websockets.

    python loadtest/bench_fanout.py --clients 1000 --messages 200 [--rate R]

N viewers run in one separate process (asyncio + uvloop, no compression) and subscribe to one
room. A publisher (one more WebSocket connection, in this process) sends M chat messages into
the room, as fast as it can or at ``--rate`` messages/s. Every viewer counts the chat events
it receives. The same viewers and the same publisher run, in the same run, against

* **liveshop**: a whole local stack (embedded PostgreSQL and Redis unless
  ``LIVESHOP_DATABASE_URL`` / ``LIVESHOP_REDIS_URL`` or the flags say otherwise, Ray, the
  Serve-managed gateway, the room actor), room ``demo``, signed viewer and host tokens;
* **bare websockets**: a ``websockets`` server (uvloop, no compression) in its own process
  that speaks just enough of the same protocol and ``broadcast()``s one frame per message.

Delivered messages/s = chat messages received over all viewers / time from the first publish
to the last message received. liveshop puts every event of one tick (~50 ms) into one frame,
so it may deliver several messages per frame; the bare server sends one frame per message.
The last line is ``fanout N=.. M=..: liveshop X msg/s, bare websockets Y msg/s, ratio X/Y``.
Only loopback traffic; every phase has a time limit; everything started here is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import resource
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

ROOM = "demo"
#: liveshop's binary codec (docs/protocol.md); the bare server speaks it too.
SUBPROTOCOL_MSGPACK = "liveshop.v1.msgpack"
HOST = "127.0.0.1"
#: Viewers opened at once; stays below the servers' listen backlog (100).
CONNECT_CONCURRENCY = 64
#: Incoming frames can carry a whole tick of events; the gateway's own cap is for requests.
CLIENT_MAX_SIZE = 4 * 1024 * 1024
#: Settings for the bench run: one publisher connection must not be rate limited.
LIVESHOP_OVERRIDES: dict[str, Any] = {
    "rate_per_second": 100_000.0,
    "rate_burst": 100_000,
    "max_inflight": 10_000,
}

Conn = multiprocessing.connection.Connection


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


# -- the viewers (their own process) -------------------------------------------------------


@dataclass(eq=False)
class Viewer:
    ws: ClientConnection
    last_offset: int
    got: int = 0
    frames: int = 0
    dups: int = 0
    done_at: float | None = None
    closed: str | None = None


@dataclass
class Crowd:
    """N viewers of one room, each counting the chat events that carry this run's marker."""

    url: str
    room: str
    marker: str
    expected: int
    viewers: list[Viewer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    remaining: int = 0
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    t_last: float | None = None

    async def open(self, tokens: list[str], limit: float) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(token: str) -> None:
            async with gate:
                try:
                    viewer = await asyncio.wait_for(self._join(token), limit)
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    return
            self.viewers.append(viewer)

        await asyncio.gather(*(one(t) for t in tokens))
        self.remaining = len(self.viewers)
        if not self.remaining:
            self.all_done.set()
        self.readers = [asyncio.create_task(self._read(v)) for v in self.viewers]
        return {
            "opened": len(self.viewers),
            "failed": len(self.failures),
            "errors": sorted(set(self.failures))[:5],
            "seconds": time.monotonic() - started,
        }

    async def _join(self, token: str) -> Viewer:
        ws = await connect_client(self.url)
        try:
            await ws.send(_dumps({"id": 1, "op": "connect", "token": token}))
            await _reply(ws, 1)
            await ws.send(_dumps({"id": 2, "op": "subscribe", "room": self.room}))
            snapshot = await _reply(ws, 2)
        except BaseException:
            await ws.close()
            raise
        return Viewer(ws, last_offset=int(snapshot.get("offset", 0)))

    async def _read(self, v: Viewer) -> None:
        marker = self.marker
        loads = json.loads
        monotonic = time.monotonic
        try:
            async for frame in v.ws:
                message = loads(frame)
                if message.get("push") != "room":
                    continue
                counted = 0
                for event in message.get("events", ()):
                    if event.get("kind") != "chat" or not str(event.get("text", "")).startswith(
                        marker
                    ):
                        continue
                    offset = event["offset"]
                    if offset <= v.last_offset:
                        v.dups += 1
                        continue
                    v.last_offset = offset
                    counted += 1
                if counted:
                    v.frames += 1
                    v.got += counted
                    self.t_last = monotonic()
                    if v.done_at is None and v.got >= self.expected:
                        v.done_at = self.t_last
                        self.remaining -= 1
                        if self.remaining == 0:
                            self.all_done.set()
        except ConnectionClosed as exc:
            v.closed = f"{exc.rcvd.code if exc.rcvd else 'no close frame'}"
        except Exception as exc:  # a bad frame: report it, do not hang the run
            v.closed = f"{type(exc).__name__}: {exc}"[:200]
        else:
            v.closed = f"{v.ws.close_code}"
        if v.done_at is None:
            self.remaining -= 1
            if self.remaining == 0:
                self.all_done.set()

    async def wait(self, deadline: float) -> dict[str, Any]:
        """Until every viewer has all messages, or ``deadline`` (``time.monotonic()``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), max(0.0, deadline - time.monotonic()))
        done = sorted(v.done_at for v in self.viewers if v.done_at is not None)
        closed = [v.closed for v in self.viewers if v.closed is not None]
        return {
            "received": sum(v.got for v in self.viewers),
            "frames": sum(v.frames for v in self.viewers),
            "dups": sum(v.dups for v in self.viewers),
            "complete": len(done),
            "viewers": len(self.viewers),
            "t_last": self.t_last,
            "done_median": statistics.median(done) if done else None,
            "closed": len(closed),
            "close_reasons": sorted(set(closed))[:5],
        }

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)

        async def one(v: Viewer) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(v.ws.close(), 5)  # close_timeout 2 s, then abort

        await asyncio.gather(*(one(v) for v in self.viewers))


async def _reply(ws: ClientConnection, rid: int) -> dict[str, Any]:
    """Wait for the reply to request ``rid`` (skipping pushes); raise on an error reply."""
    while True:
        message = json.loads(await ws.recv())
        if message.get("id") != rid:
            continue
        if "error" in message:
            raise RuntimeError(f"request {rid} failed: {message['error']}")
        result: dict[str, Any] = message.get("result") or {}
        return result


async def _viewers_loop(conn: Conn) -> None:
    crowd: Crowd | None = None
    while True:
        command, arg = await asyncio.to_thread(conn.recv)
        if command == "open":
            crowd = Crowd(arg["url"], arg["room"], arg["marker"], arg["expected"])
            conn.send(("ready", await crowd.open(arg["tokens"], arg["timeout"])))
        elif command == "go":
            assert crowd is not None
            conn.send(("done", await crowd.wait(arg["deadline"])))
        elif command == "close":
            if crowd is not None:
                await crowd.close()
                crowd = None
            conn.send(("closed", {}))
        elif command == "exit":
            if crowd is not None:
                await crowd.close()
            return


def viewers_process(conn: Conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    uvloop.run(_viewers_loop(conn))


# -- the baseline: a bare websockets server (its own process) ------------------------------


async def _bare_server(conn: Conn, tick: float) -> None:
    """Chat: one frame per message to every subscriber at once. Reactions: counted, and the
    totals and the taps since the last push broadcast every ``tick`` s (as liveshop does).
    Speaks JSON, or msgpack to clients asking for liveshop's msgpack subprotocol."""
    subscribers: dict[bool, set[ServerConnection]] = {False: set(), True: set()}
    offset = 0
    reactions: dict[str, int] = {}
    burst: dict[str, int] = {}

    def encode(message: dict[str, Any], binary: bool) -> str | bytes:
        return msgpack.packb(message) if binary else _dumps(message)

    def publish(push: dict[str, Any]) -> None:
        for binary, conns in subscribers.items():
            if conns:
                broadcast(conns, encode(push, binary))

    async def handler(ws: ServerConnection) -> None:
        nonlocal offset
        binary = ws.subprotocol == SUBPROTOCOL_MSGPACK
        try:
            async for frame in ws:
                request = msgpack.unpackb(frame) if binary else json.loads(frame)
                rid, op = request.get("id"), request.get("op")
                result: dict[str, Any] = {}
                if op == "chat":
                    offset += 1
                    event = {
                        "offset": offset,
                        "kind": "chat",
                        "ts": int(time.time() * 1000),
                        "user": {"id": "bench-host", "name": "Bench host"},
                        "text": request["text"],
                    }
                    publish({"push": "room", "room": ROOM, "epoch": "bare", "events": [event]})
                    result = {"offset": offset}
                elif op == "react":
                    kind, count = request.get("kind", "heart"), int(request.get("count", 1))
                    reactions[kind] = reactions.get(kind, 0) + count
                    burst[kind] = burst.get(kind, 0) + count
                elif op == "subscribe":
                    subscribers[binary].add(ws)
                    result = {"offset": offset, "epoch": "bare", "recovered": False}
                # else connect: a bare server trusts everyone
                await ws.send(encode({"id": rid, "result": result}, binary))
        except ConnectionClosed:
            pass
        finally:
            subscribers[binary].discard(ws)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(tick)
            if burst:
                state = {"reactions": dict(reactions), "reaction_burst": dict(burst)}
                burst.clear()
                push = {"push": "room", "room": ROOM, "epoch": "bare", "events": [], "state": state}
                publish(push)

    async with serve(
        handler,
        HOST,
        0,
        compression=None,
        ping_interval=None,
        subprotocols=[Subprotocol(SUBPROTOCOL_MSGPACK)],
        select_subprotocol=_bare_subprotocol,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        task = asyncio.create_task(ticker())
        conn.send(("ready", {"port": port}))
        await asyncio.to_thread(conn.recv)  # anything means stop
        task.cancel()


def _bare_subprotocol(_conn: ServerConnection, offered: Any) -> Subprotocol | None:
    """msgpack when offered, else plain JSON (websockets would refuse a client offering none)."""
    return Subprotocol(SUBPROTOCOL_MSGPACK) if SUBPROTOCOL_MSGPACK in offered else None


def bare_server_process(conn: Conn, tick: float = 0.05) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uvloop.run(_bare_server(conn, tick))


# -- the publisher (this process) ----------------------------------------------------------


async def publish(
    url: str,
    token: str,
    room: str,
    marker: str,
    messages: int,
    rate: float,
    limit: float,
    on_start: Any,
) -> dict[str, Any]:
    """Connect, send one untimed warm-up message, then call ``on_start`` and send M messages.

    Returns the monotonic time of the first timed send and the replies counted.
    """
    async with connect(url, compression=None, ping_interval=None, open_timeout=30) as ws:
        await ws.send(_dumps({"id": 1, "op": "connect", "token": token}))
        await asyncio.wait_for(_reply(ws, 1), limit)
        await ws.send(_dumps({"id": 2, "op": "chat", "room": room, "text": "warm-up"}))
        await asyncio.wait_for(_reply(ws, 2), limit)
        await asyncio.sleep(0.5)  # let the warm-up push reach every viewer first

        first, last = 3, 3 + messages - 1
        ok = 0
        errors: dict[str, int] = {}
        all_replied = asyncio.Event()

        async def read_replies() -> None:
            nonlocal ok
            async for frame in ws:
                reply = json.loads(frame)
                rid = reply.get("id")
                if not isinstance(rid, int) or not first <= rid <= last:
                    continue
                if "error" in reply:
                    code = str(reply["error"].get("code"))
                    errors[code] = errors.get(code, 0) + 1
                else:
                    ok += 1
                if ok + sum(errors.values()) >= messages:
                    all_replied.set()

        reader = asyncio.create_task(read_replies())
        on_start()
        t0 = time.monotonic()
        for i in range(messages):
            if rate > 0:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            frame = {"id": first + i, "op": "chat", "room": room, "text": f"{marker} {i}"}
            await ws.send(_dumps(frame))
        sent_in = time.monotonic() - t0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_replied.wait(), limit)
        replied_in = time.monotonic() - t0
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await reader
    return {"t0": t0, "ok": ok, "errors": errors, "sent_in": sent_in, "replied_in": replied_in}


# -- one measurement -----------------------------------------------------------------------


def _ask(conn: Conn, message: tuple[str, Any], expect: str, timeout: float) -> dict[str, Any]:
    conn.send(message)
    return _answer(conn, expect, timeout)


def _answer(conn: Conn, expect: str, timeout: float) -> dict[str, Any]:
    if not conn.poll(timeout):
        raise TimeoutError(f"the child process did not answer {expect!r} within {timeout:.0f}s")
    kind, payload = conn.recv()
    if kind != expect:
        raise RuntimeError(f"child process answered {kind!r}, expected {expect!r}")
    result: dict[str, Any] = payload
    return result


@dataclass
class Result:
    name: str
    clients: int
    messages: int
    opened: int = 0
    received: int = 0
    frames: int = 0
    elapsed: float = math.nan
    complete: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        if not self.received or not self.elapsed > 0:
            return 0.0
        return self.received / self.elapsed

    def line(self) -> str:
        expected = self.clients * self.messages
        per_frame = self.received / self.frames if self.frames else 0.0
        text = (
            f"{self.name:<16} {self.rate:>9.0f} msg/s  {self.received}/{expected} messages "
            f"in {self.elapsed:.2f} s, {self.complete}/{self.clients} viewers complete, "
            f"{self.frames} frames ({per_frame:.1f} msg/frame)"
        )
        return text + "".join(f"\n{'':<17}{note}" for note in self.notes)


def measure(
    name: str,
    viewers: Conn,
    url: str,
    viewer_tokens: list[str],
    publisher_token: str,
    args: argparse.Namespace,
) -> Result:
    marker = f"bench-{secrets.token_hex(4)}"
    result = Result(name, args.clients, args.messages)
    open_timeout = max(60.0, args.clients / 20)
    opened = _ask(
        viewers,
        ("open", {
            "url": url, "room": ROOM, "marker": marker, "expected": args.messages,
            "tokens": viewer_tokens, "timeout": open_timeout,
        }),
        "ready",
        open_timeout * 2 + 30,
    )  # fmt: skip
    result.opened = opened["opened"]
    result.notes.append(f"{opened['opened']} viewers subscribed in {opened['seconds']:.1f} s")
    if opened["failed"]:
        result.notes.append(f"{opened['failed']} viewers failed to join: {opened['errors']}")
    # Delivery may take as long as pacing the messages out, plus the timeout.
    limit = args.timeout + (args.messages / args.rate if args.rate > 0 else 0.0)
    went = False

    def go() -> None:
        nonlocal went
        # CLOCK_MONOTONIC is system-wide on Linux: the viewer process can share our clock.
        viewers.send(("go", {"deadline": time.monotonic() + limit}))
        went = True

    try:
        if not opened["opened"]:
            return result
        sent = uvloop.run(
            publish(
                url, publisher_token, ROOM, marker, args.messages, args.rate, args.timeout,
                on_start=go,
            )
        )  # fmt: skip
        went = False
        done = _answer(viewers, "done", limit + 30)
    finally:
        if went:  # the publisher failed after the viewers started waiting
            _answer(viewers, "done", limit + 30)
        _ask(viewers, ("close", {}), "closed", 60)
    result.received = done["received"]
    result.frames = done["frames"]
    result.complete = done["complete"]
    if done["t_last"] is not None:
        result.elapsed = done["t_last"] - sent["t0"]
    median = done["done_median"]
    result.notes.append(
        f"publisher: {args.messages} sent in {sent['sent_in']:.2f} s, {sent['ok']} acknowledged"
        + (f", errors {sent['errors']}" if sent["errors"] else "")
        + (f"; median viewer complete at {median - sent['t0']:.2f} s" if median else "")
    )
    if done["dups"]:
        result.notes.append(f"{done['dups']} duplicate or out-of-order events")
    if done["closed"]:
        result.notes.append(f"{done['closed']} viewers closed early: {done['close_reasons']}")
    if result.complete < result.opened:
        result.notes.append(f"INCOMPLETE: stopped waiting after {limit:.0f} s")
    return result


# -- the run -------------------------------------------------------------------------------


class LiveshopUnderTest:
    """A whole local liveshop stack in a temporary data dir, with room ``demo`` seeded."""

    def __init__(self, data_dir: Path, args: argparse.Namespace) -> None:
        from liveshop.config import Settings
        from liveshop.storage.embedded import free_port
        from liveshop.tokens import issue_token

        self._issue = issue_token
        settings = Settings.from_env(
            data_dir=data_dir,
            http_port=free_port(),
            ws_port=free_port(),
            dashboard_port=free_port(),
            rtmp_port=free_port(),
            database_url=args.database_url,
            redis_url=args.redis_url,
            gateways=args.gateways,
            **LIVESHOP_OVERRIDES,
            **({"max_tick": args.max_tick} if args.max_tick else {}),
        ).with_keys()
        from liveshop.stack import Stack

        self.stack = Stack(settings)

    def start(self) -> None:
        from liveshop import demo

        say = _say("liveshop")
        self.stack.start_storage(say)
        # Always a fresh local cluster: without an address ray.init() would join one named by
        # RAY_ADDRESS or left by `ray start`, and stopping the stack would shut down its Serve.
        os.environ["RAY_ADDRESS"] = "local"
        self.stack.start_ray(None, say)
        signal.signal(signal.SIGTERM, _raise_interrupt)  # Ray's handler would skip our cleanup
        self.stack.deploy(say)
        assert self.stack.settings.database_url
        asyncio.run(demo.seed(self.stack.settings.database_url))
        say(f"room '{ROOM}' seeded")

    @property
    def url(self) -> str:
        return self.stack.settings.ws_url

    def token(self, user_id: str, role: str) -> str:
        return self._issue(
            self.stack.settings.secret, user_id=user_id, name=user_id,
            rooms={ROOM: [role]}, now=time.time(), ttl=3600,
        )  # fmt: skip

    def stop(self) -> None:
        self.stack.stop(_say("liveshop"))


def _say(prefix: str) -> Any:
    def say(message: str) -> None:
        print(f"  [{prefix}] {message}", flush=True)

    return say


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _raise_fd_limit(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = clients + 512
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            sys.exit(f"ulimit -n is {soft} (hard {hard}); {clients} clients need ~{needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _stop_process(proc: multiprocessing.process.BaseProcess, conn: Conn, stop: Any) -> None:
    with contextlib.suppress(Exception):
        conn.send(stop)
    proc.join(15)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()


@dataclass
class Harness:
    """What both benchmarks run against: a viewer process, the bare server, liveshop."""

    viewers: Conn
    viewers_pid: int
    bare_url: str
    bare_pid: int
    liveshop: LiveshopUnderTest


@contextlib.contextmanager
def harness(
    args: argparse.Namespace, viewers_target: Callable[[Conn], None], fds: int, banner: str
) -> Iterator[Harness]:
    """Start the viewer process, the bare server and a liveshop stack; stop all of them (and
    remove the data dir) on the way out, whatever happened."""
    _raise_fd_limit(fds)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Ray
    viewers_conn, child_conn = ctx.Pipe()
    viewers = ctx.Process(
        target=viewers_target, args=(child_conn,), name="bench-viewers", daemon=True
    )
    bare_conn, bare_child = ctx.Pipe()
    bare = ctx.Process(
        target=bare_server_process, args=(bare_child,), name="bench-bare", daemon=True
    )
    data_dir = Path(tempfile.mkdtemp(prefix="liveshop-bench-"))
    liveshop: LiveshopUnderTest | None = None
    try:
        viewers.start()
        bare.start()
        bare_port = _answer(bare_conn, "ready", 30)["port"]
        print(banner, flush=True)
        started = time.monotonic()
        liveshop = LiveshopUnderTest(data_dir, args)
        liveshop.start()
        print(f"  liveshop ready in {time.monotonic() - started:.1f} s", flush=True)
        assert viewers.pid is not None and bare.pid is not None
        yield Harness(viewers_conn, viewers.pid, f"ws://{HOST}:{bare_port}", bare.pid, liveshop)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_process(viewers, viewers_conn, ("exit", {}))
        _stop_process(bare, bare_conn, ("stop", {}))
        try:
            if liveshop is not None:
                liveshop.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    results: dict[str, list[Result]] = {"bare websockets": [], "liveshop": []}
    banner = (
        f"fanout: {args.clients} viewers, {args.messages} messages, "
        f"rate {args.rate or 'unpaced'}, rounds {args.rounds}"
    )
    try:
        with harness(args, viewers_process, args.clients, banner) as h:
            viewer_tokens = [h.liveshop.token(f"viewer-{i}", "viewer") for i in range(args.clients)]
            host_token = h.liveshop.token("bench-host", "host")
            for round_no in range(1, args.rounds + 1):
                for name, url in (("bare websockets", h.bare_url), ("liveshop", h.liveshop.url)):
                    result = measure(name, h.viewers, url, viewer_tokens, host_token, args)
                    results[name].append(result)
                    print(f"round {round_no}: {result.line()}", flush=True)
    except KeyboardInterrupt:
        print("interrupted; stopping", flush=True)
        return 130
    best = {name: max(rs, key=lambda r: r.rate) for name, rs in results.items()}
    ours, theirs = best["liveshop"].rate, best["bare websockets"].rate
    ratio = ours / theirs if theirs else math.nan
    print(
        f"fanout N={args.clients} M={args.messages}: liveshop {ours:.0f} msg/s, "
        f"bare websockets {theirs:.0f} msg/s, ratio {ratio:.2f}",
        flush=True,
    )
    return 0


async def connect_client(url: str) -> ClientConnection:
    """One benchmark viewer's connection (no compression, no pings, pushes of any size)."""
    return await connect(
        url,
        compression=None,
        ping_interval=None,
        max_size=CLIENT_MAX_SIZE,
        open_timeout=30,
        close_timeout=2,
    )


def add_service_args(parser: argparse.ArgumentParser) -> None:
    """--database-url and --redis-url, defaulting to the environment, else embedded."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LIVESHOP_DATABASE_URL") or None,
        help="PostgreSQL for liveshop (default: $LIVESHOP_DATABASE_URL, else embedded)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LIVESHOP_REDIS_URL") or None,
        help="Redis for liveshop (default: $LIVESHOP_REDIS_URL, else embedded)",
    )
    parser.add_argument(
        "--gateways", type=int, default=1, help="liveshop gateway processes sharing the port"
    )
    parser.add_argument(
        "--max-tick", type=float, help="liveshop's longest room tick, s (default: its own)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", "-n", type=int, default=1000, help="viewers (N)")
    parser.add_argument("--messages", "-m", type=int, default=200, help="messages published (M)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="messages/s to publish (0: as fast as possible)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for delivery, per target"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat both targets; best counts")
    add_service_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.messages < 1 or args.rounds < 1 or args.timeout <= 0:
        sys.exit("--clients, --messages and --rounds must be >= 1 and --timeout > 0")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
