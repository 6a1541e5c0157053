"""`liveshop up | down | status | token`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from liveshop import __version__, clock
from liveshop.config import Settings, default_data_dir, parse_placement
from liveshop.errors import InvalidRequest
from liveshop.media.ladder import parse_ladder
from liveshop.stack import ClusterError, Stack, read_run_file
from liveshop.storage.embedded import pid_alive
from liveshop.tokens import Role, issue_token


def _progress(start: float) -> Any:
    def say(message: str) -> None:
        print(f"  [{time.monotonic() - start:5.1f}s] {message}", flush=True)

    return say


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        http_host=args.http_host,
        http_port=args.http_port,
        ws_host=args.ws_host,
        ws_port=args.ws_port,
        dashboard_port=args.dashboard_port,
        gateways=args.gateways,
        rtmp_host=args.rtmp_host,
        rtmp_port=args.rtmp_port,
        media_slots=args.media_slots,
        media_ladder=args.media_ladder,
        placement=parse_placement(args.placement) if args.placement else None,
    ).with_keys()
    try:
        parse_ladder(settings.media_ladder)
    except InvalidRequest as exc:
        print(f"liveshop: --media-ladder: {exc.message}", file=sys.stderr)
        return 2
    existing = read_run_file(settings.data_dir)
    if existing and pid_alive(int(existing["pid"])):
        print(f"liveshop is already running (pid {existing['pid']}); `liveshop down` stops it.")
        return 1
    start = time.monotonic()
    say = _progress(start)
    print(f"liveshop {__version__} starting (data in {settings.data_dir})", flush=True)
    stack = Stack(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start_storage(say)
        stack.start_ray(args.address, say)
        # Ray's core installs its own SIGTERM handler (log and die); ours must win so that
        # `liveshop down` gets the same clean stop as Ctrl-C.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        stack.deploy(say)
        if args.demo:
            _seed_demo(stack.settings, say)
        stack.write_run_file()
        ready = time.monotonic() - start
        _print_table(stack, ready)
        if args.demo:
            _print_demo(stack.settings)
        while not stop.wait(1.0):
            pass
        print("\nliveshop stopping...", flush=True)
        return 0
    except KeyboardInterrupt:
        print("\nliveshop stopping...", flush=True)
        return 130
    except ClusterError as exc:
        print(f"liveshop: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish the clean-up even on a 2nd ^C
        stack.stop(say)
        stack.remove_run_file()
        print("liveshop stopped.", flush=True)


def _seed_demo(settings: Settings, say: Any) -> None:
    from liveshop import demo

    assert settings.database_url
    if not asyncio.run(demo.seed(settings.database_url)):
        # A restart: the room is the host's now; keep whatever they pinned (or unpinned).
        say(f"demo        channel '{demo.CHANNEL_ID}', room '{demo.ROOM_ID}' (kept as it was)")
        return
    # The first run: pin through the public API, the way a host's tool would.
    token = issue_token(
        settings.secret, user_id=demo.HOST_ID, name="Demo host",
        rooms={demo.ROOM_ID: [Role.HOST]}, now=clock.now(), ttl=300,
    )  # fmt: skip
    request = urllib.request.Request(
        f"{settings.http_url}/rooms/{demo.ROOM_ID}/pin",
        data=json.dumps({"product_id": demo.PRODUCTS[0].product_id}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    say(f"demo        channel '{demo.CHANNEL_ID}', room '{demo.ROOM_ID}', "
        f"{len(demo.PRODUCTS)} products, one pinned")  # fmt: skip


def _print_table(stack: Stack, ready: float) -> None:
    info = stack.run_info()
    gateways = f"{', '.join(info['gateways'])}  ({len(stack.gateways)} process(es))"
    rows = [
        ("web pages", info["http"] + "/app/"),
        ("HTTP API", info["http"] + "  (docs: /docs)"),
        ("WebSocket gateway", gateways),
        ("RTMP ingest", info["rtmp"]),
        ("media ladder", media_ladder_line(stack.settings)),
        ("Ray dashboard", info["dashboard"] or f"cluster at {info['ray']}"),
        ("PostgreSQL", info["database"] + ("  (embedded)" if stack.postgres else "")),
        ("Redis", info["redis"] + ("  (embedded)" if stack.redis else "")),
        ("data", str(stack.settings.data_dir)),
    ]
    print(f"\nliveshop is ready in {ready:.1f}s\n")
    width = max(len(name) for name, _ in rows)
    for name, where in rows:
        print(f"  {name:<{width}}  {where}")
    print("\nCtrl-C or `liveshop down` stops everything.\n", flush=True)


def media_ladder_line(settings: Settings) -> str:
    """The most a stream is encoded to: the configured ladder. Only a transcoder knows a
    stream's own ladder, when the stream starts: no rung above its source's size and,
    unless ``media_cpu_share`` is 0, only the rungs its node's CPU sustains (it measures
    them then), so the line says "at most" rather than promise all of them."""
    names = ", ".join(rung.name for rung in parse_ladder(settings.media_ladder))
    cpu = " and its media node's CPU" if settings.media_cpu_share > 0 else ""
    return f"{names} at most  (sized per stream to its source{cpu})"


def _print_demo(settings: Settings) -> None:
    from liveshop import demo

    def token_for(user: str, name: str, rooms: dict[str, list[Role]]) -> str:
        return issue_token(settings.secret, user_id=user, name=name, rooms=rooms,
                           now=clock.now(), ttl=settings.token_ttl)  # fmt: skip

    token = token_for(demo.VIEWERS[0], "Viewer One", {demo.ROOM_ID: [Role.VIEWER]})
    host = token_for(demo.HOST_ID, "Demo host", {demo.ROOM_ID: [Role.HOST]})
    ops = token_for("ops", "Operations", {"*": [Role.SERVICE]})
    app = f"{settings.http_url}/app"
    print("Pages (each link signs its browser in; guests need no link):")
    print(f"  watch:   {app}/watch/{demo.ROOM_ID}")
    print(f"  channel: {app}/tv/{demo.CHANNEL_ID}")
    print(f"  studio:  {app}/studio/{demo.ROOM_ID}#token={host}")
    print(f"  ops:     {app}/ops#token={ops}\n")
    print("Demo room:", demo.ROOM_ID)
    print(f"  snapshot:  curl {settings.http_url}/rooms/{demo.ROOM_ID}")
    print(f"  websocket: {settings.ws_url}")
    print(f"  viewer token ({settings.token_ttl / 3600:g} h):\n    {token}\n")
    print(f"  try it (type to chat, Ctrl-D to leave):\n    {try_it_command(settings, token)}\n",
          flush=True)  # fmt: skip


def try_it_command(settings: Settings, token: str) -> str:
    """The terminal client on the demo room, as a command that works when pasted into a
    shell anywhere: this interpreter by absolute path (the venv's, whether or not it is
    activated), every argument quoted."""
    from liveshop import demo

    return shlex.join([
        sys.executable, "-m", "liveshop.client", "--url", settings.ws_url, "--token", token,
        "--room", demo.ROOM_ID,
    ])  # fmt: skip


def cmd_down(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    info = read_run_file(data_dir)
    if info is None or not pid_alive(int(info["pid"])):
        print("liveshop is not running.")
        return 0
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    print(f"stopping liveshop (pid {pid})...", flush=True)
    deadline = time.monotonic() + args.timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        print(f"liveshop did not stop within {args.timeout:.0f}s; killing it.")
        os.kill(pid, signal.SIGKILL)
        for key in ("postgres", "redis"):
            child = (info.get("embedded") or {}).get(key)
            if child and pid_alive(int(child)):
                os.kill(int(child), signal.SIGTERM)
        return 1
    print("liveshop stopped.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from liveshop.health import check_all

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    info = read_run_file(data_dir)
    if info is None:
        print(f"liveshop is not running (no run file in {data_dir}).")
        return 1
    settings = Settings.from_env(data_dir=data_dir).with_keys()
    results = check_all(info, settings)
    width = max(len(name) for name, _, _ in results)
    for name, ok, detail in results:
        print(f"  {name:<{width}}  {'ok  ' if ok else 'FAIL'}  {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


def cmd_token(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        data_dir=Path(args.data_dir) if args.data_dir else None
    ).with_keys()
    rooms: dict[str, list[str]] = {}
    roles = {r.value for r in Role}
    for grant in args.grant:
        # Room ids may hold ':' (channel:deals): the role is the last part, if it is one.
        room, _, role = grant.rpartition(":")
        if role not in roles:
            room, role = grant, "viewer"
        rooms.setdefault(room, []).append(role)
    print(issue_token(
        settings.secret, user_id=args.user, name=args.name or args.user,
        rooms=rooms, now=clock.now(), ttl=args.ttl,
    ))  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveshop", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start liveshop (embedded PostgreSQL/Redis unless configured)")
    up.add_argument("--address", help="join an existing Ray cluster instead of starting one")
    up.add_argument("--data-dir", help="run directory (default: the user data dir)")
    up.add_argument("--demo", action="store_true", help="seed a demo channel, room and products")
    up.add_argument("--http-host", help="address the HTTP API binds (default 127.0.0.1)")
    up.add_argument("--http-port", type=int)
    up.add_argument("--ws-host", help="address the gateways bind (default 127.0.0.1)")
    up.add_argument("--ws-port", type=int)
    up.add_argument("--dashboard-port", type=int)
    up.add_argument(
        "--placement",
        help="resources to place by: auto (default: those the cluster's nodes declare), "
        "gateway,actors (wait for such nodes even if none has joined yet), or none",
    )
    up.add_argument(
        "--gateways",
        type=int,
        help="gateway processes sharing the WebSocket port (default: one per `gateway` unit "
        "the cluster's nodes declare, else 1)",
    )
    up.add_argument("--rtmp-host", help="address the RTMP ingest binds (default 127.0.0.1)")
    up.add_argument("--rtmp-port", type=int, help="RTMP ingest port (default 1935)")
    up.add_argument(
        "--media-slots", type=int, help="live streams this node transcodes at once (default: cores)"
    )
    up.add_argument(
        "--media-ladder",
        help="HLS ladder, height:video_kbps[:audio_kbps] per rung "
        "(default 1080:5000,720:2800,480:1200:96,360:700:64)",
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop a running `liveshop up`")
    down.add_argument("--data-dir")
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="report each component's health")
    status.add_argument("--data-dir")
    status.set_defaults(func=cmd_status)

    token = sub.add_parser("token", help="mint a signed token with this run's secret")
    token.add_argument("--user", required=True)
    token.add_argument("--name")
    token.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="ROOM:ROLE",
        help="e.g. demo:viewer, demo:host, channel:deals:moderator, '*:service' (repeatable)",
    )
    token.add_argument("--ttl", type=float, default=3600.0)
    token.add_argument("--data-dir")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
