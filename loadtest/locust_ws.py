"""liveshop's WebSocket protocol for Locust users, with every round trip in Locust's statistics.

Locust runs each user as a greenlet on a monkey-patched standard library, so the client here is
the synchronous ``websockets.sync.client``: its socket, selector, locks and reader thread all
become gevent objects and a user waiting for a reply never blocks the others. Each connection
also has a reader greenlet of its own, so pushes are read (and their delivery latency measured)
when they arrive, not when the user next wakes up from its wait.

Used by ``locustfile.py``; see loadtest/README.md ("Locust") for the entries it reports.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust.env import Environment
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from liveshop.config import ENV_SECRET, default_data_dir
from liveshop.follower import RoomFollower, Verdict
from liveshop.tokens import issue_token

logger = logging.getLogger("liveshop.locust")

DEFAULT_WS_URL = "ws://127.0.0.1:8765"
DEFAULT_HTTP_URL = "http://127.0.0.1:8000"
DEFAULT_ROOM = "demo"
#: Locust's ``request_type`` for request/reply round trips and for push deliveries.
WS = "WS"
PUSH = "PUSH"
#: Codes a request gets without any reply from the server (the client's own verdicts).
CONNECTION_LOST = "connection_lost"
TIMEOUT = "timeout"

#: User ids must not collide between Locust processes (``--processes``, workers) or runs: the
#: per-user chat limit and idempotency keys are per user id.
RUN_TAG = secrets.token_hex(3)
_user_numbers = itertools.count(1)

# websockets >= 15 goes through a proxy named by the environment unless told not to; the
# load test always talks to the gateway directly.
_CONNECT_OPTIONS: dict[str, Any] = (
    {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
)


def new_user_id(kind: str) -> str:
    """A user id unique to this process and run, e.g. ``viewer-3fa2c1-7``."""
    return f"{kind}-{RUN_TAG}-{next(_user_numbers)}"


class ConfigError(Exception):
    """The load test cannot run with these options (said before any user starts)."""


@dataclass(frozen=True)
class LoadConfig:
    """What every user needs to know, read once from Locust's options (see ``add_arguments``)."""

    ws_url: str
    http_url: str
    room: str
    secret: str
    timeout: float
    token_ttl: float
    pace: float
    flash_sku: str
    flash_stock: int
    viewer_drop_interval: float
    storm_interval: float
    storm_jitter: float

    def token(self, user_id: str, rooms: Mapping[str, list[str]]) -> str:
        """A token signed with the run's secret, exactly as ``liveshop token`` makes one."""
        return issue_token(
            self.secret, user_id=user_id, name=user_id, rooms=rooms, now=time.time(),
            ttl=self.token_ttl,
        )  # fmt: skip

    def viewer_token(self, user_id: str) -> str:
        return self.token(user_id, {self.room: ["viewer"]})

    def service_token(self) -> str:
        return self.token(f"locust-svc-{RUN_TAG}", {"*": ["service"]})


def add_arguments(parser: Any) -> None:
    """Locust's custom options (``@events.init_command_line_parser``), each with an env var."""
    group = parser.add_argument_group("liveshop")
    group.add_argument(
        "--liveshop-ws-url", env_var="LIVESHOP_WS_URL", default=DEFAULT_WS_URL,
        help="the WebSocket gateway (the HTTP API is --host)",
    )  # fmt: skip
    group.add_argument(
        "--liveshop-room", env_var="LIVESHOP_ROOM", default=DEFAULT_ROOM,
        help="the room every user joins (created through the HTTP API if missing)",
    )  # fmt: skip
    group.add_argument(
        "--liveshop-data-dir", env_var="LIVESHOP_DATA_DIR", default=None,
        help="the run's data dir, for secret.key (LIVESHOP_SECRET, if set, wins)",
    )  # fmt: skip
    group.add_argument(
        "--liveshop-timeout", type=float, env_var="LIVESHOP_LOCUST_TIMEOUT", default=30.0,
        help="seconds to wait for a reply before counting a timeout",
    )  # fmt: skip
    group.add_argument(
        "--liveshop-pace", type=float, env_var="LIVESHOP_LOCUST_PACE", default=1.0,
        help="multiplies every user's wait between actions (0.5: twice the rate per user)",
    )  # fmt: skip
    group.add_argument(
        "--flash-sku", env_var="LIVESHOP_FLASH_SKU", default="locust-flash",
        help="the flash sale's product and SKU id (created if missing)",
    )  # fmt: skip
    group.add_argument(
        "--flash-stock", type=int, env_var="LIVESHOP_FLASH_STOCK", default=100_000,
        help="units of the flash SKU when it is created",
    )  # fmt: skip
    group.add_argument(
        "--viewer-drop-interval", type=float, env_var="LIVESHOP_VIEWER_DROP_INTERVAL",
        default=60.0, help="mean seconds between a viewer's abrupt drops (0: never)",
    )  # fmt: skip
    group.add_argument(
        "--storm-interval", type=float, env_var="LIVESHOP_STORM_INTERVAL", default=30.0,
        help="storm users all drop every this many seconds (wall clock aligned)",
    )  # fmt: skip
    group.add_argument(
        "--storm-jitter", type=float, env_var="LIVESHOP_STORM_JITTER", default=1.0,
        help="each storm user drops within this many seconds after the storm's moment",
    )  # fmt: skip


def read_secret(data_dir: str | None) -> str:
    """``LIVESHOP_SECRET``, else the data dir's ``secret.key`` (never created here: a new
    secret would sign tokens the running liveshop refuses)."""
    if os.environ.get(ENV_SECRET):
        return os.environ[ENV_SECRET]
    path = (Path(data_dir) if data_dir else default_data_dir()) / "secret.key"
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"no token secret: set {ENV_SECRET} or point --liveshop-data-dir at the data dir of "
            f"the running liveshop ({path}: {exc.strerror})"
        ) from None


def load_config(options: Any, host: str | None) -> LoadConfig:
    """Build the config from Locust's parsed options; ``ConfigError`` says what is wrong."""
    if options.liveshop_timeout <= 0 or options.liveshop_pace < 0:
        raise ConfigError("--liveshop-timeout must be > 0 and --liveshop-pace >= 0")
    run_time = getattr(options, "run_time", None) or 0
    return LoadConfig(
        ws_url=options.liveshop_ws_url,
        http_url=(host or DEFAULT_HTTP_URL).rstrip("/"),
        room=options.liveshop_room,
        secret=read_secret(options.liveshop_data_dir),
        timeout=options.liveshop_timeout,
        # Tokens outlive the run (the gateway closes a connection whose token expires).
        token_ttl=max(3600.0, run_time + 600.0),
        pace=options.liveshop_pace,
        flash_sku=options.flash_sku,
        flash_stock=options.flash_stock,
        viewer_drop_interval=options.viewer_drop_interval,
        storm_interval=max(1.0, options.storm_interval),
        storm_jitter=max(0.0, options.storm_jitter),
    )


_config: LoadConfig | None = None


def config(environment: Environment) -> LoadConfig:
    """The run's config, built on first use in each Locust process."""
    global _config
    if _config is None:
        _config = load_config(environment.parsed_options, environment.host)
    return _config


class WsError(Exception):
    """A failure as Locust's failure table shows it: the error code only (messages vary, and
    Locust groups failures by their text)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def report(
    environment: Environment,
    request_type: str,
    name: str,
    ms: float,
    length: int = 0,
    error: str | None = None,
) -> None:
    """One entry in Locust's statistics; ``error`` (a code) makes it a failure."""
    environment.events.request.fire(
        request_type=request_type, name=name, response_time=max(0.0, ms),
        response_length=length, exception=WsError(error) if error else None, context={},
    )  # fmt: skip


@dataclass
class Reply:
    """A request's outcome: the reply's ``result`` or ``error``, its round trip and size."""

    result: dict[str, Any] | None
    error: dict[str, Any] | None
    ms: float
    length: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def code(self) -> str | None:
        return None if self.error is None else str(self.error.get("code"))


class Connection:
    """One WebSocket connection: requests matched to replies by id, pushes handed to
    ``on_push`` by a reader greenlet in the order they arrive."""

    def __init__(
        self,
        environment: Environment,
        ws: ClientConnection,
        timeout: float,
        on_push: Callable[[Connection, dict[str, Any]], None],
        on_lost: Callable[[Connection, str], None],
    ) -> None:
        self.environment = environment
        self.ws = ws
        self.timeout = timeout
        self.on_push = on_push
        self.on_lost = on_lost
        self.alive = True
        #: Set when we close or abort on purpose: what fails after that is not reported.
        self.closing = False
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[AsyncResult, Callable[[dict[str, Any]], None] | None]] = {}
        self.reader = gevent.spawn(self._read)

    @classmethod
    def open(
        cls,
        environment: Environment,
        cfg: LoadConfig,
        on_push: Callable[[Connection, dict[str, Any]], None],
        on_lost: Callable[[Connection, str], None],
    ) -> Connection | None:
        """TCP and WebSocket handshake, reported as ``open``; None if it failed."""
        start = time.perf_counter()
        try:
            # __enter__ is what `with connect(...)` calls; the connection outlives this call.
            ws = connect(
                cfg.ws_url, open_timeout=cfg.timeout, close_timeout=2, compression=None,
                ping_interval=None, max_size=2**23, **_CONNECT_OPTIONS,
            ).__enter__()  # fmt: skip
        except Exception as exc:
            report(environment, WS, "open", _ms(start), error=type(exc).__name__)
            return None
        report(environment, WS, "open", _ms(start))
        return cls(environment, ws, cfg.timeout, on_push, on_lost)

    def request(
        self,
        op: str,
        *,
        name: str | None = None,
        expected: Mapping[str, str] | None = None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
        **fields: Any,
    ) -> Reply:
        """Send one request and wait for its reply, reported under ``name`` (default: ``op``).

        An ``error`` reply is a failure with its code, unless ``expected`` maps the code to the
        name of an entry counted as a success (e.g. ``out_of_stock`` -> ``buy (sold out)``).
        ``on_result`` runs in the reader as soon as a result arrives, before any later frame
        is read (a subscribe's follower must be set before the next push is looked at)."""
        name = name or op
        start = time.perf_counter()
        if not self.alive:  # the reader is gone: nobody would ever answer
            return self._fail(name, CONNECTION_LOST, start)
        rid = next(self._ids)
        waiter: AsyncResult = AsyncResult()
        self._pending[rid] = (waiter, on_result)
        try:
            self.ws.send(json.dumps({"id": rid, "op": op, **fields}))
            message, length, arrived = waiter.get(timeout=self.timeout)
        except gevent.Timeout:
            self._pending.pop(rid, None)
            return self._fail(name, TIMEOUT, start)
        except (ConnectionClosed, OSError, _Lost):
            self._pending.pop(rid, None)
            return self._fail(name, CONNECTION_LOST, start)
        ms = (arrived - start) * 1000
        error = message.get("error")
        if error is None:
            report(self.environment, WS, name, ms, length)
            return Reply(message.get("result") or {}, None, ms, length)
        code = str(error.get("code"))
        if expected and code in expected:
            report(self.environment, WS, expected[code], ms, length)
        else:
            report(self.environment, WS, name, ms, length, error=code)
        return Reply(None, error, ms, length)

    def _fail(self, name: str, code: str, start: float) -> Reply:
        if not self.closing:
            report(self.environment, WS, name, _ms(start), error=code)
        return Reply(None, {"code": code}, _ms(start))

    def _read(self) -> None:
        reason = "closed"
        try:
            for frame in self.ws:
                arrived = time.perf_counter()
                message = json.loads(frame)
                if "push" in message:
                    try:
                        self.on_push(self, message)
                    except Exception:
                        logger.exception("push handler failed")
                    continue
                waiting = self._pending.pop(message.get("id"), None)
                if waiting is None:
                    continue  # its request timed out
                waiter, on_result = waiting
                if on_result is not None and "result" in message:
                    try:
                        on_result(message["result"])
                    except Exception:
                        logger.exception("reply handler failed")
                waiter.set((message, len(frame), arrived))
            code = self.ws.close_code
            reason = f"close {code}" if code is not None else "closed"
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = f"close {code}" if code is not None else "dropped"
        except Exception as exc:
            reason = type(exc).__name__
        finally:
            self.alive = False
            for waiter, _ in self._pending.values():
                waiter.set_exception(_Lost())
            self._pending.clear()
        if not self.closing:
            self.on_lost(self, reason)

    def close(self) -> None:
        """The closing handshake (at most ``close_timeout``), then stop the reader."""
        self.closing = True
        with contextlib.suppress(Exception):
            self.ws.close()
        self._stop_reader()

    def abort(self) -> None:
        """Drop the connection the way a phone losing its network does: a TCP reset, no
        close handshake."""
        self.closing = True
        with contextlib.suppress(OSError):
            self.ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # close_socket() closes the socket and wakes websockets' own reader; close() would
        # send a close frame first.
        with contextlib.suppress(Exception):
            self.ws.close_socket()
        self._stop_reader()

    def _stop_reader(self) -> None:
        if gevent.getcurrent() is not self.reader:
            self.reader.join(timeout=3)
            self.reader.kill(block=False)


class _Lost(Exception):
    """The connection went away while a request waited for its reply."""


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


class RoomSession:
    """A user in one room across connections: connect, subscribe, follow the room's stream
    with ``RoomFollower`` (resubscribing with ``since`` on a gap, from a new snapshot on a new
    epoch), reconnect after drops and check what the room recovered.

    Entries it reports (besides each request under its op): ``open``; ``recover`` (a
    subscribe with ``since`` after a reconnect: a failure unless ``recovered`` is true and the
    events are exactly those after ``since``; its size is the number of events recovered);
    ``recover (gap)`` (the same after a jump in offsets on a live connection); ``resync (new
    epoch)``; ``reconnect`` (drop to subscribe reply); ``connection lost`` (the server closed
    or dropped us); and ``PUSH <kind>``: now minus the event's ``ts``, once per event."""

    def __init__(
        self, environment: Environment, cfg: LoadConfig, user_id: str, token: Callable[[], str]
    ) -> None:
        self.environment = environment
        self.cfg = cfg
        self.user_id = user_id
        self._token = token
        self.follower = RoomFollower(cfg.room)
        self.conn: Connection | None = None
        #: The current connection is subscribed (or resubscribing after a gap).
        self.subscribed = False
        self._resync: gevent.Greenlet | None = None

    @property
    def ready(self) -> bool:
        return self.conn is not None and self.conn.alive and self.subscribed

    def ensure(self) -> bool:
        """Be connected and subscribed: reconnect (and recover) after a lost connection."""
        return self.ready or self._connect()

    def request(self, op: str, **kwargs: Any) -> Reply:
        """A request on the current connection (see ``Connection.request``)."""
        if self.conn is None:
            return Reply(None, {"code": CONNECTION_LOST}, 0.0)
        return self.conn.request(op, **kwargs)

    def drop_and_recover(self) -> bool:
        """Abort the connection, reconnect at once and subscribe with ``since``; reports
        ``reconnect`` (drop to subscribe reply) and ``recover``."""
        start = time.perf_counter()
        self._discard(abort=True)
        ok = self._connect()
        report(self.environment, WS, "reconnect", _ms(start), error=None if ok else "failed")
        return ok

    def close(self) -> None:
        """Leave cleanly (Locust's on_stop)."""
        self._discard(abort=False)

    def _discard(self, *, abort: bool) -> None:
        if self._resync is not None:
            self._resync.kill(block=False)
            self._resync = None
        self.subscribed = False
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort() if abort else conn.close()

    def _connect(self) -> bool:
        self._discard(abort=True)
        conn = Connection.open(self.environment, self.cfg, self._on_push, self._on_lost)
        if conn is None:
            return False
        self.conn = conn
        if not conn.request("connect", token=self._token()).ok:
            self._discard(abort=False)
            return False
        return self._subscribe(conn, recover_name="recover") is not None

    def _subscribe(self, conn: Connection, *, recover_name: str) -> Reply | None:
        """Subscribe (with ``since`` if the follower holds a position) and report the
        recovery; None if the subscribe failed."""
        since = self.follower.since()
        problem: list[str] = []

        def apply(result: dict[str, Any]) -> None:
            # In the reader, before the next push: the stream continues from this reply.
            self.follower.on_subscribed(result)
            if since is not None:
                problem.extend(_recovery_problem(since, result))

        self.follower.subscribing()
        fields: dict[str, Any] = {"room": self.cfg.room}
        if since is not None:
            fields["since"] = since
        reply = conn.request("subscribe", on_result=apply, **fields)
        if not reply.ok or reply.result is None:
            self.subscribed = False
            return None
        self.subscribed = True
        if since is not None:
            events = len(reply.result.get("events") or ())
            error = problem[0] if problem else None
            report(self.environment, WS, recover_name, reply.ms, events, error=error)
        return reply

    def _on_push(self, conn: Connection, push: dict[str, Any]) -> None:
        kind = push.get("push")
        if conn is not self.conn or push.get("room") != self.cfg.room:
            return
        if kind == "kicked":
            report(self.environment, PUSH, "kicked", 0, error=str(push.get("reason")))
            return
        if kind != "room":
            return
        duplicates = self.follower.duplicates
        verdict, taken = self.follower.on_push(push)
        now_ms = time.time() * 1000
        for event in taken:
            if "ts" in event:
                report(self.environment, PUSH, str(event.get("kind")), now_ms - event["ts"])
        if self.follower.duplicates > duplicates:
            report(self.environment, PUSH, "duplicate", 0, error="duplicate")
        if verdict in (Verdict.GAP, Verdict.NEW_EPOCH) and self._resync is None:
            self._resync = gevent.spawn(self._resubscribe, conn, verdict)

    def _resubscribe(self, conn: Connection, verdict: Verdict) -> None:
        """Close a gap with ``since`` (or start from a new epoch's snapshot) on the same
        connection: unsubscribe, then subscribe again (docs/protocol.md, "Room pushes")."""
        try:
            left = conn.request("unsubscribe", room=self.cfg.room)
            if not left.ok and left.code != "not_subscribed":
                self.subscribed = False
                return
            if verdict is Verdict.GAP:
                self._subscribe(conn, recover_name="recover (gap)")
            else:
                reply = self._subscribe(conn, recover_name="recover")
                if reply is not None:
                    report(self.environment, WS, "resync (new epoch)", reply.ms, reply.length)
        finally:
            self._resync = None

    def _on_lost(self, conn: Connection, reason: str) -> None:
        """The server closed or dropped us: a failure; the next ``ensure`` reconnects."""
        if conn is self.conn:
            report(self.environment, WS, "connection lost", 0, error=reason)


def _recovery_problem(since: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Why a subscribe with ``since`` did not deliver exactly what was missed (empty: it did)."""
    if not result.get("recovered"):
        return ["not_recovered"]
    offsets = [e.get("offset") for e in result.get("events") or ()]
    if offsets != list(range(since["offset"] + 1, result["offset"] + 1)):
        return ["events_not_contiguous"]
    return []
