"""Locust load tests for liveshop: viewers, flash-sale buyers, HTTP services, reconnect storms.

Each scenario is a tag; run one against `liveshop up` (loadtest/README.md, "Locust"):

    .venv/bin/locust -f loadtest/locustfile.py --headless --tags viewer -u 50 -r 10 -t 60s \\
        --csv /tmp/viewer

Tags: ``viewer`` (WebSocket viewers), ``flash`` (flash-sale buyers), ``http`` (a shop backend
on the HTTP API), ``storm`` (everyone drops and reconnects at once). Several tags mix their
users by weight. Tokens are signed with the run's secret, as `liveshop token` signs them.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import requests
from locust import HttpUser, User, constant, events, tag, task
from locust.env import Environment
from locust.runners import WorkerRunner
from locust_ws import (  # beside this file: Locust puts this directory on sys.path
    DEFAULT_HTTP_URL,
    ConfigError,
    LoadConfig,
    RoomSession,
    add_arguments,
    config,
    new_user_id,
)

logger = logging.getLogger("liveshop.locust")

TAGS = ("viewer", "flash", "http", "storm")
REACTIONS = ("heart", "fire", "clap", "laugh", "wow")
PHRASES = ("love this", "how much is shipping?", "is it in blue?", "just bought one",
           "hello from the load test", "that colour though", "ordering two")  # fmt: skip
FLASH_PRICE_MINOR = 1999
DEAL_PRICE_MINOR = 999


def paced(low: float, high: float) -> Callable[[User], float]:
    """A wait between actions, scaled by ``--liveshop-pace``."""

    def wait_time(user: User) -> float:
        return random.uniform(low, high) * config(user.environment).pace

    return wait_time


class ChatBudget:
    """Stays under the room's per-user chat limit (20 messages per 30 s by default,
    docs/protocol.md "Chat") so that a fast pace never turns into rate_limited failures."""

    def __init__(self, limit: int = 15, window: float = 30.0) -> None:
        self.limit = limit
        self.window = window
        self.sent: deque[float] = deque()

    def take(self) -> bool:
        now = time.monotonic()
        while self.sent and now - self.sent[0] > self.window:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            return False
        self.sent.append(now)
        return True


class RoomUser(User):
    """A WebSocket user with a viewer token in the room (one user id per Locust user, so the
    per-user limits are spread over many ids)."""

    abstract = True
    kind = "viewer"

    def on_start(self) -> None:
        self.cfg: LoadConfig = config(self.environment)
        self.user_id = new_user_id(self.kind)
        self.session = RoomSession(
            self.environment, self.cfg, self.user_id, lambda: self.cfg.viewer_token(self.user_id)
        )
        self.chats = ChatBudget()
        self.session.ensure()

    def on_stop(self) -> None:
        self.session.close()

    def chat(self, text: str) -> None:
        if self.chats.take():
            self.session.request("chat", room=self.cfg.room, text=text)


class ViewerUser(RoomUser):
    """Watches the room: follows its pushes (delivery latency per event), chats and reacts now
    and then, and every ``--viewer-drop-interval`` seconds on average loses its network and
    comes back with ``since``."""

    weight = 10
    wait_time = paced(1, 3)

    def on_start(self) -> None:
        super().on_start()
        self.next_drop = self._drop_after()

    def _drop_after(self) -> float:
        interval = self.cfg.viewer_drop_interval
        return math.inf if interval <= 0 else time.monotonic() + random.expovariate(1 / interval)

    def _ready(self) -> bool:
        """Connected and subscribed; first drops and recovers if a drop is due."""
        if self.session.ready and time.monotonic() >= self.next_drop:
            self.next_drop = self._drop_after()
            return self.session.drop_and_recover()
        return self.session.ensure()

    @tag("viewer")
    @task(3)
    def send_chat(self) -> None:
        if self._ready():
            self.chat(f"{random.choice(PHRASES)} ({random.randrange(1000)})")

    @tag("viewer")
    @task(6)
    def react(self) -> None:
        if self._ready():
            kind, count = random.choice(REACTIONS), random.randint(1, 5)
            self.session.request("react", room=self.cfg.room, kind=kind, count=count)

    @tag("viewer")
    @task(1)
    def ping(self) -> None:
        if self._ready():
            self.session.request("ping")

    @tag("viewer")
    @task(2)
    def watch(self) -> None:
        """Just watching: pushes keep arriving in the connection's reader."""
        self._ready()


class BuyerUser(RoomUser):
    """A flash-sale buyer: watches the room and buys the flash SKU one unit at a time, each
    buy with its own idempotency key, retried with the same key when the answer is
    ``unavailable`` or lost. ``out_of_stock`` is the sale's expected end: ``buy (sold out)``."""

    kind = "buyer"
    weight = 4
    wait_time = paced(0.5, 2)
    retries = 5

    def on_start(self) -> None:
        super().on_start()
        self.keys = itertools.count(1)

    @tag("flash")
    @task
    def buy(self) -> None:
        key = f"{self.user_id}-{next(self.keys)}"
        for attempt in range(self.retries):
            if self.session.ensure():
                reply = self.session.request(
                    "buy", expected={"out_of_stock": "buy (sold out)"}, room=self.cfg.room,
                    sku=self.cfg.flash_sku, quantity=1, key=key,
                )  # fmt: skip
                if reply.code not in ("unavailable", "timeout", "connection_lost"):
                    return  # bought, sold out, or refused for good (reported as such)
            gevent.sleep(min(2.0, 0.2 * 2**attempt))


class StormUser(RoomUser):
    """Reconnect storm: every ``--storm-interval`` seconds (aligned to the wall clock, so all
    users and Locust processes share the moment) each user drops within ``--storm-jitter``
    seconds and reconnects at once with ``since``; half of them say they are back, which the
    later ones must recover."""

    kind = "storm"
    weight = 4
    wait_time = constant(0)  # the task waits for the next storm itself

    @tag("storm")
    @task
    def storm(self) -> None:
        if not self.session.ensure():
            gevent.sleep(1)
            return
        interval = self.cfg.storm_interval
        # At least a second subscribed before dropping (a slot too close is skipped).
        moment = math.ceil((time.time() + 1.0) / interval) * interval
        gevent.sleep(max(0.0, moment + random.uniform(0, self.cfg.storm_jitter) - time.time()))
        if self.session.drop_and_recover() and random.random() < 0.5:
            self.chat("back!")


class ServiceUser(HttpUser):
    """A shop backend on the HTTP API with a service token: room snapshots, SKU reads and the
    SKU's audit (a failure if the books do not balance), health, the channel grid, re-pinning
    the flash product, system messages."""

    weight = 1
    host = DEFAULT_HTTP_URL
    wait_time = paced(0.5, 2)

    def on_start(self) -> None:
        self.cfg: LoadConfig = config(self.environment)
        self.client.headers["Authorization"] = f"Bearer {self.cfg.service_token()}"

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        status: int = 200,
        body: dict[str, Any] | None = None,
        check: Callable[[Any], str | None] | None = None,
    ) -> None:
        """One request; a failure unless it answers ``status`` and ``check`` finds nothing."""
        with self.client.request(
            method, path, name=name, json=body, catch_response=True
        ) as response:
            if response.status_code != status:
                response.failure(_http_error(response))
                return
            problem = check(response.json()) if check else None
            if problem:
                response.failure(problem)
            else:
                response.success()

    @tag("http")
    @task(4)
    def room_snapshot(self) -> None:
        self.call("GET", f"/rooms/{self.cfg.room}", "/rooms/[room]",
                  check=lambda r: None if "epoch" in r else "no epoch in the snapshot")  # fmt: skip

    @tag("http")
    @task(1)
    def rooms(self) -> None:
        self.call("GET", "/rooms?limit=20", "/rooms")

    @tag("http")
    @task(2)
    def healthz(self) -> None:
        self.call("GET", "/healthz", "/healthz", check=_healthy)

    @tag("http")
    @task(2)
    def grid(self) -> None:
        self.call("GET", "/grid", "/grid")

    @tag("http")
    @task(3)
    def sku(self) -> None:
        self.call("GET", f"/skus/{self.cfg.flash_sku}", "/skus/[sku]")

    @tag("http")
    @task(1)
    def product(self) -> None:
        self.call("GET", f"/products/{self.cfg.flash_sku}", "/products/[id]")

    @tag("http")
    @task(1)
    def audit(self) -> None:
        self.call("GET", f"/skus/{self.cfg.flash_sku}/audit", "/skus/[sku]/audit",
                  check=lambda r: "; ".join(r.get("problems") or []) or None)  # fmt: skip

    @tag("http")
    @task(1)
    def repin(self) -> None:
        """Unpin and pin the flash product again (it stays pinned for the other scenarios)."""
        path = f"/rooms/{self.cfg.room}/pin"
        self.call("DELETE", path, "/rooms/[room]/pin")
        self.call("POST", path, "/rooms/[room]/pin", body={"product_id": self.cfg.flash_sku})

    @tag("http")
    @task(1)
    def system_message(self) -> None:
        self.call("POST", f"/rooms/{self.cfg.room}/messages", "/rooms/[room]/messages",
                  status=201, body={"text": "the flash deal ends soon"})  # fmt: skip


def _healthy(body: dict[str, Any]) -> str | None:
    return None if body.get("status") == "ok" else f"status {body.get('status')}"


def _http_error(response: Any) -> str:
    """``409 conflict``: the status and liveshop's error code, if the body has one."""
    try:
        code = response.json()["error"]["code"]
    except Exception:
        code = type(response.error).__name__ if response.error else ""
    return f"{response.status_code} {code}".strip()


@events.init_command_line_parser.add_listener
def _arguments(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    _keep_selected_users(environment)
    try:
        config(environment)
    except ConfigError as exc:
        logger.error("%s", exc)
        sys.exit(2)


def _keep_selected_users(environment: Environment) -> None:
    """Locust filters tasks by ``--tags`` but still spawns users left without tasks (which
    then fail); keep only the user classes a tag selects, so that a tag is a scenario."""
    options = environment.parsed_options
    tags = set(options.tags) if options is not None and options.tags else None
    exclude = set(options.exclude_tags or ()) if options is not None else set()

    def selected(user_class: type[User]) -> bool:
        for t in user_class.tasks:
            marks = getattr(t, "locust_tag_set", set())
            if (tags is None or marks & tags) and not marks & exclude:
                return True
        return False

    kept = [u for u in environment.user_classes if selected(u)]
    if not kept:
        logger.error("no user class has a task tagged %s (tags: %s)", sorted(tags or ()), TAGS)
        sys.exit(2)
    environment.user_classes[:] = kept


class SetupError(Exception):
    """liveshop refused what the scenario needs."""


@events.test_start.add_listener
def _prepare(environment: Environment, **_: Any) -> None:
    """Once per test, in the local or master runner: the room, and for buyers and services
    the flash product and SKU (pinned, with a deal), each created unless it exists."""
    if isinstance(environment.runner, WorkerRunner):
        return
    cfg = config(environment)
    flash = bool({BuyerUser, ServiceUser} & set(environment.user_classes))
    run_time = getattr(environment.parsed_options, "run_time", None) or 0
    deal_seconds = min(86400, max(120, run_time + 60)) if run_time else 3600
    try:
        prepare(cfg, flash=flash, deal_seconds=deal_seconds)
    except (requests.RequestException, SetupError) as exc:
        logger.error("cannot prepare the load test at %s: %s", cfg.http_url, exc)
        environment.process_exit_code = 2
        if environment.runner is not None:
            gevent.spawn_later(0.1, environment.runner.quit)


def prepare(cfg: LoadConfig, *, flash: bool, deal_seconds: float) -> None:
    """Create the room and the flash sale through the HTTP API with a service token."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {cfg.service_token()}"

    def post(path: str, body: dict[str, Any], *, exists: int | None = 409) -> bool:
        """True if created (or done), False if it already existed."""
        response = http.post(cfg.http_url + path, json=body, timeout=cfg.timeout)
        if response.status_code in (200, 201):
            return True
        if response.status_code == exists:
            return False
        raise SetupError(f"POST {path}: {response.status_code} {response.text[:300]}")

    room, sku = cfg.room, cfg.flash_sku
    made = post("/rooms", {"id": room, "title": f"Load test ({room})"})
    logger.info("room %s: %s", room, "created" if made else "exists")
    if not flash:
        return
    post("/products", {"id": sku, "title": "Flash deal (load test)",
                       "price_minor": FLASH_PRICE_MINOR, "currency": "USD"})  # fmt: skip
    made = post("/skus", {"id": sku, "product_id": sku, "on_hand": cfg.flash_stock})
    # The seller (the service token acts for it) lets the room promote the product.
    listed = http.put(f"{cfg.http_url}/products/{sku}/rooms/{room}", timeout=cfg.timeout)
    if listed.status_code != 200:
        raise SetupError(f"PUT /products/{sku}/rooms/{room}: {listed.status_code}")
    post(f"/rooms/{room}/pin", {"product_id": sku}, exists=None)
    view = http.get(f"{cfg.http_url}/skus/{sku}", timeout=cfg.timeout)
    if view.status_code != 200:
        raise SetupError(f"GET /skus/{sku}: {view.status_code} {view.text[:300]}")
    available = int(view.json()["available"])
    deal = post(f"/rooms/{room}/commerce/start_deal", {
        "sku": sku, "price_minor": DEAL_PRICE_MINOR, "duration": deal_seconds,
        "quantity": min(max(available, 1), 1_000_000),
    })  # fmt: skip
    logger.info(
        "flash SKU %s: %s, %d available, pinned in %s, deal %s", sku,
        "created" if made else "exists", available, room,
        f"live for {deal_seconds:.0f} s" if deal else "already live (or none possible)",
    )  # fmt: skip
    if available == 0:
        logger.warning("flash SKU %s is sold out: buys will be 'buy (sold out)' (restock it "
                       "or name another with --flash-sku)", sku)  # fmt: skip
