"""The WebSocket gateway: viewers' sockets in, batched room-actor calls out, room pushes back.

One ``Gateway`` per process, serving its own ``websockets`` server (several processes share
the port with SO_REUSEPORT). Frames never pass through Serve's HTTP proxy. The protocol is in
docs/protocol.md; the rules of each operation live in the room, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from liveshop import clock, metrics
from liveshop.app.commerce import Commerce
from liveshop.app.ops import command_for
from liveshop.app.programming import Programming
from liveshop.config import Settings
from liveshop.errors import (
    AlreadyConnected,
    CloseCode,
    Conflict,
    Forbidden,
    InternalError,
    LiveshopError,
    NotSubscribed,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from liveshop.mesh.room_client import RoomClient
from liveshop.protocol import (
    COMMERCE_OPS,
    MAX_FRAME_BYTES,
    ROOM_OPS,
    SHOW_OPS,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    Codec,
    ConnectParams,
    HistoryParams,
    Request,
    RequestId,
    RoomParams,
    SubscribeParams,
    decode_frame,
    encode_frame,
    error_reply,
    parse_request,
    request_id_of,
    result_reply,
)
from liveshop.ratelimit import PerUser, TokenBucket
from liveshop.rooms.commands import Actor, Joined, ReportViewers
from liveshop.serve.hub import Hub, server_frame, write_all
from liveshop.storage.broker import RedisSubscriber
from liveshop.storage.gateways import HEARTBEAT, GatewayRecord, GatewayStore
from liveshop.storage.pool import TRANSIENT_DB_ERRORS, create_pool
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.tokens import STAFF_ROLES, Identity, verify_token

log = logging.getLogger(__name__)

MAX_ROOMS_PER_CONNECTION = 16
#: Pending TCP connections the kernel queues for us. The default (100) overflows in a
#: reconnect storm while the loop is busy broadcasting; an overflow drops the SYN and the
#: client waits 1, 3, 7 s to retry. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
#: Seconds between slow-consumer sweeps. Each sweep looks at every socket (10,000 calls at
#: 10,000 viewers): every 0.25 s that was a tenth of a busy gateway. A stalled reader gets
#: at most one interval of pushes past ``slow_consumer_bytes`` before it is closed.
SLOW_CONSUMER_SWEEP = 1.0
#: A client told to slow down this many times in a row (no request let through) is closed.
MAX_RATE_STRIKES = 50
#: A dependency that did not answer this time: the op answers ``unavailable``.
_TRANSIENT: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, RedisError)


@dataclass(eq=False)
class Session:
    ws: ServerConnection
    codec: Codec
    identity: Identity
    bucket: TokenBucket
    rooms: set[str] = field(default_factory=set)
    inflight: int = 0
    strikes: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def actor(self, room_id: str) -> Actor:
        return Actor.for_room(self.identity, room_id)


class Gateway:
    def __init__(self, settings: Settings, gateway_id: str | None = None) -> None:
        assert settings.database_url and settings.redis_url
        self.settings = settings
        self.gateway_id = (
            gateway_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self.hub = Hub()
        self.connections = 0
        self.users = PerUser(
            max_connections=settings.max_user_connections,
            rate=settings.user_rate_per_second,
            burst=settings.user_rate_burst,
        )
        self._pool: asyncpg.Pool | None = None
        self.rooms: RoomClient | None = None
        self.commerce: Commerce | None = None
        self.products: ProductStore | None = None
        self.programming: Programming | None = None
        #: Live sessions by socket, to act on room events about a user (a ban).
        self._sessions: dict[ServerConnection, Session] = {}
        self.subscriber: RedisSubscriber | None = None
        self.server: Server | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.slow_closed = 0
        self.frames_in = 0
        self._joins: dict[str, asyncio.Lock] = {}
        self._registry: GatewayStore | None = None
        self.node_id, self.node_ip = _node()
        self.url = advertised_url(settings, self.node_ip)
        self._background: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        assert self.settings.database_url and self.settings.redis_url
        self._pool = await create_pool(self.settings.database_url, min_size=1, max_size=4)
        self.rooms = RoomClient(self.settings, RoomStore(self._pool))
        self.commerce = Commerce(self.settings, self._pool)
        self.products = ProductStore(self._pool)
        self.programming = Programming(self.settings, self._pool)
        self.hub.on_ban = self._kick
        rooms = self.rooms
        self.hub.fetch = lambda room_id, since: rooms.join(room_id, since)
        self.hub.observe = lambda age: metrics.publish_to_deliver(age, self.gateway_id)
        self._registry = GatewayStore(self._pool)
        self.subscriber = RedisSubscriber(
            self.settings.redis_url, self.hub.on_message, on_reconnect=self._on_reconnect
        )
        await self.subscriber.start()
        self.server = await serve(
            self._serve_connection,
            self.settings.ws_host,
            self.settings.ws_port,
            reuse_port=True,
            backlog=LISTEN_BACKLOG,
            subprotocols=[Subprotocol(SUBPROTOCOL_JSON), Subprotocol(SUBPROTOCOL_MSGPACK)],
            select_subprotocol=_select_subprotocol,
            origins=self.settings.origins(),  # type: ignore[arg-type]
            max_size=MAX_FRAME_BYTES,
            # Per-connection compression would undo "encode once, broadcast to all".
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )
        loop = asyncio.get_running_loop()
        self._reporter = loop.create_task(self._report_viewers())
        self._sweeper = loop.create_task(self._sweep_slow_consumers())
        exporter = metrics.Exporter(
            {"gateway": self.gateway_id}, metrics.GATEWAY_GAUGES, metrics.GATEWAY_COUNTERS
        )
        self._background = [
            loop.create_task(self._register()), loop.create_task(exporter.run(self.health))
        ]  # fmt: skip
        log.info("gateway %s listening on %s", self.gateway_id, self.url)

    async def stop(self) -> None:
        for task in (self._reporter, self._sweeper, *self._background):
            if task is not None:
                task.cancel()
        if self._registry is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._registry.remove(self.gateway_id), 2)
        if self.server is not None:
            self.server.close(code=CloseCode.GOING_AWAY, reason="gateway stopping")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
        if self.subscriber is not None:
            await self.subscriber.close()
        if self.rooms is not None:
            await self.rooms.close()
        if self.commerce is not None:
            await self.commerce.close()
        if self._pool is not None:
            await self._pool.close()

    def health(self) -> dict[str, Any]:
        serving = self.server is not None and self.server.is_serving()
        redis_ok = self.subscriber is not None and self.subscriber.connected
        return {
            "gateway": self.gateway_id,
            "url": self.url,
            "node_id": self.node_id,
            "serving": serving,
            "redis": redis_ok,
            "connections": self.connections,
            "slow_closed": self.slow_closed,
            "rooms": len(self.hub.feeds),
            "frames_in": self.frames_in,
            "messages_in": self.hub.messages_in,
            "frames_out": self.hub.frames_out,
            "gaps_repaired": self.hub.gaps_repaired,
            "gaps_unrepaired": self.hub.gaps_unrepaired,
        }

    async def _on_reconnect(self) -> None:
        # Messages published while Redis was away are gone from the broker (at-most-once):
        # ask every room watched here for what it published meanwhile.
        log.warning(
            "gateway %s resubscribed to Redis; filling gaps from the rooms", self.gateway_id
        )
        self.hub.resync()

    async def _register(self) -> None:
        """Keep this gateway's row in the registry fresh (see storage/gateways.py)."""
        assert self._registry is not None
        while True:
            record = GatewayRecord(
                self.gateway_id, self.url, self.node_id, self.node_ip, os.getpid(),
                connections=self.connections, rooms=len(self.hub.feeds),
            )  # fmt: skip
            try:
                await self._registry.beat(record)
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("gateway %s cannot register: %s", self.gateway_id, exc)
            except Exception:
                log.exception("gateway %s cannot register", self.gateway_id)
            await asyncio.sleep(HEARTBEAT)

    async def _sweep_slow_consumers(self) -> None:
        """Close connections that stopped reading before they grow the gateway's memory.

        Broadcasts do not wait for slow sockets (that would stall everyone), so unsent frames
        pile up in the socket's buffer; past ``slow_consumer_bytes`` the connection leaves its
        rooms at once and is closed with 1013 (try again later: it can reconnect and recover).
        """
        limit = self.settings.slow_consumer_bytes
        while True:
            await asyncio.sleep(SLOW_CONSUMER_SWEEP)
            for ws, session in list(self._sessions.items()):
                transport = ws.transport
                if transport is None or transport.get_write_buffer_size() <= limit:
                    continue
                self.slow_closed += 1
                for room_id in list(session.rooms):
                    self._leave(session, room_id)
                self._sessions.pop(ws, None)
                log.warning("closing slow consumer %s", session.identity.user_id)
                self._close_later(session, CloseCode.TRY_AGAIN_LATER, "too slow")
                # The close frame waits behind the backlog; do not let it wait for long.
                asyncio.get_running_loop().call_later(2.0, transport.abort)

    async def _report_viewers(self) -> None:
        """Exact viewer counts: every gateway tells each room how many sockets it serves."""
        while True:
            await asyncio.sleep(self.settings.viewer_report_interval)
            assert self.rooms is not None
            for room_id, feed in list(self.hub.feeds.items()):
                count = len(feed)
                task = asyncio.ensure_future(
                    self.rooms.send(room_id, ReportViewers(self.gateway_id, count))
                )
                task.add_done_callback(_ignore_result)
                if count == 0:
                    await self._drop_feed(room_id)

    # -- one connection -------------------------------------------------------------------

    async def _serve_connection(self, ws: ServerConnection) -> None:
        codec = Codec.for_subprotocol(ws.subprotocol)
        sock = ws.transport.get_extra_info("socket") if ws.transport else None
        if sock is not None:
            # A bounded kernel buffer per connection: memory stays predictable at 10,000
            # viewers and a stalled reader shows up in our own buffer, where we can see it.
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.socket_send_buffer
                )
        session = await self._handshake(ws, codec)
        if session is None:
            return
        self.connections += 1
        self._sessions[ws] = session
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, session.identity.expires_at - clock.now()),
            lambda: asyncio.ensure_future(ws.close(CloseCode.POLICY, "token expired")),
        )
        try:
            async for frame in ws:
                self._on_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            self.users.close(session.identity.user_id)
            self.connections -= 1
            self._sessions.pop(ws, None)
            for task in list(session.tasks):
                task.cancel()
            for room_id in list(session.rooms):
                self._leave(session, room_id)

    async def _handshake(self, ws: ServerConnection, codec: Codec) -> Session | None:
        """The first frame must be a valid ``connect`` within the connect timeout."""
        try:
            frame = await asyncio.wait_for(ws.recv(), self.settings.connect_timeout)
        except TimeoutError:
            await ws.close(CloseCode.POLICY, "no connect within timeout")
            return None
        except ConnectionClosed:
            return None
        rid: RequestId | None = None
        try:
            message = decode_frame(frame, codec)
            rid = request_id_of(message)
            request = parse_request(message)
            if request.op != "connect":
                raise Unauthenticated("the first request must be 'connect'")
            params: ConnectParams = request.params
            identity = verify_token(self.settings.secret, params.token, now=clock.now())
        except LiveshopError as exc:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode_frame(error_reply(rid, exc), codec))
                await ws.close(CloseCode.POLICY, exc.code)
            return None
        if not self.users.open(identity.user_id, clock.now()):
            refused = RateLimited(
                f"at most {self.settings.max_user_connections} connections per user; "
                "close one and try again"
            )
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode_frame(error_reply(request.id, refused), codec))
                await ws.close(CloseCode.TRY_AGAIN_LATER, "too many connections")
            return None
        session = Session(
            ws=ws,
            codec=codec,
            identity=identity,
            bucket=TokenBucket(
                self.settings.rate_per_second, self.settings.rate_burst, clock.now()
            ),
        )
        result = {
            "user": {"id": identity.user_id, "name": identity.name},
            "expires_at": int(identity.expires_at),
            "gateway": self.gateway_id,
        }
        try:
            await ws.send(encode_frame(result_reply(request.id, result), codec))
        except ConnectionClosed:  # gone before hearing "welcome": not a connection to count
            self.users.close(identity.user_id)
            return None
        except BaseException:  # cancelled (the gateway stopping): uncounted all the same
            self.users.close(identity.user_id)
            raise
        return session

    def _on_frame(self, session: Session, frame: str | bytes) -> None:
        self.frames_in += 1
        rid: RequestId | None = None
        try:
            message = decode_frame(frame, session.codec)
            rid = request_id_of(message)  # decoded first so a refusal names its request
            now = clock.now()
            if not session.bucket.take(now) or not self.users.take(session.identity.user_id, now):
                session.strikes += 1
                if session.strikes > MAX_RATE_STRIKES:
                    self._close_later(session, CloseCode.POLICY, "rate limit")
                raise RateLimited("too many requests, slow down")
            session.strikes = 0  # strikes count a run of refusals, not a lifetime
            request = parse_request(message)
            if session.inflight >= self.settings.max_inflight:
                raise RateLimited("too many requests in flight")
        except LiveshopError as exc:
            self._send(session, error_reply(rid, exc))
            return
        session.inflight += 1
        task = asyncio.get_running_loop().create_task(self._run(session, request))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _run(self, session: Session, request: Request) -> None:
        """Exactly one reply per request, whatever happens."""
        reply: dict[str, Any] | None
        try:
            result = await self._dispatch(session, request)
            reply = None if result is None else result_reply(request.id, result)
        except LiveshopError as exc:
            reply = error_reply(request.id, exc)
        except asyncio.CancelledError:
            raise
        except _TRANSIENT as exc:
            # PostgreSQL or Redis away for a moment (an op that reads them directly): try
            # again, as the HTTP API answers 503.
            log.warning("op %s: a dependency did not answer: %r", request.op, exc)
            reply = error_reply(request.id, Unavailable("a dependency did not answer; retry"))
        except Exception:
            log.exception("op %s failed", request.op)
            reply = error_reply(request.id, InternalError("internal error"))
        finally:
            session.inflight -= 1
        if reply is not None:
            self._send(session, reply)

    @staticmethod
    def _close_later(session: Session, code: int, reason: str) -> None:
        task = asyncio.ensure_future(session.ws.close(code, reason))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    @staticmethod
    def _send(session: Session, message: dict[str, Any]) -> None:
        """Write a reply now, without a task per reply: like pushes, replies are written
        straight to the socket, whose backlog the slow-consumer sweep bounds."""
        write_all((session.ws,), server_frame(encode_frame(message, session.codec)))

    async def _dispatch(self, session: Session, request: Request) -> dict[str, Any] | None:
        """The op's result, or None when the op has sent its reply itself."""
        assert self.rooms is not None
        match request.op:
            case "ping":
                return {"pong": clock.now_ms()}
            case "connect":
                raise AlreadyConnected("this connection is already authenticated")
            case "subscribe":
                await self._subscribe(session, request.id, request.params)
                return None
            case "unsubscribe":
                params: RoomParams = request.params
                if params.room not in session.rooms:
                    raise NotSubscribed(f"not subscribed to {params.room!r}")
                feed = self.hub.feeds.get(params.room)
                if feed is not None and session.ws in feed.joining:
                    raise Conflict(f"still subscribing to {params.room!r}; wait for the reply")
                self._leave(session, params.room)
                return {"room": params.room}
            case "history":
                page: HistoryParams = request.params
                self._require_role(session, page.room)
                # Banned viewers may not read it either; staff are never banned.
                staff = bool(session.identity.roles_in(page.room) & STAFF_ROLES)
                return await self.rooms.history(
                    page.room,
                    before=page.before,
                    limit=page.limit,
                    user_id=session.identity.user_id,
                    staff=staff,
                )
        if request.op in ROOM_OPS:
            # The room decides who may do what (its live grants count too).
            room_id = request.params.room
            assert self.products is not None
            by = session.actor(room_id)
            command = await command_for(request.op, by, request.params, self.products)
            return await self.rooms.send(room_id, command)
        if request.op in SHOW_OPS:
            # Cues and analytics of the show in this room, from its channel's actor.
            assert self.programming is not None
            return await self._show_op(session.identity, request.op, request.params)
        if request.op in COMMERCE_OPS:
            # Buys, holds and deals go to the SKU's actor, payments to the cashier; the room
            # only names where they happened, so the caller needs a role there.
            assert self.commerce is not None
            return await self.commerce.run(request.op, session.identity, request.params)
        raise InternalError(f"op {request.op!r} has no handler")

    async def _show_op(self, who: Identity, op: str, params: Any) -> dict[str, Any]:
        assert self.programming is not None
        if op == "run_of_show":
            return await self.programming.run_of_show(who, room_id=params.room)
        if op == "show_analytics":
            return await self.programming.analytics(who, room_id=params.room)
        change = op.removesuffix("_cue")  # fire, skip, reschedule
        at = getattr(params, "at", None)
        return await self.programming.cue(who, change, params.cue, room_id=params.room, at=at)

    @staticmethod
    def _require_role(session: Session, room_id: str) -> None:
        if not session.identity.roles_in(room_id):
            raise Forbidden(f"your token grants no role in room {room_id!r}")

    async def _subscribe(self, session: Session, rid: RequestId, params: SubscribeParams) -> None:
        assert self.rooms is not None and self.subscriber is not None
        room_id = params.room
        self._require_role(session, room_id)
        if room_id in session.rooms:
            raise Conflict(f"already subscribed to {room_id!r}")
        if len(session.rooms) >= MAX_ROOMS_PER_CONNECTION:
            raise Forbidden(f"at most {MAX_ROOMS_PER_CONNECTION} rooms per connection")
        await self.rooms.actor(room_id)  # RoomNotFound before we touch Redis
        feed = self.hub.feed(room_id)
        feed.begin_join(session.ws)
        session.rooms.add(room_id)
        try:
            # Subscribe first, then read the snapshot: every event after the snapshot is
            # then either in the buffer or in a later broadcast.
            async with self._joins.setdefault(room_id, asyncio.Lock()):
                try:
                    await self.subscriber.subscribe(room_id)
                except (RedisError, OSError, TimeoutError):
                    raise Unavailable("cannot follow the room right now, try again") from None
            since = (params.since.offset, params.since.epoch) if params.since else None
            snapshot = await self.rooms.join(room_id, since, session.identity.user_id)
        except BaseException:
            self._leave(session, room_id)
            raise
        # Reply with the snapshot, then whatever arrived after it, then go live: all written
        # at once, with no await in between, so nothing falls between them.
        self._send(session, result_reply(rid, snapshot))
        # Staff sockets (by token role) also get the show's live analytics every second.
        staff = bool(session.identity.roles_in(room_id) & STAFF_ROLES)
        feed.finish_join(session.ws, session.codec, snapshot["offset"], staff=staff)
        joined = asyncio.ensure_future(self.rooms.send(room_id, Joined(session.actor(room_id))))
        joined.add_done_callback(_ignore_result)  # presence is best effort

    def _kick(self, room_id: str, user_id: str) -> None:
        """A user was banned: their sockets leave the room at once (their tokens still work
        elsewhere)."""
        feed = self.hub.feeds.get(room_id)
        if feed is None:
            return
        for ws in feed.members():
            session = self._sessions.get(ws)
            if session is not None and session.identity.user_id == user_id:
                self._leave(session, room_id)
                self._send(session, {"push": "kicked", "room": room_id, "reason": "banned"})

    def _leave(self, session: Session, room_id: str) -> None:
        session.rooms.discard(room_id)
        feed = self.hub.feeds.get(room_id)
        if feed is not None:
            feed.remove(session.ws)

    async def _drop_feed(self, room_id: str) -> None:
        assert self.subscriber is not None
        async with self._joins.setdefault(room_id, asyncio.Lock()):
            feed = self.hub.feeds.get(room_id)
            if feed is None or len(feed):
                return
            del self.hub.feeds[room_id]
            with contextlib.suppress(Exception):
                await self.subscriber.unsubscribe(room_id)
        # Forget the lock and the room's client state too, or a gateway would keep them for
        # every room it ever served.
        self._joins.pop(room_id, None)
        assert self.rooms is not None
        self.rooms.drop(room_id)


def advertised_url(settings: Settings, node_ip: str) -> str:
    """Where clients reach this gateway: its bind address, or the node's own address when
    it binds every interface."""
    host = settings.ws_host
    if host in ("", "0.0.0.0", "::"):
        host = node_ip
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{settings.ws_port}"


def _node() -> tuple[str, str]:
    """The Ray node this process runs on (id, address); the host outside Ray."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    except Exception:  # not in a Ray worker: a bench or a test
        pass
    return socket.gethostname(), "127.0.0.1"


def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> Subprotocol | None:
    for wanted in (SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON):
        if wanted in subprotocols:
            return Subprotocol(wanted)
    return None  # no subprotocol: JSON


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
