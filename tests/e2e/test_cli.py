"""`liveshop up --demo` on a fresh data dir, `status`, a viewer on the demo room, the terminal
client as `up` prints it, `down`; then a restart on the same data dir keeps what the host did.

Runs the real command in a subprocess with no database or Redis configured, the way a
newcomer runs it: embedded PostgreSQL and Redis, its own local Ray.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil

from liveshop import demo
from liveshop.storage.embedded import free_port
from tests.e2e.client import Client

LIVESHOP = [sys.executable, "-m", "liveshop.cli"]
NUMBER = re.compile(r"LS-\d{5,}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESHOP_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _processes_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            found.append(proc)
    return found


def _ray_processes(gcs_address: str) -> list[psutil.Process]:
    """Processes of the Ray cluster at ``gcs_address`` (other clusters may run meanwhile)."""
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if f"--gcs-address={gcs_address}" in " ".join(p.info["cmdline"] or [])
    ]


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    log: IO[str]
    output: str


def _up(data_dir: Path, ports: list[int], log_path: Path) -> Up:
    """`liveshop up --demo`, once it says it is ready."""
    http_port, ws_port, dash_port, rtmp_port = ports
    log = log_path.open("w+")
    process = subprocess.Popen(
        [*LIVESHOP, "up", "--demo", "--data-dir", str(data_dir), "--http-port", str(http_port),
         "--ws-port", str(ws_port), "--dashboard-port", str(dash_port),
         "--rtmp-port", str(rtmp_port)],
        stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    output = ""
    while "Ctrl-C or `liveshop down`" not in output:
        assert process.poll() is None, f"liveshop up exited early:\n{output}"
        assert time.monotonic() < deadline, f"liveshop up not ready:\n{output}"
        time.sleep(0.5)
        log.seek(0)
        output = log.read()
    # The demo lines come right after the table.
    deadline = time.monotonic() + 10
    while "try it" not in output and time.monotonic() < deadline:
        time.sleep(0.2)
        log.seek(0)
        output = log.read()
    return Up(process, log, output)


def _down(data_dir: Path, up: Up) -> None:
    down = subprocess.run(
        [*LIVESHOP, "down", "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    up.process.wait(timeout=30)
    assert up.process.returncode == 0
    up.log.seek(0)
    assert "liveshop stopped." in up.log.read()


def _cleanup(data_dir: Path, up: Up | None) -> None:
    if up is not None:
        if up.process.poll() is None:
            os.killpg(up.process.pid, 9)
        up.log.close()
    for proc in _processes_using(data_dir):
        proc.kill()


def test_up_status_demo_viewer_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "run"
    ports = [free_port() for _ in range(4)]
    http_port, ws_port, _, rtmp_port = ports
    up: Up | None = None
    try:
        up = _up(data_dir, ports, tmp_path / "up.log")
        output = up.output
        ready = float(re.search(r"ready in ([\d.]+)s", output).group(1))  # type: ignore[union-attr]
        assert ready < 60, output
        assert f"ws://127.0.0.1:{ws_port}" in output
        assert f"rtmp://127.0.0.1:{rtmp_port}/live" in output
        token = re.search(r"viewer token \(24 h\):\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        host = re.search(r"studio/demo#token=(\S+)", output).group(1)  # type: ignore[union-attr]

        status = subprocess.run(
            [*LIVESHOP, "status", "--data-dir", str(data_dir)],
            capture_output=True, text=True, env=_env(), timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stdout + status.stderr
        assert "FAIL" not in status.stdout
        assert "Ray dashboard" in status.stdout
        # The ingest on the port this run was given, by a real RTMP handshake.
        assert re.search(
            rf"RTMP ingest\s+ok\s+rtmp://127.0.0.1:{rtmp_port}/live, handshake ok", status.stdout
        ), status.stdout

        async def watch_demo() -> dict[str, object]:
            viewer = await Client.open(f"ws://127.0.0.1:{ws_port}", token)
            snapshot = await viewer.result("subscribe", room="demo")
            await viewer.result("chat", room="demo", text="hello from the demo")
            await viewer.wait_event("chat", text="hello from the demo")
            # The pinned product is for sale, and its counter reaches the viewer.
            bought = await viewer.result("buy", room="demo", sku="sku-headphones", key="t1")
            assert bought["total_minor"] == 12999
            # The order has a readable number beside its id, and the buyer finds it by it.
            assert NUMBER.fullmatch(bought["number"]) and bought["order"] != bought["number"]
            found = await viewer.result("order", room="demo", order=bought["number"])
            assert (found["id"], found["number"]) == (bought["order"], bought["number"])
            history = await viewer.result("orders", room="demo")
            assert [o["number"] for o in history["orders"]] == [bought["number"]]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
                got = await http.get(
                    f"/orders/{bought['number']}", headers={"Authorization": f"Bearer {token}"}
                )
                assert got.status_code == 200, got.text
                assert got.json()["id"] == bought["order"]
                assert (await http.get(f"/orders/{bought['number']}")).status_code == 401

            def counter() -> object:
                for push in reversed(viewer.pushes):
                    stock = push.get("state", {}).get("stock")
                    if stock:
                        return stock["sku-headphones"]["available"] == demo.DEMO_STOCK - 1
                return False

            await viewer.wait_for(counter)
            await viewer.close()
            return snapshot

        run_info = json.loads((data_dir / "run.json").read_text())
        assert _ray_processes(run_info["ray"]), "the run's Ray processes should be found"
        snapshot = asyncio.run(watch_demo())
        assert snapshot["pinned"]["product_id"] == "sku-headphones"  # type: ignore[index]

        # The terminal client, run exactly as `up` printed it (from elsewhere, without the
        # venv on PATH), reading a pipe: it shows the room, chats, buys, and ends at the end
        # of its input.
        command = re.search(r"try it.*:\n\s+(.+)\n", output).group(1)  # type: ignore[union-attr]
        assert "<" not in command and shlex.split(command)[0] == sys.executable
        terminal = subprocess.run(
            command, shell=True, input="hi from the terminal\n/buy sku-kettle\n",
            capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
            timeout=60,
        )  # fmt: skip
        shown = terminal.stdout
        assert terminal.returncode == 0, shown + terminal.stderr
        assert "== Demo: Friday flash deals (demo)" in shown
        assert "pinned: Noise-cancelling headphones — 129.99 USD" in shown
        assert "Viewer One: hello from the demo" in shown  # the recent chat
        assert "Viewer One: hi from the terminal" in shown  # its own chat, back from the room
        assert re.search(r"bought 1 x sku-kettle for 54\.00 USD: order LS-\d{5,}", shown), shown
        assert "{" not in shown, shown  # no raw JSON

        # The host pins another product; a restart must keep it (the demo seeds its pin once).
        pinned = httpx.post(
            f"http://127.0.0.1:{http_port}/rooms/demo/pin", json={"product_id": "sku-kettle"},
            headers={"Authorization": f"Bearer {host}"}, timeout=30,
        )  # fmt: skip
        assert pinned.status_code == 200, pinned.text

        _down(data_dir, up)
        up.log.close()
        # Nothing left behind: no embedded server, nothing of its Ray cluster.
        time.sleep(1)
        assert _processes_using(data_dir) == []
        assert _ray_processes(run_info["ray"]) == []
        assert not (data_dir / "run.json").exists()

        up = _up(data_dir, ports, tmp_path / "up-again.log")
        assert "(kept as it was)" in up.output, up.output
        room = httpx.get(f"http://127.0.0.1:{http_port}/rooms/demo", timeout=30).json()
        assert room["pinned"]["product_id"] == "sku-kettle"
        _down(data_dir, up)
    finally:
        _cleanup(data_dir, up)
