"""`liveshop up --demo` on a fresh data dir, `status`, a viewer on the demo room, `down`.

Runs the real command in a subprocess with no database or Redis configured, the way a
newcomer runs it: embedded PostgreSQL and Redis, its own local Ray.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

from liveshop import demo
from liveshop.storage.embedded import free_port
from tests.e2e.client import Client

LIVESHOP = [sys.executable, "-m", "liveshop.cli"]


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


def test_up_status_demo_viewer_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "run"
    http_port, ws_port, dash_port = free_port(), free_port(), free_port()
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(
        [*LIVESHOP, "up", "--demo", "--data-dir", str(data_dir), "--http-port", str(http_port),
         "--ws-port", str(ws_port), "--dashboard-port", str(dash_port)],
        stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        output = ""
        while "Ctrl-C or `liveshop down`" not in output:
            assert up.poll() is None, f"liveshop up exited early:\n{output}"
            assert time.monotonic() < deadline, f"liveshop up not ready:\n{output}"
            time.sleep(0.5)
            log.seek(0)
            output = log.read()
        ready = float(re.search(r"ready in ([\d.]+)s", output).group(1))  # type: ignore[union-attr]
        assert ready < 60, output
        assert f"ws://127.0.0.1:{ws_port}" in output
        token = re.search(r"viewer token \(24 h\):\s+(\S+)", output).group(1)  # type: ignore[union-attr]

        status = subprocess.run(
            [*LIVESHOP, "status", "--data-dir", str(data_dir)],
            capture_output=True, text=True, env=_env(), timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stdout + status.stderr
        assert "FAIL" not in status.stdout
        assert "Ray dashboard" in status.stdout

        async def watch_demo() -> dict[str, object]:
            viewer = await Client.open(f"ws://127.0.0.1:{ws_port}", token)
            snapshot = await viewer.result("subscribe", room="demo")
            await viewer.result("chat", room="demo", text="hello from the demo")
            await viewer.wait_event("chat", text="hello from the demo")
            # The pinned product is for sale, and its counter reaches the viewer.
            bought = await viewer.result("buy", room="demo", sku="sku-headphones", key="t1")
            assert bought["total_minor"] == 12999

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

        down = subprocess.run(
            [*LIVESHOP, "down", "--data-dir", str(data_dir)],
            capture_output=True, text=True, env=_env(), timeout=120,
        )  # fmt: skip
        assert down.returncode == 0, down.stdout + down.stderr
        up.wait(timeout=30)
        assert up.returncode == 0
        log.seek(0)
        assert "liveshop stopped." in log.read()
        # Nothing left behind: no embedded server, nothing of its Ray cluster.
        time.sleep(1)
        assert _processes_using(data_dir) == []
        assert _ray_processes(run_info["ray"]) == []
        assert not (data_dir / "run.json").exists()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, 9)
        for proc in _processes_using(data_dir):
            proc.kill()
        log.close()
