"""Settings for one liveshop run, from defaults, the environment and the command line.

One frozen, picklable object: the CLI builds it and hands it to every actor and replica, so
no process reads the environment behind the others' backs.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from liveshop.media.ladder import DEFAULT_LADDER_SPEC
from liveshop.rooms.history import HISTORY_AGE, HISTORY_SIZE

ENV_DATABASE_URL = "LIVESHOP_DATABASE_URL"
ENV_REDIS_URL = "LIVESHOP_REDIS_URL"
ENV_SECRET = "LIVESHOP_SECRET"
ENV_ADMIN_KEY = "LIVESHOP_ADMIN_KEY"
ENV_DATA_DIR = "LIVESHOP_DATA_DIR"
ENV_ORIGINS = "LIVESHOP_ALLOWED_ORIGINS"
ENV_DEV_TOKENS = "LIVESHOP_DEV_TOKENS"
ENV_GUEST_TOKENS = "LIVESHOP_GUEST_TOKENS"
ENV_PUBLIC_WS_URL = "LIVESHOP_PUBLIC_WS_URL"
ENV_PLACEMENT = "LIVESHOP_PLACEMENT"
ENV_MEDIA_CPU_SHARE = "LIVESHOP_MEDIA_CPU_SHARE"
ENV_MAX_BODY_BYTES = "LIVESHOP_MAX_BODY_BYTES"
ENV_DEDICATED = "LIVESHOP_DEDICATED"
ENV_ENTITY_HOSTS = "LIVESHOP_ENTITY_HOSTS"

NAMESPACE = "liveshop"
#: ``Settings.placement`` when `liveshop up` should read it off the cluster.
AUTO_PLACEMENT: tuple[str, ...] = ("auto",)


def default_data_dir() -> Path:
    return Path(os.environ.get(ENV_DATA_DIR) or platformdirs.user_data_dir("liveshop"))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    #: None means "start an embedded one"; filled in with the real URL once it runs.
    database_url: str | None = None
    redis_url: str | None = None
    secret: str = ""
    admin_key: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    ws_host: str = "127.0.0.1"
    ws_port: int = 8765
    dashboard_port: int = 8265
    #: Gateway processes; 0: one per ``gateway`` unit the cluster's nodes declare (following
    #: nodes as they join and leave), or 1 on a cluster that declares none.
    gateways: int = 0
    #: The placement resources (actors/wiring.PLACEMENT_RESOURCES) liveshop asks for: by
    #: default (AUTO_PLACEMENT) `liveshop up` takes those some node of the cluster declares;
    #: ``--placement`` names them, to wait for nodes that are still joining.
    placement: tuple[str, ...] = AUTO_PLACEMENT
    #: Browser origins allowed to open a WebSocket; clients that send no Origin (apps,
    #: services) are always allowed. Empty tuple: loopback pages only.
    allowed_origins: tuple[str, ...] = ()
    #: How long a room gathers changes before it publishes one message (seconds); rooms with
    #: more than ``tick_viewers`` viewers stretch it in proportion, up to ``max_tick``.
    tick_interval: float = 0.05
    tick_viewers: int = 2000
    max_tick: float = 0.25
    #: How long a gateway gathers commands for one room before one actor call (seconds).
    batch_window: float = 0.002
    max_batch: int = 512
    #: Calls a process keeps out to one actor (per method); what arrives meanwhile rides the
    #: next call, so batches grow with the load instead of the calls (see serve/batcher.py).
    max_calls_in_flight: int = 2
    #: Buys for one SKU per actor call: a decision costs microseconds, so a flash sale is
    #: served best by few, large calls (measured: 2,048 sold ~10% faster than 512).
    sku_max_batch: int = 2048
    connect_timeout: float = 5.0
    actor_call_timeout: float = 10.0
    #: Per-connection rate limit: sustained requests per second and burst.
    rate_per_second: float = 20.0
    rate_burst: int = 40
    #: Per user and gateway: sockets at once, and the requests of all of them together.
    max_user_connections: int = 32
    user_rate_per_second: float = 40.0
    user_rate_burst: int = 80
    max_inflight: int = 32
    viewer_report_interval: float = 1.0
    token_ttl: float = 24 * 3600.0
    #: History window: a reconnecting client recovers the events it missed if they are among
    #: the room's last ``history_size`` events and younger than ``history_age`` seconds.
    history_size: int = HISTORY_SIZE
    history_age: float = HISTORY_AGE
    #: Automatic chat moderation: a check from liveshop.rooms.automod.CHECKS ("" = off), and
    #: how long a room waits for it before its fallback decides.
    automod: str = "basic"
    automod_timeout: float = 0.2
    #: A connection whose unsent data exceeds this is closed with 1013 (it stopped reading);
    #: the kernel's send buffer per connection is capped at ``socket_send_buffer``.
    slow_consumer_bytes: int = 256 * 1024
    socket_send_buffer: int = 64 * 1024
    #: How long a cart hold keeps its units when the request names no ``ttl`` (seconds).
    hold_seconds: float = 600.0
    #: The payment provider (liveshop.payments.providers.PROVIDERS) and how long a charge may
    #: take before the payment is left pending for the reconciler (seconds).
    payment_provider: str = "test"
    payment_timeout: float = 5.0
    #: An order still unpaid after this long is cancelled and its units go back (seconds).
    payment_window: float = 900.0
    #: How often the API replicas reconcile pending payments and expire unpaid orders.
    reconcile_interval: float = 5.0
    #: A cart nobody touched for this long emits one ``cart_abandoned`` event (seconds).
    cart_abandon_after: float = 3600.0
    #: RTMP ingest (OBS, hardware encoders): where the listener binds, in every media replica.
    rtmp_host: str = "127.0.0.1"
    rtmp_port: int = 1935
    media_replicas: int = 1
    #: How often a channel actor routes, fires due cues and counts its show's analytics.
    channel_tick: float = 1.0
    #: Entity hosts: the Ray actor processes that host rooms, SKUs, auctions, carts and
    #: channels, many to a process (liveshop/mesh). 0: one per ``actors`` unit the cluster's
    #: nodes declare, or 2 on a cluster that declares none.
    entity_hosts: int = 0
    #: Entities with a host of their own (``kind:key``, e.g. ``sku:FLASH-1``): a flash-sale
    #: SKU or a huge room keeps a whole process (LIVESHOP_DEDICATED, comma-separated).
    dedicated_entities: tuple[str, ...] = ()
    #: PostgreSQL connections each host shares among all its entities.
    host_pool_size: int = 10
    #: An entity nobody called for this long is passivated (written state stays in
    #: PostgreSQL; the next message activates it again), if its kind allows it then: a cart
    #: always, a SKU with no live hold or deal, an auction once settled, a room with no
    #: viewers and nothing unsaved; channels run 24/7 and are never passivated.
    passivate_after: float = 120.0
    #: How often callers and hosts re-read the directory of hosts (seconds).
    directory_ttl: float = 2.0
    #: Live streams the local node transcodes at once (its ``media`` resource) when
    #: ``liveshop up`` starts the cluster; joined clusters declare it per node.
    media_slots: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    #: Live HLS: segment length (one keyframe each; short keeps latency low), how many the
    #: live playlist lists, the x264 preset of the ladder.
    segment_seconds: float = 1.0
    hls_window: int = 6
    media_preset: str = "veryfast"
    #: The ABR ladder, ``height:video_kbps[:audio_kbps]`` per rung (heights are the short
    #: side; a source gets the rungs at or below its own size, never upscaled).
    media_ladder: str = DEFAULT_LADDER_SPEC
    #: The share of a core (the encoding thread) and of its node's cores one stream's
    #: ladder is sized to when it starts (the node's encoding cost measured then); rungs
    #: above it are left out. 0: every rung (LIVESHOP_MEDIA_CPU_SHARE).
    media_cpu_share: float = 0.75
    #: An ingest silent this long is stalled: the stream fails over to the backup or slate.
    stall_after: float = 2.0
    #: With no publisher for this long the stream ends (its recording becomes a replay).
    media_idle_end: float = 60.0
    thumbnail_interval: float = 5.0
    #: WHEP (WebRTC playback) subscribers per stream: each costs an encode, so WebRTC is
    #: for co-hosts and small rooms and HLS for everyone else.
    whep_max_subscribers: int = 20
    #: WHEP sessions one user may hold in one stream (one token cannot fill the stream's).
    whep_max_per_user: int = 2
    #: A WebRTC session (WHEP or WHIP) whose ICE/DTLS has not connected this long after its
    #: answer is closed, so offers never completed hold no slot (seconds).
    webrtc_connect_timeout: float = 10.0
    #: The largest HTTP request body the API and media apps read (413 ``too_large`` above
    #: it; a show booked with its run of show may be larger: programming_api.SHOW_BODY_BYTES).
    max_body_bytes: int = 256 * 1024
    #: Where HLS segments, playlists, thumbnails and recordings live (None: data_dir/media).
    media_dir: Path | None = None
    #: POST /dev/tokens (admin key required). Turn off where a real identity provider
    #: issues the tokens: LIVESHOP_DEV_TOKENS=off.
    dev_tokens: bool = True
    #: POST /auth/guest: the pages' guests get a viewer token of their own (to watch, chat
    #: and buy with guest checkout) without an account. Off where every viewer signs in
    #: through the platform's identity provider: LIVESHOP_GUEST_TOKENS=off.
    guest_tokens: bool = True
    #: The WebSocket URL the web pages connect to (behind a load balancer, its public
    #: address); default: ``ws_url``.
    public_ws_url: str | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then the environment, then explicit overrides (from the CLI)."""
        env: dict[str, Any] = {}
        if os.environ.get(ENV_DATABASE_URL):
            env["database_url"] = os.environ[ENV_DATABASE_URL]
        if os.environ.get(ENV_REDIS_URL):
            env["redis_url"] = os.environ[ENV_REDIS_URL]
        if os.environ.get(ENV_SECRET):
            env["secret"] = os.environ[ENV_SECRET]
        if os.environ.get(ENV_ADMIN_KEY):
            env["admin_key"] = os.environ[ENV_ADMIN_KEY]
        if os.environ.get(ENV_ORIGINS):
            env["allowed_origins"] = tuple(
                o.strip() for o in os.environ[ENV_ORIGINS].split(",") if o.strip()
            )
        for name, key in ((ENV_DEV_TOKENS, "dev_tokens"), (ENV_GUEST_TOKENS, "guest_tokens")):
            if os.environ.get(name):
                env[key] = os.environ[name].lower() not in ("0", "off", "false", "no")
        if os.environ.get(ENV_PUBLIC_WS_URL):
            env["public_ws_url"] = os.environ[ENV_PUBLIC_WS_URL]
        if os.environ.get(ENV_PLACEMENT):
            env["placement"] = parse_placement(os.environ[ENV_PLACEMENT])
        if os.environ.get(ENV_MEDIA_CPU_SHARE):
            env["media_cpu_share"] = min(1.0, max(0.0, float(os.environ[ENV_MEDIA_CPU_SHARE])))
        if os.environ.get(ENV_MAX_BODY_BYTES):
            env["max_body_bytes"] = max(1024, int(os.environ[ENV_MAX_BODY_BYTES]))
        if os.environ.get(ENV_DEDICATED):
            env["dedicated_entities"] = tuple(
                e.strip() for e in os.environ[ENV_DEDICATED].split(",") if e.strip()
            )
        if os.environ.get(ENV_ENTITY_HOSTS):
            env["entity_hosts"] = max(0, int(os.environ[ENV_ENTITY_HOSTS]))
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def with_keys(self) -> Settings:
        """Fill in the signing secret and admin key from the data dir, creating them once.

        They are kept in files readable only by the owner so that a restart keeps issued
        tokens valid, and they are never printed.
        """
        secret = self.secret or _read_or_create(self.data_dir / "secret.key")
        admin_key = self.admin_key or _read_or_create(self.data_dir / "admin.key")
        return replace(self, secret=secret, admin_key=admin_key)

    @property
    def media_root(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://{self.rtmp_host}:{self.rtmp_port}/live"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.ws_host}:{self.ws_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    def origins(self) -> list[str | None]:
        """The `Origin` values the gateway accepts (None: no Origin header)."""
        if self.allowed_origins:
            return [None, *self.allowed_origins]
        local = [f"http://{h}:{self.http_port}" for h in ("127.0.0.1", "localhost")]
        return [None, *local]


def parse_placement(text: str) -> tuple[str, ...]:
    """``auto``, or a comma-separated list of placement resources (``gateway,actors``;
    ``none`` for none)."""
    text = text.strip()
    if text == "auto":
        return AUTO_PLACEMENT
    if text == "none":
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _read_or_create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
